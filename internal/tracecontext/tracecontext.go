package tracecontext

import (
	"context"
	"os"
	"strings"

	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// The worker speaks W3C Trace Context only: traceparent is what the
// contract names, and what every tracing system reads.
var propagator = propagation.TraceContext{}

// Traceparent is the name of the W3C header the worker reads and writes.
const Traceparent = "traceparent"

// HeaderCarrier lets OpenTelemetry propagators read and write nats.Header.
// Get matches the name case-insensitively when no exact match exists: NATS
// header names are case-sensitive, but a bridge from HTTP may have
// capitalised "traceparent".
type HeaderCarrier nats.Header

var _ propagation.TextMapCarrier = HeaderCarrier(nil)

func (h HeaderCarrier) Get(key string) string {
	// Not nats.Header.Get, which indexes a name's first value unchecked.
	if v := h[key]; len(v) > 0 {
		return v[0]
	}
	for k, v := range h {
		if len(v) > 0 && strings.EqualFold(k, key) {
			return v[0]
		}
	}
	return ""
}

func (h HeaderCarrier) Set(key, value string) { nats.Header(h).Set(key, value) }

func (h HeaderCarrier) Keys() []string {
	keys := make([]string, 0, len(h))
	for k := range h {
		keys = append(keys, k)
	}
	return keys
}

// Extract returns ctx with the remote span context carried by h, if h holds
// a valid traceparent; ctx unchanged otherwise.
func Extract(ctx context.Context, h nats.Header) context.Context {
	if len(h) == 0 {
		return ctx
	}
	return propagator.Extract(ctx, HeaderCarrier(h))
}

// Inject writes ctx's span context into h as traceparent (and tracestate),
// creating h if needed; it returns h unchanged when ctx carries no valid
// span context.
func Inject(ctx context.Context, h nats.Header) nats.Header {
	if !trace.SpanContextFromContext(ctx).IsValid() {
		return h
	}
	if h == nil {
		h = nats.Header{}
	}
	propagator.Inject(ctx, HeaderCarrier(h))
	return h
}

// TraceparentOf is the traceparent value of ctx's span context, or "".
func TraceparentOf(ctx context.Context) string {
	if !trace.SpanContextFromContext(ctx).IsValid() {
		return ""
	}
	c := propagation.MapCarrier{}
	propagator.Inject(ctx, c)
	return c[Traceparent]
}

// FromEnv returns ctx with the span context of the TRACEPARENT and
// TRACESTATE environment variables (the OpenTelemetry convention for
// handing a trace to a child process), so that a script's trace continues
// through `worker send`.
func FromEnv(ctx context.Context) context.Context {
	if os.Getenv("TRACEPARENT") == "" {
		return ctx
	}
	return propagator.Extract(ctx, propagation.MapCarrier{
		Traceparent:  os.Getenv("TRACEPARENT"),
		"tracestate": os.Getenv("TRACESTATE"),
	})
}
