package consumer_test

import (
	"context"
	"fmt"
	"os"
	"sync/atomic"
	"testing"

	"github.com/chatworker/worker/contract"
	"github.com/chatworker/worker/workertest"

	"github.com/chatworker/worker/actions"
	"github.com/chatworker/worker/chat"
	"github.com/chatworker/worker/consumer"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// The HTTP client's idle connections close on their own schedule.
		goleak.IgnoreTopFunction("net/http.(*persistConn).readLoop"),
		goleak.IgnoreTopFunction("net/http.(*persistConn).writeLoop"),
		goleak.IgnoreTopFunction("internal/poll.runtime_pollWait"),
		// nats.go (v1.55.0) races in an object store Put, which the export
		// tests make: the Put's own JetStream context starts the goroutine
		// that watches for reconnects (jetstream/publish.go, newAsyncReply),
		// and the Put's deferred cleanupReplySub can clear the channel
		// before that goroutine has read it; it then waits on a nil channel
		// for good. Our connections' own goroutines are still checked.
		goleak.IgnoreTopFunction("github.com/nats-io/nats.go/jetstream.(*jetStream).resetPendingAcksOnReconnect"),
	)
	os.Exit(0)
}

// pipeline is the shared harness (workertest), with the helpers only these
// tests need; stops are the workers startWorker started.
type pipeline struct {
	*workertest.Harness
	stops []func()
}

// newPipeline starts a worker executing against the simulator.
func newPipeline(t *testing.T, opts ...workertest.Option) *pipeline {
	t.Helper()
	return &pipeline{Harness: workertest.New(t, opts...)}
}

// newBarePipeline sets everything up but starts no worker.
func newBarePipeline(t *testing.T, opts ...workertest.Option) *pipeline {
	t.Helper()
	return &pipeline{Harness: workertest.New(t, append(opts, workertest.NoWorker())...)}
}

// failFirst fails the first call for one chat with a retryable error.
type failFirst struct {
	next   consumer.Executor
	chat   string
	failed atomic.Bool
}

func (f *failFirst) Execute(ctx context.Context, cmd actions.Command) (contract.Outcome, error) {
	if cmd.ChatID == f.chat && f.failed.CompareAndSwap(false, true) {
		return contract.Outcome{}, fmt.Errorf("simulated outage: %w", chat.ErrRetryable)
	}
	return f.next.Execute(ctx, cmd)
}
