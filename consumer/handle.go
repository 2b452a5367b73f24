package consumer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"runtime/debug"
	"strconv"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/chatworker/worker/actions"
	"github.com/chatworker/worker/chat"
	"github.com/chatworker/worker/idempotency"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
)

// verdict is what handling decided for one command message. Exactly one of
// result and dead is set, or neither: then the message goes back to the
// stream, after retryIn.
type verdict struct {
	result  *Result
	dead    *DeadLetter
	retryIn time.Duration
	// claim and outcome, with a success, are what settle records in the
	// idempotency store while the result is on its way to the stream.
	claim   *idempotency.Claim
	outcome actions.Outcome
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
	traceparent string
}

// Handle executes one command message and settles it: it acknowledges the
// message only after its result or dead letter is stored. It does not care
// how the message was fetched. It reports whether the message left the
// stream (acknowledged or terminated) rather than being handed back.
func (w *Worker) Handle(ctx context.Context, msg jetstream.Msg) bool {
	return w.handle(ctx, msg, nil)
}

// handle is Handle with the message's metadata when the caller has already
// parsed it (nil otherwise).
func (w *Worker) handle(ctx context.Context, msg jetstream.Msg, meta *jetstream.MsgMetadata) bool {
	d := w.newDelivery(msg, msg.Subject(), msg.Data(), msg.Headers())
	d.meta = meta
	w.m.inFlight(1)
	defer w.m.inFlight(-1)
	return w.settle(ctx, d, w.process(ctx, d))
}

func (w *Worker) newDelivery(msg jetstream.Msg, subject string, data []byte, headers nats.Header) *delivery {
	d := &delivery{msg: msg, subject: subject, data: data, headers: headers, log: cmdLog{base: w.log}, traceparent: headers.Get("traceparent")}
	if d.traceparent != "" {
		d.log.with(zap.String("traceparent", d.traceparent))
	}
	return d
}

func (w *Worker) process(ctx context.Context, d *delivery) verdict {
	if d.meta == nil {
		meta, err := d.msg.Metadata()
		if err != nil {
			// Not a JetStream message: nothing to settle it against.
			d.log.Error("command without JetStream metadata", zap.String("subject", d.subject), zap.Error(err))
			return verdict{retryIn: time.Second}
		}
		d.meta = meta
	}
	meta := d.meta
	// Headers first: their limits hold before the body is even looked at.
	err := actions.CheckHeaders(d.headers)
	var cmd actions.Command
	if err == nil {
		cmd, err = actions.Decode(w.cfg.Topology.Subjects, d.subject, d.data)
	}
	if err != nil {
		w.m.received("invalid")
		return w.deadLetter(d, nil, err)
	}
	d.cmd = cmd
	d.log.with(zap.String("id", cmd.ID), zap.String("type", string(cmd.Type)), zap.String("chat", actions.Token(cmd.ChatID)))
	w.m.received(string(cmd.Type))

	claim, err := w.store.Claim(ctx, cmd.ID, cmd.Hash())
	var dup *idempotency.DuplicateError
	var busy *idempotency.BusyError
	switch {
	case errors.As(err, &dup):
		d.log.Info("already succeeded: publishing a duplicate result")
		return verdict{result: w.result(d, StatusDuplicate, dup.Record.Attempts, actions.Outcome{APIStatus: dup.Record.APIStatus, Response: dup.Record.Response})}
	case errors.As(err, &busy):
		// Usually the other run finishes soon: poll with backoff, but never
		// past the point where its lease expires and we could take over.
		delay := min(busy.RetryIn, w.cfg.Retry.Delay(int(meta.NumDelivered), 0))
		d.log.Debug("being executed elsewhere: trying again later", zap.Duration("retry_in", delay))
		return verdict{retryIn: max(delay, 50*time.Millisecond)}
	case errors.Is(err, idempotency.ErrConflict):
		return w.deadLetter(d, nil, &actions.Error{Class: actions.ClassConflict,
			Msg: fmt.Sprintf("the id %q was used before for a command with a different body; give each command its own id", cmd.ID)})
	case err != nil:
		d.log.Warn("idempotency store unavailable: trying again later", zap.Error(err))
		return verdict{retryIn: w.cfg.Retry.Delay(1, 0)}
	}
	return w.execute(ctx, d, claim)
}

// execute calls the API until the command succeeds, fails for good, or must
// wait longer than is worth holding a slot for.
func (w *Worker) execute(ctx context.Context, d *delivery, claim *idempotency.Claim) (v verdict) {
	defer func() {
		if p := recover(); p != nil {
			d.log.Error("panic while executing a command", zap.Any("panic", p), zap.ByteString("stack", debug.Stack()))
			v = w.failed(ctx, d, claim, &actions.Error{Class: actions.ClassInternal, Msg: fmt.Sprintf("the worker failed unexpectedly (panic: %v)", p)})
		}
	}()
	for {
		out, err := w.call(ctx, d, claim)
		if errors.Is(err, errNoSlot) || actions.ClassOf(err) == actions.ClassExpired {
			return w.failed(ctx, d, claim, err) // no call made: hand it back, or its deadline passed
		}
		if err == nil {
			return verdict{result: w.result(d, StatusSucceeded, claim.Attempts, out), claim: claim, outcome: out}
		}
		w.m.retried(err)
		if v, done := w.failedOrRetry(ctx, d, claim, err); done {
			return v
		}
	}
}

// complete records a success, retrying a failed write briefly: the record is
// what stops a republished command from running again.
func (w *Worker) complete(ctx context.Context, claim *idempotency.Claim, out actions.Outcome) error {
	ctx = context.WithoutCancel(ctx)
	record := func() error {
		_, err := w.store.Complete(ctx, claim, idempotency.Outcome{APIStatus: out.APIStatus, Response: out.Response})
		return err
	}
	// The first write almost always lands: the retry machinery (a backoff,
	// its timer and closures) is built only when it did not. A lost lease
	// is final: another worker owns the record now.
	err := record()
	if err == nil || errors.Is(err, idempotency.ErrLeaseLost) {
		return err
	}
	b := backoff.WithMaxRetries(backoff.NewExponentialBackOff(backoff.WithInitialInterval(50*time.Millisecond)), 2)
	return backoff.Retry(func() error {
		err := record()
		if errors.Is(err, idempotency.ErrLeaseLost) {
			return backoff.Permanent(err)
		}
		return err
	}, b)
}

// failedOrRetry decides what a failed attempt leads to. It returns done=false
// after waiting in-process, when the caller should try again at once.
func (w *Worker) failedOrRetry(ctx context.Context, d *delivery, claim *idempotency.Claim, err error) (verdict, bool) {
	if !actions.ClassOf(err).Retryable() || ctx.Err() != nil || w.cfg.Retry.Exhausted(claim.Attempts, claim.FirstAttemptAt, w.now()) {
		return w.failed(ctx, d, claim, err), true
	}
	hint, _ := chat.RetryAfter(err)
	delay := w.cfg.Retry.Delay(claim.Attempts, hint)
	if d.cmd.PastDeadline(w.now().Add(delay)) {
		return w.failed(ctx, d, claim, actions.Expired(d.cmd, err)), true
	}
	d.log.Info("attempt failed: retrying", zap.Int("attempts", claim.Attempts), zap.Duration("retry_in", delay), zap.Error(err))
	if delay > w.cfg.Retry.InProcessMax {
		return w.failed(ctx, d, claim, &retryLater{err: err, delay: delay}), true
	}
	t := time.NewTimer(delay)
	defer t.Stop()
	select {
	case <-t.C:
		return verdict{}, false
	case <-ctx.Done():
		return w.failed(ctx, d, claim, ctx.Err()), true
	}
}

// retryLater marks a retryable failure whose next attempt is far enough
// away to hand the message back to the stream.
type retryLater struct {
	err   error
	delay time.Duration
}

func (r *retryLater) Error() string { return r.err.Error() }
func (r *retryLater) Unwrap() error { return r.err }

// failed releases the claim (a failure is never final in the store, so a
// replayed dead letter can run again) and turns err into a verdict: this is
// the one place where a class decides between retrying and dead-lettering.
func (w *Worker) failed(ctx context.Context, d *delivery, claim *idempotency.Claim, err error) verdict {
	v := w.failedVerdict(ctx, d, claim, err)
	if v.dead != nil {
		// The dead letter keeps the attempt count; the record starts a
		// fresh budget, so a replayed dead letter gets a full set of retries.
		claim.Attempts, claim.FirstAttemptAt, claim.LastAttemptAt = 0, time.Time{}, time.Time{}
	}
	if rerr := w.store.Release(context.WithoutCancel(ctx), claim); rerr != nil {
		d.log.Warn("releasing the claim failed; it frees itself when its lease ends", zap.Error(rerr))
	}
	return v
}

func (w *Worker) failedVerdict(ctx context.Context, d *delivery, claim *idempotency.Claim, err error) verdict {
	var later *retryLater
	switch {
	case errors.As(err, &later):
		return verdict{retryIn: later.delay}
	case ctx.Err() != nil, errors.Is(err, errNoSlot):
		return verdict{} // shutting down: hand back at once
	case actions.ClassOf(err).Retryable():
		// A retryable failure reaches here with its budget spent, or from a
		// panic: that retries across deliveries, within the same budget.
		if !w.cfg.Retry.Exhausted(claim.Attempts, claim.FirstAttemptAt, w.now()) {
			return verdict{retryIn: w.cfg.Retry.Delay(claim.Attempts, 0)}
		}
		err = &actions.Error{Class: actions.ClassExhausted, Msg: fmt.Sprintf("gave up after %d attempts", claim.Attempts), Err: err}
	}
	return w.deadLetter(d, claim, err)
}

// errNoSlot: the worker began shutting down while the command waited for a
// free API call slot; no call was made, and the command goes back to the
// stream at once.
var errNoSlot = errors.New("shutting down before a slot for the API call was free")

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
	if d.cmd.PastDeadline(w.now()) {
		return actions.Outcome{}, actions.Expired(d.cmd, nil)
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
	ka.mu.Unlock()
	start := time.Now()
	out, err := w.exec.Execute(ctx, d.cmd)
	d.log.Debug("api call", zap.Duration("took", time.Since(start)), zap.Int("api_status", out.APIStatus), zap.Error(err))
	return out, err
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

func (w *Worker) result(d *delivery, status string, attempts int, out actions.Outcome) *Result {
	resp := out.Response
	if len(resp) == 0 {
		resp = json.RawMessage("null")
	}
	return &Result{
		ID: d.cmd.ID, Type: d.cmd.Type, ChatID: d.cmd.ChatID, Status: status, Attempts: attempts,
		APIStatus: out.APIStatus, Response: resp, CompletedAt: w.now().UTC(), Metadata: d.cmd.Metadata,
		Traceparent: d.traceparent,
	}
}

func (w *Worker) deadLetter(d *delivery, claim *idempotency.Claim, err error) verdict {
	class := actions.ClassOf(err)
	if class == actions.ClassRetryable || class == actions.ClassInternal {
		class = actions.ClassExhausted
	}
	dl := &DeadLetter{
		Subject:     d.subject,
		Headers:     deadLetterHeaders(d.headers),
		Error:       ErrorInfo{Class: class, Message: err.Error()},
		Worker:      w.cfg.Name,
		Stream:      d.meta.Stream,
		Sequence:    d.meta.Sequence.Stream,
		DeadAt:      w.now().UTC(),
		Traceparent: d.traceparent,
	}
	var apiErr *chat.APIError
	if errors.As(err, &apiErr) {
		dl.Error.APIStatus, dl.Error.APICode = apiErr.StatusCode, apiErr.Code
	}
	dl.Command, dl.Raw = deadLetterBody(d.data)
	if claim != nil {
		dl.Attempts = claim.Attempts
		if !claim.FirstAttemptAt.IsZero() {
			first, last := claim.FirstAttemptAt.UTC(), claim.LastAttemptAt.UTC()
			dl.FirstAttemptAt, dl.LastAttemptAt = &first, &last
		}
	}
	return verdict{dead: dl}
}

func isJSONObject(data []byte) bool {
	var obj map[string]json.RawMessage
	return json.Unmarshal(data, &obj) == nil && obj != nil
}

// settle publishes the verdict's record, then acknowledges; or hands the
// message back. A record that cannot be stored means no acknowledgement.
func (w *Worker) settle(ctx context.Context, d *delivery, v verdict) bool {
	ctx = context.WithoutCancel(ctx) // a record being stored is worth finishing
	seq := uint64(0)
	if d.meta != nil {
		seq = d.meta.Sequence.Stream
	}
	switch {
	case v.result != nil:
		// The result is stored while the success is recorded: one round
		// trip's wait instead of two. Both finish before the ack, and a
		// result stored without its record is no worse than a crash just
		// after the API call: the record is what a redelivery consults.
		pending, err := w.publishAsync(w.cfg.Topology.Subjects.Result(d.cmd.Type, d.cmd.ChatID), d.cmd.ID, seq, v.result)
		if v.claim != nil {
			if err := w.complete(ctx, v.claim, v.outcome); err != nil {
				// The effect happened: report it and acknowledge anyway. A
				// republish of this id within the record's TTL could then
				// run again, which the Idempotency-Key header still guards.
				d.log.Error("recording the outcome failed", zap.Error(err))
			}
		}
		if err == nil {
			err = waitStored(ctx, pending)
		}
		if err != nil {
			d.log.Error("storing the result failed: handing the command back", zap.Error(err))
			w.nak(d, time.Second)
			return false
		}
		w.m.succeeded(string(d.cmd.Type), v.result.Status)
		d.log.Debug("command "+v.result.Status, zap.Int("attempts", v.result.Attempts), zap.Int("api_status", v.result.APIStatus))
		if err := d.msg.Ack(); err != nil {
			d.log.Warn("acknowledging the command failed; its redelivery will be a duplicate", zap.Error(err))
			return false
		}
		return true
	case v.dead != nil:
		id, subject := d.cmd.ID, w.deadLetterSubject(d)
		if id == "" {
			id = "invalid"
		}
		if err := w.publish(ctx, subject, id, seq, v.dead); err != nil {
			d.log.Error("storing the dead letter failed: handing the command back", zap.Error(err))
			w.nak(d, time.Second)
			return false
		}
		w.m.deadLettered(string(d.cmd.Type), string(v.dead.Error.Class))
		d.log.Warn("command dead-lettered", zap.String("class", string(v.dead.Error.Class)), zap.String("reason", v.dead.Error.Message), zap.String("subject", d.subject))
		if err := d.msg.TermWithReason("dead-lettered: " + string(v.dead.Error.Class)); err != nil {
			d.log.Warn("terminating the command failed; its redelivery will be dead-lettered again under the same id", zap.Error(err))
			return false
		}
		return true
	default:
		w.nak(d, v.retryIn)
		return false
	}
}

func (w *Worker) nak(d *delivery, delay time.Duration) {
	var err error
	if delay <= 0 {
		err = d.msg.Nak()
	} else {
		err = d.msg.NakWithDelay(delay)
	}
	if err != nil {
		d.log.Warn("handing the command back failed; it returns after AckWait", zap.Error(err))
	}
}

func (w *Worker) deadLetterSubject(d *delivery) string {
	s := w.cfg.Topology.Subjects
	if d.cmd.Type != "" {
		return s.DeadLetter(d.cmd.Type, actions.Token(d.cmd.ChatID))
	}
	if typ, token, err := s.ParseCommand(d.subject); err == nil {
		return s.DeadLetter(typ, token)
	}
	return s.InvalidDeadLetter(d.subject)
}

// publish stores a record with Nats-Msg-Id <id>:<stream sequence>, so a
// redelivery after a crash cannot store a second copy.
func (w *Worker) publish(ctx context.Context, subject, id string, seq uint64, record any) error {
	msg, err := recordMsg(subject, record)
	if err != nil {
		return err
	}
	_, err = w.js.PublishMsg(ctx, msg, jetstream.WithMsgID(recordID(id, seq)))
	return err
}

// publishAsync starts storing a record as publish does; waitStored waits
// for it.
func (w *Worker) publishAsync(subject, id string, seq uint64, record any) (jetstream.PubAckFuture, error) {
	msg, err := recordMsg(subject, record)
	if err != nil {
		return nil, err
	}
	return w.js.PublishMsgAsync(msg, jetstream.WithMsgID(recordID(id, seq)))
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

func recordMsg(subject string, record any) (*nats.Msg, error) {
	data, err := json.Marshal(record)
	if err != nil {
		return nil, err
	}
	return &nats.Msg{Subject: subject, Data: data}, nil
}

func recordID(id string, seq uint64) string { return id + ":" + strconv.FormatUint(seq, 10) }
