package consumer_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chatworker/worker/workertest"

	"github.com/chatworker/worker/actions"
	"github.com/chatworker/worker/chat"
	"github.com/chatworker/worker/consumer"
	"github.com/chatworker/worker/contract"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// failOnce answers the first call with the API's 503, then delegates.
type failOnce struct {
	next   consumer.Executor
	failed atomic.Bool
}

func (f *failOnce) Execute(ctx context.Context, cmd actions.Command) (contract.Outcome, error) {
	if f.failed.CompareAndSwap(false, true) {
		return contract.Outcome{}, &chat.APIError{Op: "send", Method: "POST", Path: "/x", StatusCode: 503}
	}
	return f.next.Execute(ctx, cmd)
}

// TestAPICallLogShowsStatusOnError: the debug line of a failed call names
// the API's status, not 0.
func TestAPICallLogShowsStatusOnError(t *testing.T) {
	core, logs := observer.New(zapcore.DebugLevel)
	p := newBarePipeline(t)
	p.Config.Logger = zap.New(core)
	p.Start(&failOnce{next: p.Executor})
	p.Publish(actions.Send{ChatID: "abc", Content: "hi"})
	p.Results(1)
	var statuses []int64
	workertest.Eventually(t, 10*time.Second, func() bool {
		statuses = statuses[:0]
		for _, e := range logs.FilterMessage("api call").All() {
			statuses = append(statuses, e.ContextMap()["api_status"].(int64))
		}
		return len(statuses) == 2
	}, "api call statuses %v, want two", &statuses)
	if statuses[0] != 503 || statuses[1] != 200 {
		t.Errorf("api call statuses = %v, want [503 200]", statuses)
	}
}
