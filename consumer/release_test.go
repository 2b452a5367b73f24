package consumer_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chatworker/worker/contract"
	"github.com/chatworker/worker/workertest"

	"github.com/chatworker/worker/actions"
	"github.com/chatworker/worker/consumer"
	"github.com/chatworker/worker/idempotency"
)

// claimWatch records the most abandoned leases any claim reported.
type claimWatch struct {
	*downStore
	abandoned atomic.Int32
}

func (s *claimWatch) Claim(ctx context.Context, id, hash string) (*idempotency.Claim, error) {
	c, err := s.downStore.Claim(ctx, id, hash)
	if c != nil && int32(c.Abandoned) > s.abandoned.Load() {
		s.abandoned.Store(int32(c.Abandoned))
	}
	return c, err
}

// downAfterFirstCall fails its first call, and takes the store down as it
// does, for a moment: the claim's release after the failure is refused.
type downAfterFirstCall struct {
	store *downStore
	inner consumer.Executor
	calls atomic.Int32
}

func (e *downAfterFirstCall) Execute(ctx context.Context, cmd actions.Command) (contract.Outcome, error) {
	if e.calls.Add(1) == 1 {
		e.store.down.Store(true)
		time.AfterFunc(300*time.Millisecond, func() { e.store.down.Store(false) })
		return contract.Outcome{}, &contract.Error{Class: contract.ClassRetryable, Msg: "the API failed (injected)"}
	}
	return e.inner.Execute(ctx, cmd)
}

// A release the store refused is tried again until it lands: left to its
// lease, the claim would count as abandoned when the next delivery took
// the id over, and three of those dead-letter a command that did nothing
// wrong (as exhausted, "workers took this command and neither finished nor
// released it").
func TestRefusedReleaseIsTriedAgain(t *testing.T) {
	p := newBarePipeline(t, workertest.WithRetry(consumer.RetryPolicy{MaxAttempts: 5, InitialInterval: 50 * time.Millisecond,
		MaxInterval: 50 * time.Millisecond, InProcessMax: time.Microsecond}))
	p.Config.Topology.AckWait = 6 * time.Second
	short, err := idempotency.Open(t.Context(), p.JS, idempotency.Config{Owner: "test", Lease: 3 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	down := &downStore{Store: short}
	store := &claimWatch{downStore: down}
	p.Store = store
	p.Start(&downAfterFirstCall{store: down, inner: p.Executor})
	cmd := p.Publish(actions.Send{ChatID: "abc", Content: "x"})
	r := p.Results(1)[0]
	p.Settled()
	if r.ID != cmd.ID || r.Status != contract.StatusSucceeded || r.Attempts != 2 {
		t.Errorf("result %s %s after %d attempts, want %s succeeded after 2", r.ID, r.Status, r.Attempts, cmd.ID)
	}
	if n := store.abandoned.Load(); n != 0 {
		t.Errorf("a claim reported %d abandoned leases, want 0: the refused release was left to its lease", n)
	}
}
