package consumer

import (
	"context"
	"errors"
	"time"

	"github.com/chatworker/worker/actions"
	"github.com/chatworker/worker/contract"
	"github.com/chatworker/worker/idempotency"
	"github.com/chatworker/worker/internal/telemetry"
	"github.com/chatworker/worker/internal/tracecontext"
	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// Tracing
//
// With a tracer (Config.Tracer), each delivery of a command is a span
// whose parent is the command's traceparent, with a child span for the
// order check, the claim, each API call (the HTTP client's span below it)
// and the record; the result or dead letter carries the record span's
// traceparent, as a header and in its JSON, so the app's trace goes on from
// there. Without a tracer no span is started and nothing is allocated for
// tracing: a record carries the command's own traceparent, as it came.
//
// Spans say which command and how it went; never credentials or content.

// noSpan is what the helpers hand out when tracing is off: its methods do
// nothing and IsRecording is false.
func noSpan() trace.Span { return trace.SpanFromContext(context.Background()) }

// tracer starts the worker's spans; its zero value, tracing off, starts
// none.
type tracer struct{ t trace.Tracer }

func newTracer(tp trace.TracerProvider) tracer {
	if tp == nil {
		return tracer{}
	}
	return tracer{t: tp.Tracer(telemetry.Instrumentation)}
}

// on reports whether spans are started.
func (tr tracer) on() bool { return tr.t != nil }

// command starts the span of one delivery of a command message, under
// the traceparent in its headers.
func (tr tracer) command(ctx context.Context, subject string, headers nats.Header) (context.Context, trace.Span) {
	if tr.t == nil {
		return ctx, noSpan()
	}
	return tr.t.Start(tracecontext.Extract(ctx, headers), "process command", trace.WithSpanKind(trace.SpanKindConsumer),
		trace.WithAttributes(attribute.String("messaging.system", "nats"), attribute.String("messaging.destination.name", subject)))
}

// start starts a child of the span in ctx.
func (tr tracer) start(ctx context.Context, name string, kind trace.SpanKind) (context.Context, trace.Span) {
	if tr.t == nil {
		return ctx, noSpan()
	}
	return tr.t.Start(ctx, name, trace.WithSpanKind(kind))
}

// traceDecoded names the command span after the command it turned out to be.
func traceDecoded(span trace.Span, cmd actions.Command, delivered uint64) {
	if !span.IsRecording() {
		return
	}
	span.SetName("process " + string(cmd.Type))
	span.SetAttributes(telemetry.Command(cmd.ID, string(cmd.Type), contract.Token(cmd.ChatID))...)
	span.SetAttributes(attribute.Int64("chatworker.delivery", int64(delivered)))
}

// endCommand ends the command span with the delivery's outcome.
func endCommand(d *delivery) {
	defer d.span.End()
	if !d.span.IsRecording() {
		return
	}
	d.span.SetAttributes(attribute.String(telemetry.AttrOutcome, string(d.outcome)), attribute.Int(telemetry.AttrAttempts, d.attempts))
	if d.outcome == outcomeDeadLetter {
		d.span.SetAttributes(attribute.String(telemetry.AttrErrorClass, string(d.class)))
		d.span.SetStatus(codes.Error, "dead-lettered: "+string(d.class))
	}
}

// endOutcome ends a command span with its outcome.
func endOutcome(span trace.Span, o outcome) {
	if span.IsRecording() {
		span.SetAttributes(attribute.String(telemetry.AttrOutcome, string(o)))
	}
	span.End()
}

// endWith ends span, with err's text as its error status. The text is what
// a dead letter or a log line would hold: never a credential.
func endWith(span trace.Span, err error) {
	if err != nil && span.IsRecording() {
		span.SetStatus(codes.Error, err.Error())
	}
	span.End()
}

// traceClaim ends the claim's span with what the store answered.
func traceClaim(span trace.Span, claim *idempotency.Claim, err error) {
	defer span.End()
	if !span.IsRecording() {
		return
	}
	var (
		dup    *idempotency.DuplicateError
		bz     *idempotency.BusyError
		answer = "claimed"
	)
	switch {
	case err == nil && !claim.Stored():
		answer = "tentative" // a first delivery without a claim (handle.go)
	case errors.As(err, &dup):
		answer = "duplicate"
	case errors.As(err, &bz):
		answer = "busy"
	case errors.Is(err, idempotency.ErrConflict):
		answer = "conflict"
	case err != nil:
		answer = "unavailable"
		span.SetStatus(codes.Error, err.Error())
	}
	span.SetAttributes(attribute.String("chatworker.claim", answer))
}

// traceRetry marks an in-process wait before the next attempt.
func traceRetry(span trace.Span, attempts int, delay time.Duration, class actions.Class) {
	if !span.IsRecording() {
		return
	}
	span.AddEvent("retry", trace.WithAttributes(attribute.Int(telemetry.AttrAttempts, attempts),
		attribute.String("chatworker.retry_in", delay.String()), attribute.String(telemetry.AttrErrorClass, string(class))))
}

// recordTrace is the trace context a record carries, for its JSON and its
// headers: that of the span storing it when tracing is on, the command's
// own otherwise.
func (tr tracer) recordTrace(ctx context.Context, commandTraceparent string) (string, nats.Header) {
	if tr.t == nil {
		if commandTraceparent == "" {
			return "", nil
		}
		return commandTraceparent, nats.Header{tracecontext.Traceparent: {commandTraceparent}}
	}
	h := tracecontext.Inject(ctx, nil)
	return tracecontext.HeaderCarrier(h).Get(tracecontext.Traceparent), h
}

// record starts the span that stores a record on subject.
func (tr tracer) record(ctx context.Context, name, subject string) (context.Context, trace.Span) {
	ctx, span := tr.start(ctx, name, trace.SpanKindProducer)
	if span.IsRecording() {
		span.SetAttributes(attribute.String("messaging.system", "nats"), attribute.String("messaging.destination.name", subject))
	}
	return ctx, span
}
