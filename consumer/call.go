package consumer

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/chatworker/worker/chat"
	"github.com/chatworker/worker/contract"
	"github.com/chatworker/worker/execute"
	"github.com/chatworker/worker/idempotency"
	"github.com/chatworker/worker/internal/telemetry"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"
)

// call waits for a free API call slot, counts the attempt and makes one API
// call, keeping the message and the claim alive if the wait and the call
// outlast a fraction of AckWait.
//
// A command of a paced project waits for its project's rate budget first,
// outside the slot (see projects.go); a wait too long for a goroutine
// returns a *rateWaitError, no call made.
func (e *executor) call(ctx context.Context, d *delivery, claim *idempotency.Claim) (contract.Outcome, error) {
	if d.project != "" && d.res == nil {
		// A retry: its budget is waited for outside the slot too.
		r, err := e.gate.budget(ctx, d.project, d.meta.Sequence.Stream)
		if err != nil {
			return contract.Outcome{}, err
		}
		d.res = r
	}
	ka := e.keepAlive(ctx, d, claim)
	defer ka.stop()
	if !e.slots.acquire(ctx, e.stopping, d.project) {
		return contract.Outcome{}, errStopping
	}
	defer e.slots.release()
	if e.draining() {
		// The slot and the shutdown came together: once a shutdown begins,
		// no call starts; calls under way finish within the grace.
		return contract.Outcome{}, errStopping
	}
	if dec := e.policy.decide(situation{Event: beforeCall, Deadline: d.cmd.NotAfter, Now: e.now()}); dec.Outcome != outcomeProceed {
		// The wait for the slot outlasted the deadline: no call starts at
		// or after it (execute's own check dead-letters the command).
		return contract.Outcome{}, errLateSlot
	}
	// The attempt fields are what a lease extension writes: they change
	// under the keep-alive's lock.
	ka.mu.Lock()
	now := e.now()
	before := claim.Record
	claim.Attempts++
	if claim.FirstAttemptAt.IsZero() {
		claim.FirstAttemptAt = now
	}
	claim.LastAttemptAt = now
	d.attempts = claim.Attempts
	ka.mu.Unlock()
	callCtx, span := e.tr.start(ctx, "api call", trace.SpanKindInternal)
	if span.IsRecording() {
		span.SetAttributes(attribute.Int(telemetry.AttrAttempts, claim.Attempts))
	}
	if r := d.res; r != nil {
		callCtx = chat.WithReservation(callCtx, r)
		d.res = nil // this call uses it
		// Unless the executor returns before any API call (an export
		// without a target, say): then the booking goes back, or a
		// project's first one would keep its key's only probe call, and
		// none of its commands could book a call again. Cancel does
		// nothing to a booking the call used.
		defer r.Cancel()
	}
	start := time.Now()
	out, err := e.exec.Execute(callCtx, d.cmd)
	endWith(span, err)
	d.log.Debug("api call", zap.Duration("took", time.Since(start)), zap.Int("api_status", apiStatus(out, err)), zap.Error(err))
	if err != nil && d.project != "" && execute.ConfigFault(err) {
		// The worker's configuration failed, not the command: the attempt
		// spends none of its budget.
		ka.mu.Lock()
		claim.Attempts, claim.FirstAttemptAt, claim.LastAttemptAt = before.Attempts, before.FirstAttemptAt, before.LastAttemptAt
		ka.mu.Unlock()
	}
	return out, err
}

// apiStatus is the HTTP status the API answered with, 0 when it did not.
func apiStatus(out contract.Outcome, err error) int {
	if err == nil {
		return out.APIStatus // before apiErr, whose address escapes: no allocation per success
	}
	var apiErr *chat.APIError
	if errors.As(err, &apiErr) {
		return apiErr.StatusCode
	}
	return 0
}

// keepAlive renews a command's message and lease while its call (or its
// wait for a call slot) runs. mu guards the claim's fields and is held only
// for moments, so counting an attempt never waits for a store round trip;
// tick is held across a renewal, so that stop waits for one in progress.
type keepAlive struct {
	tick    sync.Mutex
	mu      sync.Mutex
	stopped bool
	t       *time.Timer
}

func (e *executor) keepAlive(ctx context.Context, d *delivery, claim *idempotency.Claim) *keepAlive {
	ka := &keepAlive{}
	every := e.ackWait / 3
	tick := func() {
		ka.tick.Lock()
		defer ka.tick.Unlock()
		ka.mu.Lock()
		if ka.stopped {
			ka.mu.Unlock()
			return
		}
		renewed := *claim
		ka.mu.Unlock()
		if err := d.msg.InProgress(); err != nil {
			d.log.Warn("telling JetStream the command is in progress", zap.Error(err))
		}
		err := e.store.Extend(ctx, &renewed)
		ka.mu.Lock()
		if err == nil {
			// The renewal's revision and lease, with the attempt fields as
			// they are now: an attempt counted meanwhile is written next time.
			cur := claim.Record
			*claim = renewed
			claim.Attempts, claim.FirstAttemptAt, claim.LastAttemptAt = cur.Attempts, cur.FirstAttemptAt, cur.LastAttemptAt
		}
		ka.mu.Unlock()
		if err != nil {
			d.log.Warn("extending the idempotency lease", zap.Error(err))
		}
		ka.t.Reset(every)
	}
	ka.mu.Lock()
	ka.t = time.AfterFunc(every, tick)
	ka.mu.Unlock()
	return ka
}

// stop waits for a renewal in progress, so none races the revision-checked
// update that records the outcome.
func (ka *keepAlive) stop() {
	ka.tick.Lock()
	defer ka.tick.Unlock()
	ka.mu.Lock()
	ka.stopped = true
	ka.t.Stop()
	ka.mu.Unlock()
}
