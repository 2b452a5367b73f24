package consumer

import (
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// redelivered makes the first of two deliveries of chat x come back after
// the second: it returns the second and the first's redelivery.
func (r *orderRig) redeliveredAfterTheNext() (second, again jetstream.Msg) {
	r.t.Helper()
	first := r.deliver()
	second = r.deliver()
	if err := first.Nak(); err != nil {
		r.t.Fatal(err)
	}
	return second, r.deliver()
}

// A redelivery that arrives after a later command of its chat goes ahead of
// it in the lane: the lane must not wait on a command queued behind it.
func TestOrderRedeliveryGoesAheadInItsLane(t *testing.T) {
	r := newOrderRig(t, "1", "2")
	second, again := r.redeliveredAfterTheNext()
	r.queueAll(second, again)
	r.ran("1", "2")
	if waits := testutil.ToFloat64(r.w.m.orderWaits); waits != 0 {
		t.Errorf("order waits %v, want 0: command 1 was in the lane", waits)
	}
	if n := testutil.ToFloat64(r.w.m.orderRechecked); n != 0 {
		t.Errorf("%v checks made waiting, want none: command 1 was in the lane", n)
	}
}

// runAsync runs lanes the worker starts in goroutines; done closes when
// the first one ends.
func (r *orderRig) runAsync(done chan struct{}) func(func()) bool {
	return func(f func()) bool {
		go func() { f(); close(done) }()
		return true
	}
}

// While a lane waits in place, a redelivery of an older command of its chat
// arriving in the lane ends the wait: the older one runs first, then the
// one that waited.
func TestOrderWaitEndsWhenAnOlderCommandArrives(t *testing.T) {
	r := newOrderRig(t, "1", "2")
	r.w.order.waitMax = time.Minute
	second, again := r.redeliveredAfterTheNext()
	done := make(chan struct{})
	r.w.dispatch(t.Context(), second, r.runAsync(done), &r.runs)
	for testutil.ToFloat64(r.w.m.orderRechecked) == 0 {
		time.Sleep(time.Millisecond)
	}
	r.w.dispatch(t.Context(), again, r.runAsync(done), &r.runs)
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the lane still waits with the older command queued behind it")
	}
	r.ran("1", "2")
	if waits := testutil.ToFloat64(r.w.m.orderWaits); waits != 0 {
		t.Errorf("order waits %v, want 0", waits)
	}
}

// A drain ends a wait in place at once: the command goes back to the stream.
func TestOrderWaitEndsWhenDraining(t *testing.T) {
	r := newOrderRig(t, "1", "2")
	r.w.order.waitMax = time.Minute
	held, second := r.deliver(), r.deliver()
	done := make(chan struct{})
	r.w.dispatch(t.Context(), second, r.runAsync(done), &r.runs)
	for testutil.ToFloat64(r.w.m.orderRechecked) == 0 {
		time.Sleep(time.Millisecond)
	}
	r.w.stopOnce.Do(func() { close(r.w.stopping) })
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the lane still waits while the worker drains")
	}
	r.ran()
	if waits := testutil.ToFloat64(r.w.m.orderWaits); waits != 1 {
		t.Errorf("order waits %v, want 1: command 2 handed back", waits)
	}
	if err := held.Ack(); err != nil {
		t.Fatal(err)
	}
}
