package consumer

import (
	"context"

	"github.com/chatworker/worker/contract"
	"github.com/chatworker/worker/idempotency"
	"go.opentelemetry.io/otel/trace"
)

// Making the next command ready
//
// A lane runs its chat's commands one after another, and each goes through
// a claim, the API call and the storing of its record: with a store round
// trip on either side of the call, a busy chat finishes a command every
// call plus two round trips. When the lane holds the chat's next command,
// the worker makes it ready while the one before it is being stored (its
// call succeeded): it checks that the next one will be the chat's head once
// this one has left the stream (runLane's check, with this one counted as
// settled) and claims its id. Its API call still starts only after the
// record of the one before is stored, as before; the check and the claim
// leave the chat's path, and a busy chat finishes a command every call plus
// one round trip.
//
// If the one before is not settled after all (its record could not be
// stored: it goes back to the stream), what was made ready assumed wrongly
// and is dropped: the claim is released, and the next command is checked
// again, finds its predecessor in the stream and goes back behind it.

// ahead is a lane's next command being made ready.
type ahead struct {
	q    queued
	ctx  context.Context // holds the delivery's span, begun here
	span trace.Span
	done chan struct{} // closed when head and claim are set
	// stale: the command before it was not settled, which the check and
	// the claim assumed; only runLane sets it.
	stale bool
	head  bool
	claim *claimed // nil when not claimed ahead
}

// claimed is the answer to a claim made ahead of a command's handling.
type claimed struct {
	claim *idempotency.Claim
	err   error
}

// prepare starts making ready the lane's next command, if it holds one,
// while prev, the chat's head, whose lane state was state, is being stored.
func (w *Worker) prepare(ctx context.Context, l *lane, prev queued, state chatState) *ahead {
	q, ok := w.lanes.peek(l)
	if !ok || q.meta == nil || w.Draining() {
		return nil
	}
	a := &ahead{q: q, done: make(chan struct{})}
	a.ctx, a.span = w.tr.command(ctx, q.msg.Subject(), q.msg.Headers())
	// What settledHead will record once prev has left the stream.
	after := chatState{settled: max(state.settled, prev.meta.Sequence.Stream), proof: proofOf(prev)}
	go func() {
		defer close(a.done)
		if a.head = w.order.checkHead(a.ctx, l.chat, after, q); a.head {
			a.claim = w.exec.claimAhead(a.ctx, q)
		}
	}()
	return a
}

// claimAhead claims q's id, as process would; nil when process would not
// get that far (the command is invalid, or its project is paused).
func (e *executor) claimAhead(ctx context.Context, q queued) *claimed {
	if contract.CheckHeaders(q.msg.Headers()) != nil {
		return nil
	}
	meta, err := q.msg.Metadata()
	if err != nil {
		return nil
	}
	cmd, _, err := contract.DecodeMessage(e.subjects, q.msg.Subject(), q.msg.Data(), q.msg.Headers(), meta.Timestamp)
	if err != nil {
		return nil
	}
	held := cmd
	held.QuietHours = e.caps.rulesFor(cmd).quiet
	if !held.QuietUntil(e.now()).IsZero() {
		return nil
	}
	if e.gate != nil {
		if project, ok := e.gate.project(cmd); ok {
			if _, paused := e.gate.pausedFor(project); paused {
				return nil
			}
		}
	}
	claimCtx, span := e.tr.start(ctx, "claim", trace.SpanKindInternal)
	c, err := e.store.Claim(claimCtx, cmd.ID, cmd.Hash())
	traceClaim(span, c, err)
	return &claimed{claim: c, err: err}
}

// wait waits until a is ready.
func (a *ahead) wait() { <-a.done }

// releaseAhead releases c's claim, if it holds one: the command goes back
// to the stream, or is handled without it.
func (e *executor) releaseAhead(ctx context.Context, c *claimed) {
	if c == nil || c.claim == nil {
		return
	}
	e.releaser.release(ctx, c.claim)
}
