package consumer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/chatworker/worker/actions"
	"github.com/chatworker/worker/contract"
	"github.com/chatworker/worker/idempotency"
	"github.com/chatworker/worker/internal/tracecontext"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
)

// The max-deliveries backstop. By default deliveries are not limited: a
// command goes back to the stream for many reasons that are not its fault
// (its project paused or waiting for its rate budget, an outage of the
// idempotency store or of the result stream), and a limit on deliveries
// would turn a long outage into dead letters. Poison is caught by the
// idempotency record instead (RetryPolicy.MaxAbandoned).
//
// An operator may still set Topology.MaxDeliver. JetStream then stops
// delivering a command after that many deliveries; in a work queue it would
// stay in the stream, holding back its chat forever. The server announces it
// with a max-deliveries advisory; the worker that receives it (a queue group,
// so one per advisory) claims the command's id like any delivery would, so
// that it never races a worker still executing it, and settles it from the
// stream by sequence: a command that succeeded gets its result, any other a
// dead letter. Then it deletes the command.

// maxDeliveriesAdvisory is the part of the advisory the backstop reads.
type maxDeliveriesAdvisory struct {
	Stream     string `json:"stream"`
	Consumer   string `json:"consumer"`
	StreamSeq  uint64 `json:"stream_seq"`
	Deliveries uint64 `json:"deliveries"`
}

// rescuer is the backstop: it settles the commands JetStream gave up
// delivering, between Start and Stop.
type rescuer struct {
	js      jetstream.JetStream
	topo    Topology
	store   idempotency.Store
	records *records
	done    recordStore
	tr      tracer
	m       *Metrics
	log     *zap.Logger

	sub *nats.Subscription
}

// recordStore is what the rescuer needs of the completer: it stores records
// and releases claims as a delivery's settling does, without a message to
// acknowledge.
type recordStore interface {
	publish(ctx context.Context, subject, id string, seq uint64, record any, h nats.Header) error
	storeDeadLetter(ctx context.Context, d *delivery, seq uint64, dl *actions.DeadLetter) error
	releaseDead(ctx context.Context, claim *idempotency.Claim, stored bool)
}

// Start subscribes to the advisories; a command settled later (its claim
// was busy, or a store failed) is tried again while ctx lasts.
func (r *rescuer) Start(ctx context.Context) error {
	t := r.topo
	// The v1 durable's advisories and every project's (ProjectDurable).
	subject := fmt.Sprintf("$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.%s.*", t.CommandsStream)
	sub, err := r.js.Conn().QueueSubscribe(subject, t.Durable+"-backstop", func(m *nats.Msg) {
		var adv maxDeliveriesAdvisory
		if err := json.Unmarshal(m.Data, &adv); err != nil {
			r.log.Warn("unreadable max-deliveries advisory", zap.Error(err))
			return
		}
		if adv.Consumer != t.Durable && !strings.HasPrefix(adv.Consumer, t.Durable+"-p-") {
			return // another consumer's, not the worker's
		}
		r.deadLetterUndeliverable(ctx, adv)
	})
	if err != nil {
		return fmt.Errorf("subscribe to max-deliveries advisories: %w", err)
	}
	r.sub = sub
	return nil
}

// Stop unsubscribes from the advisories.
func (r *rescuer) Stop() {
	if r.sub != nil {
		_ = r.sub.Unsubscribe()
	}
}

// deadLetterUndeliverable publishes a dead letter for the command at the
// advisory's sequence, then removes the command from the stream.
func (r *rescuer) deadLetterUndeliverable(runCtx context.Context, adv maxDeliveriesAdvisory) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(runCtx), 10*time.Second)
	defer cancel()
	log := r.log.With(zap.Uint64("stream_seq", adv.StreamSeq))
	stream, err := r.js.Stream(ctx, r.topo.CommandsStream)
	if err != nil {
		log.Error("backstop: reading the commands stream", zap.Error(err))
		return
	}
	raw, err := stream.GetMsg(ctx, adv.StreamSeq)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return // settled after all
	}
	if err != nil {
		log.Error("backstop: reading the command", zap.Error(err))
		return
	}
	if r.tr.on() {
		// No delivery's span is left to hold the record: its span goes
		// straight under the command's traceparent.
		ctx = tracecontext.Extract(ctx, raw.Header)
	}
	d := r.delivery(raw, adv)
	var claim *idempotency.Claim
	if d.cmd.ID != "" {
		var dup *idempotency.DuplicateError
		var bz *idempotency.BusyError
		claim, err = r.store.Claim(ctx, d.cmd.ID, d.cmd.Hash())
		switch {
		case errors.As(err, &dup):
			// It succeeded (its result could not be stored, say): publish
			// the result, never a dead letter.
			if err := r.publishResult(ctx, d, dup.Record, adv.StreamSeq); err != nil {
				r.backstopLater(runCtx, adv, infraDelay(1), "storing the result", err)
				return
			}
			r.deleteUndeliverable(ctx, stream, adv, d, "backstop: the command had succeeded: its result is published")
			return
		case errors.As(err, &bz):
			// A worker holds it, stalled or still at work: look again when
			// its lease runs out.
			r.backstopLater(runCtx, adv, bz.RetryIn+time.Second, "a worker holds it", err)
			return
		case errors.Is(err, idempotency.ErrConflict):
			claim = nil
		case err != nil:
			r.backstopLater(runCtx, adv, infraDelay(1), "claiming the command", err)
			return
		}
	}
	var rec *idempotency.Record
	if claim != nil {
		rec = &claim.Record
	}
	dl := r.records.deadLetter(d, rec, contract.ClassExhausted, &contract.Error{Class: contract.ClassExhausted, Msg: fmt.Sprintf(
		"JetStream delivered the command %d times without a worker settling it (a worker may have crashed or stalled on it each time)", adv.Deliveries)})
	if err := r.done.storeDeadLetter(ctx, d, adv.StreamSeq, dl); err != nil {
		r.done.releaseDead(ctx, claim, false)
		r.backstopLater(runCtx, adv, infraDelay(1), "storing the dead letter", err)
		return
	}
	r.done.releaseDead(ctx, claim, true)
	r.m.deadLettered(string(d.cmd.Type), string(contract.ClassExhausted))
	r.deleteUndeliverable(ctx, stream, adv, d, "command dead-lettered after too many deliveries")
}

// delivery is the command at the advisory's sequence, read from the stream,
// decoded when it can be.
func (r *rescuer) delivery(raw *jetstream.RawStreamMsg, adv maxDeliveriesAdvisory) *delivery {
	d := newDelivery(r.log, nil, raw.Subject, raw.Data, raw.Header)
	d.meta = &jetstream.MsgMetadata{Stream: adv.Stream, Sequence: jetstream.SequencePair{Stream: adv.StreamSeq}, NumDelivered: adv.Deliveries}
	if cmd, _, err := contract.DecodeMessage(r.topo.Subjects, raw.Subject, raw.Data, raw.Header, raw.Time); err == nil {
		d.cmd = cmd
		d.log.with(zap.String("id", cmd.ID), zap.String("type", string(cmd.Type)), zap.String("chat", contract.Token(cmd.ChatID)))
	}
	return d
}

// publishResult publishes the result of d's command, which succeeded as
// rec says.
func (r *rescuer) publishResult(ctx context.Context, d *delivery, rec idempotency.Record, seq uint64) error {
	res := r.records.repeatResult(ctx, d, rec, seq)
	status := res.Status
	var h nats.Header
	res.Traceparent, h = r.tr.recordTrace(ctx, d.traceparent)
	if err := r.done.publish(ctx, r.topo.Subjects.For(d.cmd.Project).Result(d.cmd.Type, d.cmd.ChatID), d.cmd.ID, seq, res, h); err != nil {
		return err
	}
	r.m.succeeded(string(d.cmd.Type), status)
	return nil
}

// backstopLater tries an advisory's command again after delay: JetStream
// will not deliver it again, so the backstop must not give up on it.
func (r *rescuer) backstopLater(ctx context.Context, adv maxDeliveriesAdvisory, delay time.Duration, what string, err error) {
	r.log.Warn("backstop: cannot settle the command yet ("+what+"); trying again later",
		zap.Uint64("stream_seq", adv.StreamSeq), zap.Duration("retry_in", delay), zap.Error(err))
	time.AfterFunc(delay, func() {
		if ctx.Err() == nil {
			r.deadLetterUndeliverable(ctx, adv)
		}
	})
}

// deleteUndeliverable removes a command the backstop settled.
func (r *rescuer) deleteUndeliverable(ctx context.Context, stream jetstream.Stream, adv maxDeliveriesAdvisory, d *delivery, msg string) {
	if err := stream.DeleteMsg(ctx, adv.StreamSeq); err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
		r.log.Error("backstop: removing the settled command", zap.Uint64("stream_seq", adv.StreamSeq), zap.Error(err))
		return
	}
	d.log.Warn(msg, zap.Uint64("deliveries", adv.Deliveries))
}
