package bench

import (
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chatworker/worker/consumer"
	"github.com/chatworker/worker/contract"
	"github.com/chatworker/worker/internal/natstest"
	"github.com/nats-io/nats.go/jetstream"
)

// The soak counts each command once, however often its result arrives, and
// fails the run on the duplicates: a doubled command must not pass for a
// completed one.
func TestSoakCounter(t *testing.T) {
	tests := []struct {
		name              string
		results           []int
		wantCount, wantDu int64
	}{
		{"each once", []int{0, 1, 2}, 3, 0},
		{"a duplicate", []int{0, 1, 1, 2}, 3, 1},
		{"out of range ignored", []int{0, 7}, 1, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &soakCounter{start: time.Now(), seen: make([]atomic.Bool, 3)}
			for _, i := range tt.results {
				c.result(i)
			}
			if c.count.Load() != tt.wantCount || c.dups.Load() != tt.wantDu {
				t.Errorf("count %d, duplicates %d; want %d and %d", c.count.Load(), c.dups.Load(), tt.wantCount, tt.wantDu)
			}
			if c.lastNS.Load() <= 0 {
				t.Error("no completion time recorded")
			}
		})
	}
}

// waitFor returns once the count is reached, and fails, rather than
// waiting forever, when nothing completes for the stall time.
func TestSoakCounterWaitFor(t *testing.T) {
	c := &soakCounter{start: time.Now(), seen: make([]atomic.Bool, 2)}
	c.result(0)
	if err := c.waitFor(t.Context(), 1, time.Minute); err != nil {
		t.Fatalf("count reached: %v", err)
	}
	if err := c.waitFor(t.Context(), 2, 50*time.Millisecond); err == nil {
		t.Fatal("no error when nothing completes")
	}
}

// checkSoak fails a run that lost, doubled or dead-lettered a command, or
// left one unacknowledged: its figures would be worth nothing.
func TestCheckSoak(t *testing.T) {
	s := natstest.RunServer(t)
	_, js := natstest.Connect(t, s)
	topo := consumer.Topology{}.WithDefaults()
	if _, err := consumer.Provision(t.Context(), js, topo); err != nil {
		t.Fatal(err)
	}
	// Two results stored, nothing waiting in the work queue.
	for i := range 2 {
		if _, err := js.Publish(t.Context(), topo.Subjects.Result(contract.TypeSend, "c"), []byte("{}"), jetstream.WithMsgID(commandID(i))); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name string
		res  SoakResult
		want string // "" for no error
	}{
		{"all kept", SoakResult{Commands: 2}, ""},
		{"a result lost", SoakResult{Commands: 3}, "CHAT_RESULTS holds 2 messages, want 3"},
		{"a duplicate", SoakResult{Commands: 2, Duplicates: 1}, "1 duplicate results"},
		{"a dead letter", SoakResult{Commands: 2, Dead: 1}, "1 dead letters"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := checkSoak(t.Context(), js, topo, tt.res)
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("unexpected error: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("got %v, want an error saying %q", err, tt.want)
			}
		})
	}
	// A command left in the work queue was never acknowledged.
	if _, err := js.Publish(t.Context(), topo.Subjects.Command(contract.TypeSend, "c"), []byte("{}")); err != nil {
		t.Fatal(err)
	}
	if err := checkSoak(t.Context(), js, topo, SoakResult{Commands: 2}); err == nil || !strings.Contains(err.Error(), "CHAT_COMMANDS holds 1 messages, want 0") {
		t.Errorf("got %v, want the unacknowledged command reported", err)
	}
}
