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

// releases are the background retries of refused releases; they live as
// long as Run.
type releases struct {
	ctx context.Context // set by Run; nil before
	wg  sync.WaitGroup
}

// releaseBackoff paces the retries of a refused release.
var releaseBackoff = backoff.Exponential{Initial: 100 * time.Millisecond, Max: 5 * time.Second}

// releaseClaim drops claim's lease after a failure.
func (w *Worker) releaseClaim(ctx context.Context, claim *idempotency.Claim) {
	err := w.store.Release(context.WithoutCancel(ctx), claim)
	if err == nil || errors.Is(err, idempotency.ErrLeaseLost) {
		return
	}
	log := w.log.With(zap.String("id", claim.ID))
	if w.releases.ctx == nil {
		log.Warn("releasing the claim failed; it frees itself when its lease ends", zap.Error(err))
		return
	}
	log.Warn("releasing the claim failed: trying again in the background", zap.Error(err))
	w.releases.wg.Go(func() {
		for i := 1; ; i++ {
			if !sleepCtx(w.releases.ctx, releaseBackoff.Equal(i)) {
				return // stopping: the lease frees the id when it ends
			}
			err := w.store.Release(w.releases.ctx, claim)
			if err == nil || errors.Is(err, idempotency.ErrLeaseLost) {
				log.Info("released the claim", zap.Int("tries", i+1))
				return
			}
		}
	})
}
