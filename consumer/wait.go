package consumer

import (
	"context"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"
)

// Waiting in place
//
// With several workers pulling, a chat's commands are spread over them: a
// worker often holds command N+1 while N runs on another. N+1 is not its
// chat's head yet, but usually will be within one API call. Handing it back
// (NakWithDelay) would return it only after a delay, to any worker, and the
// commands queued behind it with it; so the lane waits in place instead: it
// asks the stream again at a short, growing interval (orderPollFirst
// doubling to orderPollMax) and runs the command as soon as it is the head,
// the order check unchanged. The wait is bounded (orderWaitLimit, at most a
// quarter of AckWait, so the command is never redelivered meanwhile); when
// it runs out, or the worker drains, the commands go back to the stream as
// before. A lane waits with its runner, so at most Concurrency lanes wait at
// once and the other half of the runners are left for commands that can
// run: two workers each waiting for the other cannot fill all their runners
// and stall until the bound.

const (
	orderWaitLimit = time.Second
	orderPollFirst = 5 * time.Millisecond
	orderPollMax   = 20 * time.Millisecond
)

// orderWaitFor is how long a lane waits in place for its command to become
// its chat's head.
func orderWaitFor(ackWait time.Duration) time.Duration {
	return min(orderWaitLimit, ackWait/4)
}

// waited is how a wait in place ended.
type waited int

const (
	gaveUp       waited = iota // the bound ran out, the worker is draining, or the stream could not be asked
	becameHead                 // the command is its chat's head: run it
	olderArrived               // an older command of the chat arrived in the lane: it goes first
)

// waitForHead waits in place until q, which is not its chat's head, becomes
// it (see "Waiting in place" above). state is the lane's, as for checkHead.
func (o *orderer) waitForHead(ctx context.Context, l *lane, state chatState, q queued) waited {
	if o.lanes.olderQueued(l, q.meta.Sequence.Stream) {
		return olderArrived
	}
	if o.waitMax <= 0 || o.draining() {
		return gaveUp
	}
	if n := o.waiting.Add(1); n > int64(o.concurrency) {
		o.waiting.Add(-1)
		return gaveUp
	}
	defer o.waiting.Add(-1)
	ctx, span := o.tr.start(ctx, "order wait", trace.SpanKindInternal)
	checks, outcome := 0, gaveUp
	defer func() {
		if span.IsRecording() {
			span.SetAttributes(attribute.Int("chatworker.order.rechecks", checks), attribute.Bool("chatworker.order.head", outcome == becameHead))
		}
		span.End()
	}()
	deadline := time.Now().Add(o.waitMax)
	interval := orderPollFirst
	t := time.NewTimer(interval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
		case <-o.stopping:
			return outcome
		case <-ctx.Done():
			return outcome
		}
		if o.lanes.olderQueued(l, q.meta.Sequence.Stream) {
			outcome = olderArrived
			return outcome
		}
		checks++
		o.m.orderRecheck()
		head, err := o.isHead(ctx, l.chat, state.settled+1, q.meta.Sequence.Stream)
		switch {
		case err != nil:
			o.log.Warn("checking the chat's order failed: trying again later", zap.String("chat", l.chat), zap.Error(err))
			return outcome
		case head:
			outcome = becameHead
			return outcome
		}
		left := time.Until(deadline)
		if left <= 0 {
			return outcome
		}
		interval = min(2*interval, orderPollMax, left)
		t.Reset(interval)
	}
}

// draining reports whether the worker is shutting down.
func (o *orderer) draining() bool {
	select {
	case <-o.stopping:
		return true
	default:
		return false
	}
}
