package actions_test

import (
	"context"
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
