package actions_test

import (
	"context"
	"slices"
	"testing"

	"github.com/chatworker/worker/actions"
	"github.com/chatworker/worker/internal/natstest"
	"github.com/nats-io/nats.go/jetstream"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// TestPublishCarriesTheCallersTrace: an app's span becomes the parent of
// everything the worker does for the command.
func TestPublishCarriesTheCallersTrace(t *testing.T) {
	js := commandsStream(t)
	tp := sdktrace.NewTracerProvider()
	t.Cleanup(func() { _ = tp.Shutdown(context.WithoutCancel(t.Context())) })
	traced, span := tp.Tracer("app").Start(t.Context(), "order shipped")
	defer span.End()
	sc := span.SpanContext()

	tests := []struct {
		name string
		ctx  context.Context
		want string
	}{
		{"no trace", t.Context(), ""},
		{"the caller's span", traced, "00-" + sc.TraceID().String() + "-" + sc.SpanID().String() + "-01"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd, err := actions.Publish(tt.ctx, js, actions.Archive{ChatID: "abc"}, actions.Subjects{})
			if err != nil {
				t.Fatal(err)
			}
			stream, err := js.Stream(t.Context(), "CHAT_COMMANDS")
			if err != nil {
				t.Fatal(err)
			}
			msg, err := stream.GetLastMsgForSubject(t.Context(), "chat.commands.archive.abc")
			if err != nil {
				t.Fatal(err)
			}
			if got := msg.Header.Get("Nats-Msg-Id"); got != cmd.ID {
				t.Errorf("Nats-Msg-Id %q, want %q", got, cmd.ID)
			}
			if got := msg.Header.Get("traceparent"); got != tt.want {
				t.Errorf("traceparent %q, want %q", got, tt.want)
			}
		})
	}
}

func commandsStream(t *testing.T) jetstream.JetStream {
	t.Helper()
	_, js := natstest.Connect(t, natstest.RunServer(t))
	if _, err := js.CreateStream(t.Context(), jetstream.StreamConfig{Name: "CHAT_COMMANDS", Subjects: []string{"chat.commands.>"}, Storage: jetstream.MemoryStorage}); err != nil {
		t.Fatal(err)
	}
	return js
}

// TestPublishingLinksNoTracingSDK: Publish carries trace context with the
// OpenTelemetry API alone; the SDK, the OTLP exporters and gRPC stay out of
// a publishing app's binary (they come with the worker's telemetry). The
// telemetry row is the control.
func TestPublishingLinksNoTracingSDK(t *testing.T) {
	heavy := []string{"go.opentelemetry.io/otel/sdk/trace", "go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp", "google.golang.org/grpc"}
	tests := []struct {
		pkg       string
		wantHeavy bool
	}{
		{"github.com/chatworker/worker/actions", false},
		{"github.com/chatworker/worker/internal/telemetry", true},
	}
	for _, tt := range tests {
		t.Run(tt.pkg, func(t *testing.T) {
			deps := goListDeps(t, tt.pkg)
			if !slices.Contains(deps, "go.opentelemetry.io/otel/propagation") {
				t.Errorf("%s does not import the propagation API", tt.pkg)
			}
			for _, h := range heavy {
				if got := slices.Contains(deps, h); got != tt.wantHeavy {
					t.Errorf("%s imports %s: %v, want %v", tt.pkg, h, got, tt.wantHeavy)
				}
			}
		})
	}
}
