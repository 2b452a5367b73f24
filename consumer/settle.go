package consumer

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/chatworker/worker/actions"
	"github.com/chatworker/worker/contract"
	"github.com/chatworker/worker/idempotency"
	"github.com/chatworker/worker/internal/backoff"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
)

// completer stores a command's result or dead letter, then acknowledges or
// terminates its message; or hands the message back. It also records a
// success in the idempotency store, and releases a dead letter's claim once
// the dead letter is stored.
type completer struct {
	js       jetstream.JetStream
	store    idempotency.Store
	policy   RetryPolicy
	subjects actions.Subjects
	releaser claimReleaser
	tr       tracer
	m        *Metrics
	latency  LatencyObserver // nil: not recorded
	log      *zap.Logger
	now      func() time.Time
}

// settle publishes the verdict's record, then acknowledges; or hands the
// message back. A record that cannot be stored means no acknowledgement.
// It reports whether the message left the stream (acknowledged or
// terminated) rather than being handed back.
func (c *completer) settle(ctx context.Context, d *delivery, v verdict) bool {
	ctx = context.WithoutCancel(ctx) // a record being stored is worth finishing
	seq := uint64(0)
	if d.meta != nil {
		seq = d.meta.Sequence.Stream
	}
	switch {
	case v.result != nil:
		return c.settleResult(ctx, d, seq, v)
	case v.dead != nil:
		return c.settleDead(ctx, d, seq, v)
	default:
		d.outcome = handedBackAfter(v.retryIn)
		c.handBack(d.msg, v.retryIn, &d.log)
		return false
	}
}

// settleResult stores a success's result and records the success, then
// acknowledges the message.
func (c *completer) settleResult(ctx context.Context, d *delivery, seq uint64, v verdict) bool {
	subject := c.subjects.For(d.cmd.Project).Result(d.cmd.Type, d.cmd.ChatID)
	recordCtx, span := c.tr.record(ctx, "record result", subject)
	completed, recorded := false, false
	if v.claim != nil && !v.claim.Stored() {
		// A first delivery without a claim: the record first, the result
		// only once it is created (see "First deliveries" in handle.go).
		recorded = true
		v.claim.Sequence = seq
		err := c.complete(recordCtx, v.claim, v.out)
		if errors.Is(err, idempotency.ErrLeaseLost) {
			endWith(span, nil)
			return c.yield(d, v)
		}
		completed = c.recorded(d, err)
	}
	// Otherwise the result is stored while the success is recorded: one
	// round trip's wait instead of two. Both finish before the ack, and a
	// result stored without its record is no worse than a crash just
	// after the API call: the record is what a redelivery consults.
	var h nats.Header
	v.result.Traceparent, h = c.tr.recordTrace(recordCtx, d.traceparent)
	pending, err := c.publishAsync(subject, d.cmd.ID, seq, v.result, h)
	if v.claim != nil && !recorded {
		v.claim.Sequence = seq // so this message's redelivery gets "succeeded"
		completed = c.recorded(d, c.complete(recordCtx, v.claim, v.out))
	}
	if err == nil {
		err = waitStored(ctx, pending)
	}
	endWith(span, err)
	d.attempts, d.outcome = v.result.Attempts, outcome(v.result.Status)
	if err != nil && completed {
		// The record has the response's digest, not the response, and
		// no result has it: keep it in the record for the redelivery.
		if kerr := c.store.KeepResponse(ctx, v.claim, v.out); kerr != nil {
			d.log.Error("keeping the response in the record failed: the redelivery's result will carry only its digest", zap.Error(kerr))
		}
	}
	if err != nil {
		d.outcome = outcomeHandedBack
		delay := c.policy.decideUnclaimed(&notStoredError{err}, d.delivered()).Delay
		d.log.Error("storing the result failed: handing the command back", zap.Duration("retry_in", delay), zap.Error(err))
		c.handBack(d.msg, delay, &d.log)
		return false
	}
	c.m.succeeded(string(d.cmd.Type), v.result.Status)
	c.observeLatency(d, d.outcome)
	d.log.Debug("command "+v.result.Status, zap.Int("attempts", v.result.Attempts), zap.Int("api_status", v.result.APIStatus))
	if err := d.msg.Ack(); err != nil {
		d.log.Warn("acknowledging the command failed; its redelivery will be a duplicate", zap.Error(err))
		return false
	}
	return true
}

// recorded reports whether the success was recorded (err is nil), and logs
// why not.
func (c *completer) recorded(d *delivery, err error) bool {
	if err != nil {
		// The effect happened: report it and acknowledge anyway. A
		// republish of this id within the record's TTL could then run
		// again, which the Idempotency-Key header still guards.
		d.log.Error("recording the outcome failed", zap.Error(err))
	}
	return err == nil
}

// yield leaves a first delivery's message to the delivery that took its id
// while it ran without a claim (this worker stalled past AckWait, say):
// that one reports the outcome and settles the message, so this one
// stores nothing and neither acknowledges nor hands the message back.
func (c *completer) yield(d *delivery, v verdict) bool {
	d.attempts, d.outcome = v.result.Attempts, outcomeYielded
	d.log.Warn("another delivery took this command's id while it ran without a claim: leaving the message to it, no result stored")
	return false
}

// settleDead stores a dead letter and releases its claim, then terminates
// the message.
func (c *completer) settleDead(ctx context.Context, d *delivery, seq uint64, v verdict) bool {
	d.attempts, d.outcome = v.dead.Attempts, outcomeDeadLetter
	if err := c.storeDeadLetter(ctx, d, seq, v.dead); err != nil {
		d.outcome = outcomeHandedBack
		delay := c.policy.decideUnclaimed(&notStoredError{err}, d.delivered()).Delay
		d.log.Error("storing the dead letter failed: handing the command back", zap.Duration("retry_in", delay), zap.Error(err))
		c.releaseDead(ctx, v.release, false)
		c.handBack(d.msg, delay, &d.log)
		return false
	}
	c.releaseDead(ctx, v.release, true)
	c.m.deadLettered(string(d.cmd.Type), string(v.dead.Error.Class))
	if v.dead.Error.Class == contract.ClassCapped {
		c.m.capped(d.rules.label)
	}
	c.observeLatency(d, d.outcome)
	d.log.Warn("command dead-lettered", zap.String("class", string(v.dead.Error.Class)), zap.String("reason", v.dead.Error.Message), zap.String("subject", d.subject))
	if err := d.msg.TermWithReason("dead-lettered: " + string(v.dead.Error.Class)); err != nil {
		d.log.Warn("terminating the command failed; its redelivery will be dead-lettered again under the same id", zap.Error(err))
		return false
	}
	return true
}

// observeLatency records the time from the command's publish, as the
// stream stamped it, to its record being stored. A command that cannot be
// decoded counts under the type "invalid", as its dead letter's subject does.
func (c *completer) observeLatency(d *delivery, o outcome) {
	if c.latency == nil || d.meta == nil || d.meta.Timestamp.IsZero() {
		return
	}
	typ := string(d.cmd.Type)
	if typ == "" {
		typ = "invalid"
	}
	c.latency.ObserveCommandLatency(typ, o.latencyLabel(), c.now().Sub(d.meta.Timestamp))
}

// handBack returns a message to the stream, for redelivery after delay (at
// once when delay is 0). log names the command when it is known.
func (c *completer) handBack(msg jetstream.Msg, delay time.Duration, log *cmdLog) {
	var err error
	if delay <= 0 {
		err = msg.Nak()
	} else {
		err = msg.NakWithDelay(delay)
	}
	if err == nil {
		return
	}
	if log != nil {
		log.Warn("handing the command back failed; it returns after AckWait", zap.Error(err))
	} else {
		c.log.Warn("handing the command back failed; it returns after AckWait", zap.String("subject", msg.Subject()), zap.Error(err))
	}
}

// storeDeadLetter publishes a dead letter on its chat's dead-letter subject.
func (c *completer) storeDeadLetter(ctx context.Context, d *delivery, seq uint64, dl *actions.DeadLetter) error {
	id := d.cmd.ID
	if id == "" {
		id = "invalid"
	}
	subject := c.deadLetterSubject(d)
	ctx, span := c.tr.record(ctx, "record dead letter", subject)
	var h nats.Header
	dl.Traceparent, h = c.tr.recordTrace(ctx, d.traceparent)
	err := c.publish(ctx, subject, id, seq, dl, h)
	endWith(span, err)
	return err
}

// complete records a success, retrying a failed write briefly: the record is
// what stops a republished command from running again.
func (c *completer) complete(ctx context.Context, claim *idempotency.Claim, out contract.Outcome) error {
	ctx = context.WithoutCancel(ctx)
	tentative := !claim.Stored()
	record := func() error {
		_, err := c.store.Complete(ctx, claim, out)
		return err
	}
	// The first write almost always lands: the retry machinery (a backoff,
	// its timer and closures) is built only when it did not. A lost lease
	// is final: another worker owns the record now.
	err := record()
	if err == nil || errors.Is(err, idempotency.ErrLeaseLost) {
		return err
	}
	return backoff.Retry(ctx, 3, backoff.Exponential{Initial: 50 * time.Millisecond, Max: time.Second}, func() error {
		err := record()
		if errors.Is(err, idempotency.ErrLeaseLost) {
			if tentative && c.landed(ctx, claim) {
				return nil // the failed create had landed after all
			}
			return backoff.Permanent(err)
		}
		return err
	})
}

// landed reports whether the store holds claim's success for this very
// message: a tentative claim's create that failed without an answer and
// had landed, which the retry then finds.
func (c *completer) landed(ctx context.Context, claim *idempotency.Claim) bool {
	rec, err := c.store.Lookup(ctx, claim.ID)
	return err == nil && rec.State == idempotency.StateSucceeded && rec.Hash == claim.Hash && rec.Sequence == claim.Sequence
}

// releaseDead releases a dead letter's claim (a failure is never final in
// the store, so a replayed dead letter can run again). Once the dead letter
// is stored the record starts a fresh budget, so a replayed dead letter gets
// a full set of retries; when it could not be stored the attempts stay, and
// the redelivery dead-letters the command again without calling the API.
func (c *completer) releaseDead(ctx context.Context, claim *idempotency.Claim, stored bool) {
	if claim == nil {
		return
	}
	if stored {
		claim.Attempts, claim.FirstAttemptAt, claim.LastAttemptAt = 0, time.Time{}, time.Time{}
	}
	c.releaser.release(ctx, claim)
}

func (c *completer) deadLetterSubject(d *delivery) string {
	s := c.subjects
	if d.cmd.Type != "" {
		return s.For(d.cmd.Project).DeadLetter(d.cmd.Type, contract.Token(d.cmd.ChatID))
	}
	if r, err := s.ParseCommand(d.subject); err == nil {
		return r.Subjects(s).DeadLetter(r.Type, r.Chat)
	}
	return s.InvalidDeadLetter(d.subject)
}

// publish stores a record with Nats-Msg-Id <id>:<stream sequence>, so a
// redelivery after a crash cannot store a second copy.
func (c *completer) publish(ctx context.Context, subject, id string, seq uint64, record any, h nats.Header) error {
	msg, err := recordMsg(subject, record, h)
	if err != nil {
		return err
	}
	_, err = c.js.PublishMsg(ctx, msg, jetstream.WithMsgID(actions.RecordID(id, seq)))
	return err
}

// publishAsync starts storing a record as publish does; waitStored waits
// for it.
func (c *completer) publishAsync(subject, id string, seq uint64, record any, h nats.Header) (jetstream.PubAckFuture, error) {
	msg, err := recordMsg(subject, record, h)
	if err != nil {
		return nil, err
	}
	return c.js.PublishMsgAsync(msg, jetstream.WithMsgID(actions.RecordID(id, seq)))
}

// storeTimeout bounds the wait for a record's PubAck, as the JetStream
// client's own default does for a synchronous publish.
const storeTimeout = 5 * time.Second

var errStoreTimeout = errors.New("no acknowledgement from JetStream within " + storeTimeout.String())

func waitStored(ctx context.Context, f jetstream.PubAckFuture) error {
	// The PubAck has usually arrived already, while the outcome was being
	// recorded: then no timer is needed.
	select {
	case <-f.Ok():
		return nil
	case err := <-f.Err():
		return err
	default:
	}
	t := time.NewTimer(storeTimeout)
	defer t.Stop()
	select {
	case <-f.Ok():
		return nil
	case err := <-f.Err():
		return err
	case <-t.C:
		return errStoreTimeout
	case <-ctx.Done():
		return ctx.Err()
	}
}

// recordMsg encodes a record; h, possibly nil, holds its trace context.
func recordMsg(subject string, record any, h nats.Header) (*nats.Msg, error) {
	data, err := json.Marshal(record)
	if err != nil {
		return nil, err
	}
	return &nats.Msg{Subject: subject, Data: data, Header: h}, nil
}
