package consumer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/chatworker/worker/actions"
	"github.com/chatworker/worker/idempotency"
	"github.com/chatworker/worker/internal/tracecontext"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
)

// The backstop: JetStream stops delivering a command after MaxDeliver
// deliveries (a worker crashing on it every time, say). Such a command never
// reaches the worker's own dead-letter path, and in a work queue it would
// stay in the stream, holding back its chat forever. The server announces it
// with a max-deliveries advisory; the worker that receives it (a queue group,
// so one per advisory) dead-letters the command from the stream by sequence
// and then deletes it.

// maxDeliveriesAdvisory is the part of the advisory the backstop reads.
type maxDeliveriesAdvisory struct {
	Stream     string `json:"stream"`
	Consumer   string `json:"consumer"`
	StreamSeq  uint64 `json:"stream_seq"`
	Deliveries uint64 `json:"deliveries"`
}

// watchMaxDeliveries subscribes to the advisories until ctx is done.
func (w *Worker) watchMaxDeliveries(ctx context.Context) (func(), error) {
	t := w.cfg.Topology
	subject := fmt.Sprintf("$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.%s.%s", t.CommandsStream, t.Durable)
	sub, err := w.js.Conn().QueueSubscribe(subject, t.Durable+"-backstop", func(m *nats.Msg) {
		var adv maxDeliveriesAdvisory
		if err := json.Unmarshal(m.Data, &adv); err != nil {
			w.log.Warn("unreadable max-deliveries advisory", zap.Error(err))
			return
		}
		w.deadLetterUndeliverable(ctx, adv)
	})
	if err != nil {
		return nil, fmt.Errorf("subscribe to max-deliveries advisories: %w", err)
	}
	return func() { _ = sub.Unsubscribe() }, nil
}

// deadLetterUndeliverable publishes a dead letter for the command at the
// advisory's sequence, then removes the command from the stream.
func (w *Worker) deadLetterUndeliverable(ctx context.Context, adv maxDeliveriesAdvisory) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	log := w.log.With(zap.Uint64("stream_seq", adv.StreamSeq))
	stream, err := w.js.Stream(ctx, w.cfg.Topology.CommandsStream)
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
	d := w.newDelivery(nil, raw.Subject, raw.Data, raw.Header)
	if w.tracer != nil {
		// No delivery's span is left to hold the record: its span goes
		// straight under the command's traceparent.
		ctx = tracecontext.Extract(ctx, raw.Header)
	}
	d.meta = &jetstream.MsgMetadata{Stream: adv.Stream, Sequence: jetstream.SequencePair{Stream: adv.StreamSeq}, NumDelivered: adv.Deliveries}
	if cmd, err := actions.Decode(w.cfg.Topology.Subjects, raw.Subject, raw.Data); err == nil {
		d.cmd = cmd
		d.log.with(zap.String("id", cmd.ID), zap.String("type", string(cmd.Type)), zap.String("chat", actions.Token(cmd.ChatID)))
	}
	var rec *idempotency.Record
	if d.cmd.ID != "" {
		if r, err := w.store.Lookup(ctx, d.cmd.ID); err == nil {
			rec = &r
		}
	}
	dl := w.deadLetter(d, rec, actions.ClassExhausted, &actions.Error{Class: actions.ClassExhausted, Msg: fmt.Sprintf(
		"JetStream delivered the command %d times without a worker settling it (a worker may have crashed or stalled on it each time)", adv.Deliveries)})
	if err := w.storeDeadLetter(ctx, d, adv.StreamSeq, dl); err != nil {
		log.Error("backstop: storing the dead letter failed; the command stays in the stream", zap.Error(err))
		return
	}
	w.m.deadLettered(string(d.cmd.Type), string(actions.ClassExhausted))
	if err := stream.DeleteMsg(ctx, adv.StreamSeq); err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
		log.Error("backstop: removing the dead-lettered command", zap.Error(err))
		return
	}
	d.log.Warn("command dead-lettered after too many deliveries", zap.Uint64("deliveries", adv.Deliveries))
}
