package consumer

import (
	"context"
	"errors"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/chatworker/worker/idempotency"
	"github.com/chatworker/worker/internal/backoff"
)

// Releasing a claim
//
// A command that goes back to the stream after a failure releases its
// claim, so the next delivery can claim the id at once. If the store
// refuses the release (an outage), the claim would hold until its lease
// ran out, and the worker that takes the id over then counts the lease as
// abandoned (idempotency.Record.Abandoned): three of those, and a command
// that did nothing wrong is dead-lettered as if it killed its workers. So
// a refused release is tried again in the background until it lands, the
// id is taken over (the release then fails with ErrLeaseLost, and
// whoever took it over decides), or the worker stops.

// releaser releases claims, and tries refused releases again in the
// background between Start and Stop.
type releaser struct {
	store idempotency.Store
	log   *zap.Logger

	ctx  context.Context // set by Start; nil before
	stop context.CancelFunc
	wg   sync.WaitGroup
}

// releaseBackoff paces the retries of a refused release.
var releaseBackoff = backoff.Exponential{Initial: 100 * time.Millisecond, Max: 5 * time.Second}

// Start lets refused releases be tried again until Stop; the retries
// outlive ctx's cancellation, which starts a drain, not the end.
func (r *releaser) Start(ctx context.Context) {
	r.ctx, r.stop = context.WithCancel(context.WithoutCancel(ctx))
}

// Stop ends the retries and waits for them: the leases left free their ids
// when they end.
func (r *releaser) Stop() {
	if r.stop != nil {
		r.stop()
	}
	r.wg.Wait()
}

// release drops claim's lease after a failure.
func (r *releaser) release(ctx context.Context, claim *idempotency.Claim) {
	err := r.store.Release(context.WithoutCancel(ctx), claim)
	if err == nil || errors.Is(err, idempotency.ErrLeaseLost) {
		return
	}
	log := r.log.With(zap.String("id", claim.ID))
	if r.ctx == nil {
		log.Warn("releasing the claim failed; it frees itself when its lease ends", zap.Error(err))
		return
	}
	log.Warn("releasing the claim failed: trying again in the background", zap.Error(err))
	r.wg.Go(func() {
		for i := 1; ; i++ {
			if !sleepCtx(r.ctx, releaseBackoff.Equal(i)) {
				return // stopping: the lease frees the id when it ends
			}
			err := r.store.Release(r.ctx, claim)
			if err == nil || errors.Is(err, idempotency.ErrLeaseLost) {
				log.Info("released the claim", zap.Int("tries", i+1))
				return
			}
		}
	})
}
