package consumer

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/chatworker/worker/actions"
	"github.com/chatworker/worker/chat"
	"github.com/chatworker/worker/idempotency"
	"github.com/chatworker/worker/internal/telemetry"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"
)

// errNoSlot: the worker began shutting down while the command waited for a
// free API call slot; no call was made, and the command goes back to the
// stream at once.
var errNoSlot = errors.New("shutting down before a slot for the API call was free")

// errLateSlot: the command's deadline passed while it waited for a free API
// call slot; no call was made.
var errLateSlot = errors.New("the deadline passed while waiting for a slot for the API call")

// call waits for a free API call slot, counts the attempt and makes one API
// call, keeping the message and the claim alive if the wait and the call
// outlast a fraction of AckWait.
func (w *Worker) call(ctx context.Context, d *delivery, claim *idempotency.Claim) (actions.Outcome, error) {
	ka := w.keepAlive(ctx, d, claim)
	defer ka.stop()
	select {
	case w.calls <- struct{}{}:
	case <-w.stopping:
		return actions.Outcome{}, errNoSlot
	case <-ctx.Done():
		return actions.Outcome{}, errNoSlot
	}
	defer func() { <-w.calls }()
	if w.Draining() {
		// The slot and the shutdown came together: once a shutdown begins,
		// no call starts; calls under way finish within the grace.
		return actions.Outcome{}, errNoSlot
	}
	if dec := w.cfg.Retry.decide(situation{Event: beforeCall, Deadline: d.deadline, Now: w.now()}); dec.Action != proceed {
		// The wait for the slot outlasted the deadline: no call starts at
		// or after it (execute's own check dead-letters the command).
		return actions.Outcome{}, errLateSlot
	}
	// The attempt fields are what a lease extension writes: they change
	// under the keep-alive's lock.
	ka.mu.Lock()
	now := w.now()
	claim.Attempts++
	if claim.FirstAttemptAt.IsZero() {
		claim.FirstAttemptAt = now
	}
	claim.LastAttemptAt = now
	d.attempts = claim.Attempts
	ka.mu.Unlock()
	callCtx, span := w.start(ctx, "api call", trace.SpanKindInternal)
	if span.IsRecording() {
		span.SetAttributes(attribute.Int(telemetry.AttrAttempts, claim.Attempts))
	}
	start := time.Now()
	out, err := w.exec.Execute(callCtx, d.cmd)
	endWith(span, err)
	d.log.Debug("api call", zap.Duration("took", time.Since(start)), zap.Int("api_status", apiStatus(out, err)), zap.Error(err))
	return out, err
}

// apiStatus is the HTTP status the API answered with, 0 when it did not.
func apiStatus(out actions.Outcome, err error) int {
	if err == nil {
		return out.APIStatus // before apiErr, whose address escapes: no allocation per success
	}
	var apiErr *chat.APIError
	if errors.As(err, &apiErr) {
		return apiErr.StatusCode
	}
	return 0
}

type keepAlive struct {
	mu      sync.Mutex
	stopped bool
	t       *time.Timer
}

func (w *Worker) keepAlive(ctx context.Context, d *delivery, claim *idempotency.Claim) *keepAlive {
	ka := &keepAlive{}
	every := w.cfg.Topology.AckWait / 3
	tick := func() {
		ka.mu.Lock()
		defer ka.mu.Unlock()
		if ka.stopped {
			return
		}
		if err := d.msg.InProgress(); err != nil {
			d.log.Warn("telling JetStream the command is in progress", zap.Error(err))
		}
		if err := w.store.Extend(ctx, claim); err != nil {
			d.log.Warn("extending the idempotency lease", zap.Error(err))
		}
		ka.t.Reset(every)
	}
	ka.mu.Lock()
	ka.t = time.AfterFunc(every, tick)
	ka.mu.Unlock()
	return ka
}

// stop waits for a tick in progress, so no lease extension races the
// revision-checked update that records the outcome.
func (ka *keepAlive) stop() {
	ka.mu.Lock()
	ka.stopped = true
	ka.t.Stop()
	ka.mu.Unlock()
}
