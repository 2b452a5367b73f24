package workertest_test

import (
	"testing"

	"github.com/chatworker/worker/actions"
	"github.com/chatworker/worker/consumer"
	"github.com/chatworker/worker/contract"
	"github.com/chatworker/worker/workertest"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// The HTTP client's idle connections close on their own schedule.
		goleak.IgnoreTopFunction("net/http.(*persistConn).readLoop"),
		goleak.IgnoreTopFunction("net/http.(*persistConn).writeLoop"),
		goleak.IgnoreTopFunction("internal/poll.runtime_pollWait"),
	)
}

// One call gives a worker executing against the simulator: a command
// published goes through to a stored result and takes effect once.
func TestNewRunsAWorker(t *testing.T) {
	h := workertest.New(t, workertest.WithConfig(func(c *consumer.Config) { c.Concurrency = 4 }))
	cmd := h.Publish(actions.Send{ChatID: "abc", Content: "Hello"})
	r := h.Results(1)[0]
	if r.ID != cmd.ID || r.Status != contract.StatusSucceeded {
		t.Errorf("result %+v, want %s succeeded", r, cmd.ID)
	}
	h.Settled()
	if n := h.EffectsByKey()[cmd.ID]; n != 1 {
		t.Errorf("the command took effect %d times, want once", n)
	}
}

// NoWorker leaves the commands in the stream until the test starts one.
func TestNoWorkerWaitsForStart(t *testing.T) {
	h := workertest.New(t, workertest.NoWorker())
	h.Publish(actions.Note{ChatID: "abc", Content: "x"})
	if n := h.Count("CHAT_COMMANDS"); n != 1 {
		t.Fatalf("%d commands in the stream before a worker started, want 1", n)
	}
	h.Start(h.Executor)
	h.Settled()
	if n := h.Count("CHAT_RESULTS"); n != 1 {
		t.Errorf("%d results, want 1", n)
	}
}
