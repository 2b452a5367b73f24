package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/chatworker/worker/internal/natstest"
	"github.com/chatworker/worker/internal/telemetry"
	"github.com/chatworker/worker/internal/telemetry/telemetrytest"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/trace"
)

// traceEnv clears every variable that would turn tracing on, so a test
// sees only what it sets.
func traceEnv(t *testing.T) {
	t.Helper()
	for _, k := range []string{"OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_PROTOCOL",
		"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_SDK_DISABLED", "OTEL_TRACES_EXPORTER", "OTEL_SERVICE_NAME",
		"OTEL_RESOURCE_ATTRIBUTES", "OTEL_TRACES_SAMPLER", "OTEL_TRACES_SAMPLER_ARG", "TRACEPARENT", "TRACESTATE"} {
		t.Setenv(k, "")
	}
}

const (
	scriptTrace  = "4bf92f3577b34da6a3ce929d0e0e4736"
	scriptParent = "00-" + scriptTrace + "-00f067aa0ba902b7-01"
)

// TestSendContinuesTheCallersTrace: `worker send` run with TRACEPARENT
// publishes a command in that trace: as it is with tracing off, under a
// "publish send" span of its own with tracing on.
func TestSendContinuesTheCallersTrace(t *testing.T) {
	tests := []struct {
		name    string
		tracing bool
	}{
		{"tracing off", false},
		{"tracing on", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			traceEnv(t)
			srv := natstest.RunServer(t)
			_, js := natstest.Connect(t, srv)
			var rcv *telemetrytest.Receiver
			if tt.tracing {
				rcv = telemetrytest.NewReceiver(t)
				t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", rcv.URL)
			}
			t.Setenv("TRACEPARENT", scriptParent)
			if err := run(t.Context(), []string{"provision", "--nats-url", srv.ClientURL()}, nil, &bytes.Buffer{}, &bytes.Buffer{}); err != nil {
				t.Fatal(err)
			}
			if err := run(t.Context(), []string{"send", "--nats-url", srv.ClientURL(), "--chat", "abc", "--content", "Hi", "--id", "cli-1"}, nil, &bytes.Buffer{}, &bytes.Buffer{}); err != nil {
				t.Fatal(err)
			}
			got := storedHeader(t, js, "CHAT_COMMANDS", "chat.commands.send.abc", "traceparent")
			if !tt.tracing {
				if got != scriptParent {
					t.Fatalf("command traceparent %q, want TRACEPARENT %q", got, scriptParent)
				}
				return
			}
			// send exits only after its spans are flushed.
			spans := rcv.Spans()
			if len(spans) != 1 {
				t.Fatalf("%d spans exported, want 1", len(spans))
			}
			s := spans[0]
			want := "00-" + scriptTrace + "-" + trace.SpanID(s.GetSpanId()).String() + "-01"
			if got != want || s.GetName() != "publish send" || trace.SpanID(s.GetParentSpanId()).String() != "00f067aa0ba902b7" {
				t.Errorf("command traceparent %q, span %q parent %x; want %q under TRACEPARENT", got, s.GetName(), s.GetParentSpanId(), want)
			}
			if s.Attr(telemetry.AttrCommandID) != "cli-1" || s.Attr(telemetry.AttrChatToken) != "abc" {
				t.Errorf("span attributes %v", s.GetAttributes())
			}
		})
	}
}

func storedHeader(t *testing.T, js jetstream.JetStream, stream, subject, name string) string {
	t.Helper()
	s, err := js.Stream(t.Context(), stream)
	if err != nil {
		t.Fatal(err)
	}
	m, err := s.GetLastMsgForSubject(t.Context(), subject)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Join(m.Header.Values(name), ",")
}
