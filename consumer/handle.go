package consumer

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"time"

	"github.com/chatworker/worker/actions"
	"github.com/chatworker/worker/chat"
	"github.com/chatworker/worker/contract"
	"github.com/chatworker/worker/execute"
	"github.com/chatworker/worker/idempotency"
	"github.com/chatworker/worker/internal/tracecontext"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"
)

// The path of one command message: handle decodes and claims it (process),
// calls the API until decide says otherwise (execute, call.go), turns the
// decision into a record (records.go) and settles the message (settle.go).
// What becomes of the command is decided in one place, decide (retry.go);
// the functions here gather its inputs and carry out its answer.

// verdict is what handling decided for one command message. Exactly one of
// result and dead is set, or neither: then the message goes back to the
// stream, after retryIn.
type verdict struct {
	result  *actions.Result
	dead    *actions.DeadLetter
	retryIn time.Duration
	// claim and outcome, with a success, are what settle records in the
	// idempotency store while the result is on its way to the stream.
	claim   *idempotency.Claim
	outcome contract.Outcome
	// release, with a dead letter, is the claim to release once the dead
	// letter is stored: until then the id stays claimed with its attempts.
	release *idempotency.Claim
}

// delivery is one command message being handled.
type delivery struct {
	msg         jetstream.Msg // nil when the message was read from the stream, not delivered
	subject     string
	data        []byte
	headers     nats.Header
	meta        *jetstream.MsgMetadata
	cmd         actions.Command // zero until decoded
	log         cmdLog
	traceparent string // the command's, "" when it has none
	// span is the delivery's span (a no-op one when tracing is off); what
	// it ends with is set as the delivery goes: the outcome by settle, the
	// attempts by call, the class of a dead letter by carryOut.
	span     trace.Span
	outcome  string
	attempts int
	class    actions.Class
	// project is the command's project when the worker paces and pauses
	// projects (see projects.go), "" otherwise; res is the booking in its
	// rate budget for the next call.
	project string
	res     *chat.Reservation
	// claimed is the claim made ahead of this delivery, while the command
	// before it in its chat was being stored (ahead.go); process takes it
	// instead of claiming, or releases it if it stops before the claim.
	claimed *claimed
}

// handle executes one command message and settles it: it acknowledges the
// message only after its result or dead letter is stored. It does not check
// per-chat order: runLane does that before calling it. meta is the
// message's metadata when the caller has already parsed it (nil
// otherwise). It reports whether the message left the stream (acknowledged
// or terminated) rather than being handed back.
func (w *Worker) handle(ctx context.Context, msg jetstream.Msg, meta *jetstream.MsgMetadata) bool {
	ctx, span := w.startCommand(ctx, msg.Subject(), msg.Headers())
	return w.handleIn(ctx, span, msg, meta, nil, nil)
}

// handleIn is handle within the delivery's span, which it ends. claim, if
// not nil, is the command's claim made ahead (ahead.go), which process uses
// or releases; settling, if not nil, is called once the command has a
// result, before the result is stored.
func (w *Worker) handleIn(ctx context.Context, span trace.Span, msg jetstream.Msg, meta *jetstream.MsgMetadata, claim *claimed, settling func()) bool {
	d := w.newDelivery(msg, msg.Subject(), msg.Data(), msg.Headers())
	d.meta, d.span, d.claimed = meta, span, claim
	defer endCommand(d)
	w.m.inFlight(1)
	defer w.m.inFlight(-1)
	v := w.process(ctx, d)
	if v.result != nil && settling != nil {
		settling()
	}
	return w.settle(ctx, d, v)
}

func (w *Worker) newDelivery(msg jetstream.Msg, subject string, data []byte, headers nats.Header) *delivery {
	// Read leniently: a bridge from HTTP may have capitalised the name.
	d := &delivery{msg: msg, subject: subject, data: data, headers: headers, log: cmdLog{base: w.log},
		traceparent: tracecontext.HeaderCarrier(headers).Get(tracecontext.Traceparent), span: noSpan()}
	if d.traceparent != "" {
		d.log.with(zap.String("traceparent", d.traceparent))
	}
	return d
}

// process decodes the command and claims its id, then executes it.
func (w *Worker) process(ctx context.Context, d *delivery) verdict {
	defer func() { w.release(ctx, d.claimed) }() // not taken: the command stopped before its claim
	if d.meta == nil {
		meta, err := d.msg.Metadata()
		if err != nil {
			// Not a JetStream message: nothing to settle it against.
			d.log.Error("command without JetStream metadata", zap.String("subject", d.subject), zap.Error(err))
			return w.carryOut(d, nil, w.cfg.Retry.decide(situation{Event: recordNotStored}), err)
		}
		d.meta = meta
	}
	// Headers first: their limits hold before the body is even looked at.
	err := contract.CheckHeaders(d.headers)
	var cmd actions.Command
	if err == nil {
		cmd, err = contract.Decode(w.cfg.Topology.Subjects, d.subject, d.data)
	}
	if err != nil {
		w.m.received("invalid")
		return w.carryOut(d, nil, w.cfg.Retry.decide(situation{Event: failed, Class: execute.ClassOf(err)}), err)
	}
	d.cmd = cmd
	d.log.with(zap.String("id", cmd.ID), zap.String("type", string(cmd.Type)), zap.String("chat", contract.Token(cmd.ChatID)))
	w.m.received(string(cmd.Type))
	traceDecoded(d.span, cmd, d.meta.NumDelivered)

	// A paused project's commands, and those that would wait long for
	// their project's budget, go back before they claim anything.
	if w.projects != nil {
		if project, ok := w.projects.src.Project(cmd); ok {
			d.project = project
			if delay, ok := w.projects.pausedFor(project); ok {
				return w.carryOut(d, nil, w.cfg.Retry.decide(situation{Event: paused, Hint: delay}), nil)
			}
			r, wait, err := w.budget(ctx, d)
			if err != nil {
				return w.carryOut(d, nil, w.cfg.Retry.decide(situation{Event: stopping}), err)
			}
			if r == nil {
				return w.carryOut(d, nil, w.cfg.Retry.decide(situation{Event: rateWait, Hint: wait}), nil)
			}
			d.res = r
			defer func() {
				if d.res != nil {
					d.res.Cancel() // no call was made with it
				}
			}()
		}
	}

	var claim *idempotency.Claim
	if c := d.claimed; c != nil {
		d.claimed = nil
		claim, err = c.claim, c.err
	} else {
		claimCtx, span := w.start(ctx, "claim", trace.SpanKindInternal)
		claim, err = w.store.Claim(claimCtx, cmd.ID, cmd.Hash())
		traceClaim(span, err)
	}
	var dup *idempotency.DuplicateError
	var bz *idempotency.BusyError
	switch {
	case errors.As(err, &dup):
		res := w.repeatResult(ctx, d, dup.Record, d.meta.Sequence.Stream)
		d.log.Info("already succeeded: publishing its result", zap.String("status", res.Status))
		return verdict{result: res}
	case errors.As(err, &bz):
		dec := w.cfg.Retry.decide(situation{Event: busy, Hint: bz.RetryIn, Delivered: d.meta.NumDelivered})
		d.log.Debug("being executed elsewhere: trying again later", zap.Duration("retry_in", dec.Delay))
		return w.carryOut(d, nil, dec, err)
	case errors.Is(err, idempotency.ErrConflict):
		err = &contract.Error{Class: contract.ClassConflict,
			Msg: fmt.Sprintf("the id %q was used before for a command with a different body; give each command its own id", cmd.ID)}
		return w.carryOut(d, nil, w.cfg.Retry.decide(situation{Event: failed, Class: contract.ClassConflict}), err)
	case err != nil:
		dec := w.cfg.Retry.decide(situation{Event: storeDown, Delivered: d.meta.NumDelivered})
		d.log.Warn("idempotency store unavailable: trying again later", zap.Duration("retry_in", dec.Delay), zap.Error(err))
		return w.carryOut(d, nil, dec, err)
	}
	return w.execute(ctx, d, claim)
}

// execute calls the API until decide says to stop: the command succeeded,
// failed for good, or must wait longer than is worth holding a slot for.
func (w *Worker) execute(ctx context.Context, d *delivery, claim *idempotency.Claim) (v verdict) {
	defer func() {
		if p := recover(); p != nil {
			d.log.Error("panic while executing a command", zap.Any("panic", p), zap.ByteString("stack", debug.Stack()))
			err := &contract.Error{Class: contract.ClassInternal, Msg: fmt.Sprintf("the worker failed unexpectedly (panic: %v)", p)}
			v = w.failed(ctx, d, claim, w.cfg.Retry.decide(w.situation(ctx, panicked, d, claim, err)), err)
		}
	}()
	var last error // the last attempt's failure, kept in an expired dead letter
	for {
		if dec := w.cfg.Retry.decide(w.situation(ctx, beforeCall, d, claim, nil)); dec.Action != proceed {
			return w.failed(ctx, d, claim, dec, w.beforeCallErr(dec, claim, last))
		}
		out, err := w.call(ctx, d, claim)
		var rw *errRateWait
		switch {
		case err == nil:
			return verdict{result: w.result(d, contract.StatusSucceeded, claim.Attempts, out), claim: claim, outcome: out}
		case errors.Is(err, errNoSlot):
			return w.failed(ctx, d, claim, w.cfg.Retry.decide(situation{Event: stopping}), err) // no call made
		case errors.Is(err, errLateSlot):
			continue // no call made: the check above dead-letters it
		case errors.As(err, &rw):
			return w.failed(ctx, d, claim, w.cfg.Retry.decide(situation{Event: rateWait, Hint: rw.delay}), err) // no call made
		case d.project != "" && execute.ConfigFault(err):
			// Not the command's fault: the attempt is not counted (call
			// rolled it back), the project pauses, the command waits.
			w.projects.pause(d.project, err)
			delay, _ := w.projects.pausedFor(d.project)
			return w.failed(ctx, d, claim, w.cfg.Retry.decide(situation{Event: paused, Hint: delay}), err)
		}
		last = err
		s := w.situation(ctx, failed, d, claim, err)
		w.m.retried(s.Class)
		dec := w.cfg.Retry.decide(s)
		if dec.Action == retryHere || dec.Action == handBack && dec.Delay > 0 {
			d.log.Info("attempt failed: retrying", zap.Int("attempts", claim.Attempts), zap.Duration("retry_in", dec.Delay), zap.Error(err))
		}
		if dec.Action != retryHere {
			return w.failed(ctx, d, claim, dec, err)
		}
		traceRetry(d.span, claim.Attempts, dec.Delay, s.Class)
		if !sleepCtx(ctx, dec.Delay) {
			return w.failed(ctx, d, claim, w.cfg.Retry.decide(situation{Event: stopping}), ctx.Err())
		}
	}
}

// beforeCallErr says why decide stopped a command before its call when
// workers kept abandoning it; otherwise it is last, the previous attempt's
// failure (nil if none), and deadLetterErr says what it came to: an expired
// deadline, or a budget spent on an earlier delivery whose dead letter could
// not be stored.
func (w *Worker) beforeCallErr(dec decision, claim *idempotency.Claim, last error) error {
	if dec.Class == contract.ClassExhausted && claim.Abandoned >= w.cfg.Retry.MaxAbandoned {
		return &contract.Error{Class: contract.ClassExhausted, Msg: fmt.Sprintf(
			"%d workers took this command and neither finished nor released it before their lease ran out (a worker may crash or stall on it each time)", claim.Abandoned)}
	}
	return last
}

// situation gathers decide's inputs about a claimed command. Once ctx is
// done (the shutdown grace is over) a failure only hands the command back.
func (w *Worker) situation(ctx context.Context, ev event, d *delivery, claim *idempotency.Claim, err error) situation {
	if ev != beforeCall && ctx.Err() != nil {
		ev = stopping
	}
	s := situation{Event: ev, Attempts: claim.Attempts, FirstAttemptAt: claim.FirstAttemptAt, Abandoned: claim.Abandoned, Now: w.now(), Deadline: d.cmd.NotAfter}
	if d.meta != nil {
		s.Delivered = d.meta.NumDelivered
	}
	if err != nil {
		s.Class = execute.ClassOf(err)
		s.Hint, _ = chat.RetryAfter(err)
	}
	return s
}

// failed carries the decision out. It releases the claim of a command that
// goes back to the stream; a dead letter's claim is released by settle once
// the dead letter is stored (releaseDead), so that a dead letter that could
// not be stored leaves the budget spent.
func (w *Worker) failed(ctx context.Context, d *delivery, claim *idempotency.Claim, dec decision, err error) verdict {
	v := w.carryOut(d, claim, dec, err)
	if v.dead != nil {
		v.release = claim
		return v
	}
	w.releaseClaim(ctx, claim)
	return v
}

// releaseDead releases a dead letter's claim (a failure is never final in
// the store, so a replayed dead letter can run again). Once the dead letter
// is stored the record starts a fresh budget, so a replayed dead letter gets
// a full set of retries; when it could not be stored the attempts stay, and
// the redelivery dead-letters the command again without calling the API.
func (w *Worker) releaseDead(ctx context.Context, d *delivery, claim *idempotency.Claim, stored bool) {
	if claim == nil {
		return
	}
	if stored {
		claim.Attempts, claim.FirstAttemptAt, claim.LastAttemptAt = 0, time.Time{}, time.Time{}
	}
	w.releaseClaim(ctx, claim)
}

// carryOut turns a decision to hand back or dead-letter into a verdict.
func (w *Worker) carryOut(d *delivery, claim *idempotency.Claim, dec decision, err error) verdict {
	if dec.Action != deadLetter {
		return verdict{retryIn: dec.Delay}
	}
	d.class = dec.Class
	var rec *idempotency.Record
	if claim != nil {
		rec = &claim.Record
	}
	return verdict{dead: w.deadLetter(d, rec, dec.Class, deadLetterErr(d.cmd, dec.Class, rec, err))}
}

// deadLetterErr says why the command is dead: the failure itself, or, when
// the class is the consumer's own, what the failures came to.
func deadLetterErr(cmd actions.Command, class actions.Class, rec *idempotency.Record, err error) error {
	if execute.ClassOf(err) == class {
		return err
	}
	switch {
	case class == contract.ClassExhausted && rec != nil:
		return &contract.Error{Class: class, Msg: fmt.Sprintf("gave up after %d attempts", rec.Attempts), Err: err}
	case class == contract.ClassExpired:
		return contract.Expired(cmd, err) // err, the last attempt's failure, keeps its API status
	}
	return err
}
