package consumer

import (
	"context"
	"encoding/json"
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

// The path of one command message: the worker routes it (worker.go,
// order.go) to the executor, which decodes and claims it and calls the API
// until decide says otherwise (this file, call.go); the executor's verdict
// goes to the completer, which stores the record and settles the message
// (settle.go). What happened is classified in one place (classify) and what
// becomes of the command is decided in one place (decide, both in
// retry.go); the functions here gather decide's inputs and carry out its
// answer.

// verdict is what the executor decided for one command message. Exactly one
// of result and dead is set, or neither: then the message goes back to the
// stream, after retryIn.
type verdict struct {
	result  *actions.Result
	dead    *actions.DeadLetter
	retryIn time.Duration
	// claim and out, with a success, are what settle records in the
	// idempotency store while the result is on its way to the stream.
	claim *idempotency.Claim
	out   contract.Outcome
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
	outcome  outcome
	attempts int
	class    actions.Class
	// project is the command's project when the worker paces and pauses
	// projects (see projects.go), "" otherwise; res is the booking in its
	// rate budget for the next call.
	project string
	res     *chat.Reservation
	// rules are the command's quiet hours and frequency cap, its own or
	// its project's (caps.go).
	rules rules
	// claimed is the claim made ahead of this delivery, while the command
	// before it in its chat was being stored (ahead.go); process takes it
	// instead of claiming, or releases it if it stops before the claim.
	claimed *claimed
	// head: its chat's lane found the command its chat's head, and runs
	// nothing else of the chat until it is settled (runLane).
	head bool
}

func newDelivery(log *zap.Logger, msg jetstream.Msg, subject string, data []byte, headers nats.Header) *delivery {
	// Read leniently: a bridge from HTTP may have capitalised the name.
	d := &delivery{msg: msg, subject: subject, data: data, headers: headers, log: cmdLog{base: log},
		traceparent: tracecontext.HeaderCarrier(headers).Get(tracecontext.Traceparent), span: noSpan()}
	if d.traceparent != "" {
		d.log.with(zap.String("traceparent", d.traceparent))
	}
	return d
}

// delivered is how often the command was delivered, 1 when unknown.
func (d *delivery) delivered() uint64 {
	if d.meta == nil {
		return 1
	}
	return d.meta.NumDelivered
}

// claimReleaser releases a claim whose command goes back to the stream, or
// is dead-lettered (releaser, release.go).
type claimReleaser interface {
	release(ctx context.Context, claim *idempotency.Claim)
}

// executor carries out one command: it decodes it, passes it through its
// project's gate, claims its id and calls the API until decide says to stop,
// and answers with a verdict. It stores nothing and settles nothing: that
// is the completer's.
type executor struct {
	exec     Executor
	store    idempotency.Store
	policy   RetryPolicy
	subjects actions.Subjects
	ackWait  time.Duration // the keep-alive renews every third of it
	slots    *slots
	gate     *projectGate // nil without Config.Projects
	caps     *capGate
	releaser claimReleaser
	records  *records
	tr       tracer
	m        *Metrics
	now      func() time.Time
	stopping <-chan struct{} // closed when the worker begins to drain
	// claimless: a first delivery at its chat's head runs on a tentative
	// claim (Config.Claimless; see "First deliveries" below), while awake
	// says the worker did not stall.
	claimless bool
	awake     func() bool
}

// draining reports whether the worker is shutting down.
func (e *executor) draining() bool {
	select {
	case <-e.stopping:
		return true
	default:
		return false
	}
}

// process decodes the command and claims its id, then executes it.
func (e *executor) process(ctx context.Context, d *delivery) verdict {
	defer func() { e.releaseAhead(ctx, d.claimed) }() // not taken: the command stopped before its claim
	if d.meta == nil {
		meta, err := d.msg.Metadata()
		if err != nil {
			// Not a JetStream message: nothing to settle it against.
			d.log.Error("command without JetStream metadata", zap.String("subject", d.subject), zap.Error(err))
			return e.carryOut(d, nil, e.policy.decideUnclaimed(&notStoredError{err}, d.delivered()), err)
		}
		d.meta = meta
	}
	// Headers first: their limits hold before the body is even looked at.
	err := contract.CheckHeaders(d.headers)
	var cmd actions.Command
	if err == nil {
		var firing bool
		cmd, firing, err = contract.DecodeMessage(e.subjects, d.subject, d.data, d.headers, d.meta.Timestamp)
		if firing {
			// Its dead letter, and so a replay, carry the firing's id, not
			// the schedule's.
			if b, merr := json.Marshal(cmd); merr == nil {
				d.data = b
			}
		}
	}
	if err != nil {
		e.m.received("invalid")
		return e.carryOut(d, nil, e.policy.decideUnclaimed(err, d.delivered()), err)
	}
	d.cmd = cmd
	d.log.with(zap.String("id", cmd.ID), zap.String("type", string(cmd.Type)), zap.String("chat", contract.Token(cmd.ChatID)))
	e.m.received(string(cmd.Type))
	traceDecoded(d.span, cmd, d.meta.NumDelivered)

	// Quiet hours (the command's, else its project's for a send) hold the
	// command before it claims or spends anything; a deadline inside them
	// expires it rather than let it arrive late.
	d.rules = e.caps.rulesFor(cmd)
	now := e.now()
	held := cmd
	held.QuietHours = d.rules.quiet
	if until := held.QuietUntil(now); !until.IsZero() {
		var err error = &quietError{delay: until.Sub(now)}
		if !cmd.NotAfter.IsZero() && !cmd.NotAfter.After(until) {
			err = contract.QuietExpired(held, until)
		}
		d.log.Debug("held by quiet hours", zap.Error(err))
		return e.carryOut(d, nil, e.policy.decideUnclaimed(err, d.delivered()), err)
	}

	// A paused project's commands, and those that would wait long for
	// their project's budget, go back before they claim anything.
	if e.gate != nil {
		if project, ok := e.gate.project(cmd); ok {
			d.project = project
			if delay, ok := e.gate.pausedFor(project); ok {
				return e.carryOut(d, nil, e.policy.decideUnclaimed(&pausedError{delay: delay}, d.delivered()), nil)
			}
			r, err := e.gate.budget(ctx, project, d.meta.Sequence.Stream)
			if err != nil {
				return e.carryOut(d, nil, e.policy.decideUnclaimed(err, d.delivered()), err)
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
		claim, err = e.claim(ctx, d)
	}
	if err != nil {
		return e.notClaimed(ctx, d, err)
	}
	// A send over its chat's frequency cap stops here, after its claim (a
	// duplicate has had its result) and before its call.
	if err := e.caps.check(ctx, d, d.rules, e.now()); err != nil {
		d.log.Debug("held by its frequency cap", zap.Error(err))
		return e.failed(ctx, d, claim, e.policy.decide(e.situation(ctx, d, claim, err)), err)
	}
	return e.execute(ctx, d, claim)
}

// First deliveries
//
// A claim costs a store write before the API call, and the write that
// replaces it with the outcome afterwards. With per-chat order on, the
// first delivery of a command does not need it to be alone: the command
// is its chat's head, so no other command of the chat runs anywhere until
// it leaves the stream (order.go), and a command with the same id and the
// same body is a command of the same chat (the hash covers the chat); the
// message itself is delivered again only after AckWait without a word
// from this worker, which keeps it alive while it works (and a worker
// whose keep-alive stalled, claims: orderer.awake). So the first
// delivery reads the record (a read, not a write): none means the id never
// ran, and it calls the API on a tentative claim, which stores nothing.
// The outcome is then created (a create that fails if the id has any
// record), and the result is stored only after it: whoever creates or
// holds the record is the one delivery that reports the outcome. A
// delivery that finds a record, a redelivery, and every delivery with
// order off claim as before.
//
// If the worker stops or stalls past AckWait mid-way, the redelivery
// finds no record and claims the id; if the stalled worker wakes up, its
// create fails and it leaves the message to the redelivery without a
// result, an acknowledgement or a hand-back (settleTentative). A call
// that lasts a third of AckWait takes the lease (the keep-alive's Extend
// creates the claim), as a claimed delivery holds it. A first attempt that
// fails stores its attempt when the command goes back (Release creates the
// record). The argument in full: docs/idempotency.md.

// claim claims the command's id, or, for a first delivery at its chat's
// head whose id has no record, returns a tentative claim (see "First
// deliveries" above); the span covers either.
func (e *executor) claim(ctx context.Context, d *delivery) (*idempotency.Claim, error) {
	claimCtx, span := e.tr.start(ctx, "claim", trace.SpanKindInternal)
	claim, err := e.claimIn(claimCtx, d)
	traceClaim(span, claim, err)
	return claim, err
}

func (e *executor) claimIn(ctx context.Context, d *delivery) (*idempotency.Claim, error) {
	if e.claimless && d.head && d.msg != nil && d.delivered() == 1 && e.awake() {
		_, err := e.store.Lookup(ctx, d.cmd.ID)
		if errors.Is(err, idempotency.ErrNotFound) {
			return e.store.Tentative(d.cmd.ID, d.cmd.Hash())
		}
		// A record (the id ran before, or runs elsewhere) or no answer:
		// the claim decides, as for any delivery.
	}
	return e.store.Claim(ctx, d.cmd.ID, d.cmd.Hash())
}

// notClaimed answers a command whose claim the store refused: an id that
// succeeded before gets its result again; anything else is for decide.
func (e *executor) notClaimed(ctx context.Context, d *delivery, err error) verdict {
	var dup *idempotency.DuplicateError
	if errors.As(err, &dup) {
		res := e.records.repeatResult(ctx, d, dup.Record, d.meta.Sequence.Stream)
		d.log.Info("already succeeded: publishing its result", zap.String("status", res.Status))
		return verdict{result: res}
	}
	var bz *idempotency.BusyError
	switch {
	case errors.As(err, &bz):
	case errors.Is(err, idempotency.ErrConflict):
		err = &contract.Error{Class: contract.ClassConflict,
			Msg: fmt.Sprintf("the id %q was used before for a command with a different body; give each command its own id", d.cmd.ID)}
	default:
		err = &storeError{err}
	}
	dec := e.policy.decideUnclaimed(err, d.meta.NumDelivered)
	switch {
	case bz != nil:
		d.log.Debug("being executed elsewhere: trying again later", zap.Duration("retry_in", dec.Delay))
	case dec.Outcome != outcomeDeadLetter:
		d.log.Warn("idempotency store unavailable: trying again later", zap.Duration("retry_in", dec.Delay), zap.Error(err))
	}
	return e.carryOut(d, nil, dec, err)
}

// execute calls the API until decide says to stop: the command succeeded,
// failed for good, or must wait longer than is worth holding a slot for.
func (e *executor) execute(ctx context.Context, d *delivery, claim *idempotency.Claim) (v verdict) {
	defer func() {
		if p := recover(); p != nil {
			d.log.Error("panic while executing a command", zap.Any("panic", p), zap.ByteString("stack", debug.Stack()))
			err := &panicError{&contract.Error{Class: contract.ClassInternal, Msg: fmt.Sprintf("the worker failed unexpectedly (panic: %v)", p)}}
			v = e.failed(ctx, d, claim, e.policy.decide(e.situation(ctx, d, claim, err)), err)
		}
	}()
	var last error // the last attempt's failure, kept in an expired dead letter
	for {
		if dec := e.policy.decide(e.situation(ctx, d, claim, nil)); dec.Outcome != outcomeProceed {
			return e.failed(ctx, d, claim, dec, e.beforeCallErr(dec, claim, last))
		}
		out, err := e.call(ctx, d, claim)
		switch {
		case err == nil:
			e.caps.count(ctx, d, d.rules, e.now())
			return verdict{result: e.records.result(d, contract.StatusSucceeded, claim.Attempts, out), claim: claim, out: out}
		case errors.Is(err, errLateSlot):
			continue // no call made: the check above dead-letters it
		case d.project != "" && execute.ConfigFault(err):
			// Not the command's fault: the attempt is not counted (call
			// rolled it back), the project pauses, the command waits.
			e.gate.pause(d.project, err)
			delay, _ := e.gate.pausedFor(d.project)
			err = &pausedError{delay: delay, err: err}
		case d.project != "" && errors.Is(err, chat.ErrUnavailable):
			// Paused for an outage (call did not count the attempt): the
			// command waits with its project's others.
			if delay, paused := e.gate.pausedFor(d.project); paused {
				err = &pausedError{delay: delay, err: err}
			}
		}
		s := e.situation(ctx, d, claim, err)
		if s.Class != "" { // the attempt failed (rather than no call being made)
			last = err
			e.m.retried(s.Class)
		}
		dec := e.policy.decide(s)
		if dec.Outcome == outcomeDeadLetter && dec.Class == contract.ClassExhausted && d.project != "" &&
			errors.Is(err, chat.ErrUnavailable) && e.gate.confirmDown(ctx, d.project) {
			// The budget went on an API that is down for the whole project,
			// as a check of the project confirms: not the command's fault.
			// The last attempt is given back and the command waits.
			claim.Attempts--
			delay, _ := e.gate.pausedFor(d.project)
			err = &pausedError{delay: delay, err: err}
			s = e.situation(ctx, d, claim, err)
			dec = e.policy.decide(s)
		}
		if s.Class != "" && (dec.Outcome == outcomeRetryHere || dec.Outcome == outcomeRetryLater) {
			d.log.Info("attempt failed: retrying", zap.Int("attempts", claim.Attempts), zap.Duration("retry_in", dec.Delay), zap.Error(err))
		}
		if dec.Outcome != outcomeRetryHere {
			return e.failed(ctx, d, claim, dec, err)
		}
		traceRetry(d.span, claim.Attempts, dec.Delay, s.Class)
		if !sleepCtx(ctx, dec.Delay) {
			return e.failed(ctx, d, claim, e.policy.decideUnclaimed(errStopping, d.delivered()), ctx.Err())
		}
	}
}

// beforeCallErr says why decide stopped a command before its call when
// workers kept abandoning it; otherwise it is last, the previous attempt's
// failure (nil if none), and deadLetterErr says what it came to: an expired
// deadline, or a budget spent on an earlier delivery whose dead letter could
// not be stored.
func (e *executor) beforeCallErr(dec decision, claim *idempotency.Claim, last error) error {
	if dec.Class == contract.ClassExhausted && claim.Abandoned >= e.policy.MaxAbandoned {
		return &contract.Error{Class: contract.ClassExhausted, Msg: fmt.Sprintf(
			"%d workers took this command and neither finished nor released it before their lease ran out (a worker may crash or stall on it each time)", claim.Abandoned)}
	}
	return last
}

// situation gathers decide's inputs about a claimed command: what happened
// is err, classified by classify, or nil before a call. Once ctx is done
// (the shutdown grace is over) a failure only hands the command back.
func (e *executor) situation(ctx context.Context, d *delivery, claim *idempotency.Claim, err error) situation {
	s := situation{Event: beforeCall, Attempts: claim.Attempts, FirstAttemptAt: claim.FirstAttemptAt, Abandoned: claim.Abandoned, Now: e.now(), Deadline: d.cmd.NotAfter}
	if d.meta != nil {
		s.Delivered = d.meta.NumDelivered
	}
	if err != nil {
		s.Event, s.Class, s.Hint = classify(err)
		if (s.Event == failed || s.Event == panicked) && ctx.Err() != nil {
			s.Event = stopping
		}
	}
	return s
}

// failed carries the decision out. It releases the claim of a command that
// goes back to the stream; a dead letter's claim is released by the
// completer once the dead letter is stored (releaseDead), so that a dead
// letter that could not be stored leaves the budget spent.
func (e *executor) failed(ctx context.Context, d *delivery, claim *idempotency.Claim, dec decision, err error) verdict {
	v := e.carryOut(d, claim, dec, err)
	if v.dead != nil {
		v.release = claim
		return v
	}
	e.releaser.release(ctx, claim)
	return v
}

// carryOut turns a decision to hand back or dead-letter into a verdict.
func (e *executor) carryOut(d *delivery, claim *idempotency.Claim, dec decision, err error) verdict {
	if dec.Outcome != outcomeDeadLetter {
		return verdict{retryIn: dec.Delay}
	}
	d.class = dec.Class
	var rec *idempotency.Record
	if claim != nil {
		rec = &claim.Record
	}
	return verdict{dead: e.records.deadLetter(d, rec, dec.Class, deadLetterErr(d.cmd, dec.Class, rec, err))}
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
