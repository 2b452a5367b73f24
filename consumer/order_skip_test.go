package consumer

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/chatworker/worker/actions"
	"github.com/chatworker/worker/contract"
	"github.com/chatworker/worker/idempotency"
	"github.com/chatworker/worker/internal/natstest"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestHeadProofCovers(t *testing.T) {
	q := func(run, cseq, delivered uint64) queued {
		return queued{run: run, meta: &jetstream.MsgMetadata{NumDelivered: delivered,
			Sequence: jetstream.SequencePair{Consumer: cseq}}}
	}
	p := proofOf(q(3, 10, 1))
	tests := []struct {
		name  string
		proof headProof
		q     queued
		want  bool
	}{
		{"same run, later delivery", p, q(3, 11, 1), true},
		{"same run, much later", p, q(3, 500, 1), true},
		{"another run: a delivery went elsewhere", p, q(4, 11, 1), false},
		{"a redelivery", p, q(3, 11, 2), false},
		{"an earlier delivery", p, q(3, 9, 1), false},
		{"no proof", headProof{}, q(3, 11, 1), false},
		{"proof from a redelivery", proofOf(q(3, 10, 2)), q(3, 11, 1), false},
		{"no metadata", p, queued{run: 3}, false},
	}
	for _, tt := range tests {
		if got := tt.proof.covers(tt.q); got != tt.want {
			t.Errorf("%s: covers = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestDeliveryRuns(t *testing.T) {
	var r deliveryRuns
	var got []uint64
	for _, cseq := range []uint64{1, 2, 3, 5, 6, 6, 1, 2} {
		got = append(got, r.observe(cseq))
	}
	want := []uint64{0, 0, 0, 1, 1, 2, 3, 3}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("runs %v, want %v", got, want)
		}
	}
}

// orderRig is one worker whose deliveries the test makes by hand, one
// fetch (one consumer sequence) per command, so it decides which deliveries
// the worker sees and which another worker (the test) holds.
type orderRig struct {
	t     *testing.T
	js    jetstream.JetStream
	cons  jetstream.Consumer
	w     *Worker
	reg   *prometheus.Registry
	exec  *recordingExecutor
	store *idempotency.KV // the worker's store
	runs  deliveryRuns    // the fetch loop's, as a loop keeps them
}

type recordingExecutor struct {
	mu    sync.Mutex
	ran   []string
	fails map[string]bool // contents whose first attempt fails
}

func (e *recordingExecutor) Execute(_ context.Context, cmd actions.Command) (contract.Outcome, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.fails[cmd.Content] {
		delete(e.fails, cmd.Content)
		return contract.Outcome{}, &contract.Error{Class: contract.ClassRetryable, Msg: "try later", Err: errors.New("503")}
	}
	e.ran = append(e.ran, cmd.Content)
	return contract.Outcome{APIStatus: 200}, nil
}

func (e *recordingExecutor) got() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]string(nil), e.ran...)
}

func newOrderRig(t *testing.T, contents ...string) *orderRig {
	t.Helper()
	srv := natstest.RunServer(t)
	_, js := natstest.Connect(t, srv)
	cons, err := Provision(t.Context(), js, Topology{})
	if err != nil {
		t.Fatal(err)
	}
	store, err := idempotency.Open(t.Context(), js, idempotency.Config{})
	if err != nil {
		t.Fatal(err)
	}
	r := &orderRig{t: t, js: js, cons: cons, reg: prometheus.NewRegistry(),
		exec: &recordingExecutor{fails: map[string]bool{}}, store: store}
	r.w, err = New(js, cons, r.exec, store, Config{Metrics: NewMetrics(r.reg),
		// A failed attempt goes back to the stream at once.
		Retry: RetryPolicy{InitialInterval: time.Minute, MaxInterval: time.Minute, InProcessMax: time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	if err = r.w.order.open(t.Context()); err != nil {
		t.Fatal(err)
	}
	// A command held elsewhere here is held until the test says: waiting
	// for it in place would only make the test slower (order_wait_test.go
	// tests the wait).
	r.w.order.waitMax = 50 * time.Millisecond
	for _, c := range contents {
		r.publish(c)
	}
	return r
}

// publish publishes a command for chat x.
func (r *orderRig) publish(content string) {
	r.t.Helper()
	if _, err := actions.Publish(r.t.Context(), r.js, actions.Send{ChatID: "x", Content: content}, actions.Subjects{}); err != nil {
		r.t.Fatal(err)
	}
}

// deliver fetches the next delivery (the next consumer sequence).
func (r *orderRig) deliver() jetstream.Msg {
	r.t.Helper()
	batch, err := r.cons.Fetch(1, jetstream.FetchMaxWait(2*time.Second))
	if err != nil {
		r.t.Fatal(err)
	}
	for m := range batch.Messages() {
		return m
	}
	r.t.Fatalf("no delivery: %v", batch.Error())
	return nil
}

// dispatch hands msg to the worker and runs its lane to the end.
func (r *orderRig) dispatch(msg jetstream.Msg) {
	r.w.dispatch(r.t.Context(), msg, func(f func()) bool { f(); return true }, &r.runs)
}

func (r *orderRig) checks(kind string) float64 {
	if kind == "skipped" {
		return testutil.ToFloat64(r.w.m.orderSkipped)
	}
	return testutil.ToFloat64(r.w.m.orderAsked)
}

func (r *orderRig) ran(want ...string) {
	r.t.Helper()
	got := r.exec.got()
	if len(got) != len(want) {
		r.t.Fatalf("executed %q, want %q", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			r.t.Fatalf("executed %q, want %q", got, want)
		}
	}
}

// A worker that received every delivery of a chat's commands, one after
// another, checks only the first.
func TestOrderCheckSkippedForUnbrokenDeliveries(t *testing.T) {
	r := newOrderRig(t, "1", "2", "3")
	for range 3 {
		r.dispatch(r.deliver())
	}
	r.ran("1", "2", "3")
	if asked, skipped := r.checks("asked"), r.checks("skipped"); asked != 1 || skipped != 2 {
		t.Errorf("order checks: %v asked, %v skipped; want 1 and 2", asked, skipped)
	}
}

// When another worker received a delivery in between (here: the test), the
// next command must ask the stream, and wait for the one held elsewhere.
func TestOrderCheckAskedAfterAGap(t *testing.T) {
	r := newOrderRig(t, "1", "2", "3")
	first, held, third := r.deliver(), r.deliver(), r.deliver()
	r.dispatch(first)
	r.dispatch(third)
	r.ran("1")
	if waits := testutil.ToFloat64(r.w.m.orderWaits); waits != 1 {
		t.Errorf("order waits %v, want 1: command 3 ran while 2 was held elsewhere", waits)
	}
	if err := held.Ack(); err != nil { // the other worker finishes 2
		t.Fatal(err)
	}
}

// A command of the chat that went back to the stream (a retry) voids the
// proof: the next command must find it and wait.
func TestOrderCheckAskedAfterAHandBack(t *testing.T) {
	r := newOrderRig(t, "1", "2", "3")
	r.exec.fails["2"] = true
	for range 3 {
		r.dispatch(r.deliver())
	}
	r.ran("1")
	if waits := testutil.ToFloat64(r.w.m.orderWaits); waits != 1 {
		t.Errorf("order waits %v, want 1: command 3 ran while 2 waited for its retry", waits)
	}
}

// A command settled from a redelivery proves nothing for the next one:
// commands published after its first delivery may have gone to other
// workers before it came back.
func TestOrderCheckAskedAfterARedelivery(t *testing.T) {
	r := newOrderRig(t, "1")
	if err := r.deliver().Nak(); err != nil {
		t.Fatal(err)
	}
	again := r.deliver() // "1", delivered twice
	r.publish("2")
	next := r.deliver()
	r.dispatch(again)
	r.dispatch(next)
	r.ran("1", "2")
	if asked := r.checks("asked"); asked != 2 {
		t.Errorf("order checks asked %v, want 2 (a redelivery proves nothing)", asked)
	}
}
