package tracecontext

import (
	"context"
	"testing"

	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel/trace"
)

const (
	parentTP = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	traceID  = "4bf92f3577b34da6a3ce929d0e0e4736"
	spanID   = "00f067aa0ba902b7"
)

func TestExtract(t *testing.T) {
	tests := []struct {
		name   string
		header nats.Header
		valid  bool
	}{
		{"none", nil, false},
		{"lower case", nats.Header{"traceparent": {parentTP}}, true},
		{"capitalised by an HTTP bridge", nats.Header{"Traceparent": {parentTP}}, true},
		{"upper case", nats.Header{"TRACEPARENT": {parentTP}}, true},
		{"malformed", nats.Header{"traceparent": {"00-abc-def-01"}}, false},
		{"empty value list", nats.Header{"traceparent": {}}, false},
		{"other headers only", nats.Header{"Nats-Msg-Id": {"x"}}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sc := trace.SpanContextFromContext(Extract(t.Context(), tt.header))
			if sc.IsValid() != tt.valid {
				t.Fatalf("valid = %v, want %v", sc.IsValid(), tt.valid)
			}
			if tt.valid && (sc.TraceID().String() != traceID || sc.SpanID().String() != spanID || !sc.IsRemote() || !sc.IsSampled()) {
				t.Errorf("extracted %v", sc)
			}
		})
	}
}

func TestInject(t *testing.T) {
	remote := Extract(t.Context(), nats.Header{"traceparent": {parentTP}, "tracestate": {"vendor=x"}})
	tests := []struct {
		name   string
		ctx    context.Context
		header nats.Header
		want   string
	}{
		{"no span: header untouched", t.Context(), nil, ""},
		{"span into a nil header", remote, nil, parentTP},
		{"span beside other headers", remote, nats.Header{"Nats-Msg-Id": {"x"}}, parentTP},
		{"replaces a stale value", remote, nats.Header{"traceparent": {"00-old"}}, parentTP},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := Inject(tt.ctx, tt.header)
			if got := h.Get(Traceparent); got != tt.want {
				t.Fatalf("traceparent %q, want %q", got, tt.want)
			}
			if tt.want == "" && h != nil {
				t.Errorf("header created without a span: %v", h)
			}
			if tt.want != "" && h.Get("tracestate") != "vendor=x" {
				t.Errorf("tracestate %q", h.Get("tracestate"))
			}
			if TraceparentOf(tt.ctx) != tt.want {
				t.Errorf("TraceparentOf = %q, want %q", TraceparentOf(tt.ctx), tt.want)
			}
		})
	}
}

func TestFromEnv(t *testing.T) {
	t.Setenv("TRACEPARENT", "")
	if sc := trace.SpanContextFromContext(FromEnv(t.Context())); sc.IsValid() {
		t.Fatalf("span context %v with no TRACEPARENT", sc)
	}
	t.Setenv("TRACEPARENT", parentTP)
	t.Setenv("TRACESTATE", "vendor=x")
	ctx := FromEnv(t.Context())
	if got := TraceparentOf(ctx); got != parentTP {
		t.Fatalf("traceparent %q, want TRACEPARENT's %q", got, parentTP)
	}
	if ts := trace.SpanContextFromContext(ctx).TraceState().String(); ts != "vendor=x" {
		t.Errorf("tracestate %q", ts)
	}
}
