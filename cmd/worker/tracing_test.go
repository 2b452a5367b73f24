package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chatworker/worker/chat/chatsim"

	"github.com/chatworker/worker/internal/natstest"
	"github.com/chatworker/worker/internal/telemetry"
	"github.com/chatworker/worker/internal/telemetry/telemetrytest"
	"github.com/nats-io/nats.go/jetstream"
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
			want := "00-" + scriptTrace + "-" + hex.EncodeToString(s.GetSpanId()) + "-01"
			if got != want || s.GetName() != "publish send" || hex.EncodeToString(s.GetParentSpanId()) != "00f067aa0ba902b7" {
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

// TestRunTracesCommands runs the real wiring with tracing on: a command's
// trace goes from `worker send` through the worker's spans to the Chat API
// request and back on the result and the dead letter, and what reaches the
// collector holds no credential and no content.
func TestRunTracesCommands(t *testing.T) {
	traceEnv(t)
	srv := natstest.RunServer(t)
	_, js := natstest.Connect(t, srv)
	rcv := telemetrytest.NewReceiver(t)
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", rcv.URL)
	t.Setenv("GOSQUARED_API_KEY", "test-key")
	t.Setenv("GOSQUARED_SITE_TOKEN", "GSN-1-S")
	sim := chatsim.New(chatsim.Config{})
	var mu sync.Mutex
	apiTraceparents := map[string]string{} // request path -> traceparent
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		apiTraceparents[r.URL.Path] = r.Header.Get("traceparent")
		mu.Unlock()
		sim.ServeHTTP(w, r)
	}))
	t.Cleanup(hs.Close)

	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	var logs bytes.Buffer
	go func() {
		done <- run(ctx, []string{"run", "--nats-url", srv.ClientURL(), "--chat-api-url", hs.URL + "/chat/v1", "--http-addr", ""},
			nil, &bytes.Buffer{}, &syncWriter{w: &logs})
	}()
	t.Setenv("TRACEPARENT", scriptParent)
	for _, chatID := range []string{"abc", "missing:x"} {
		eventuallyOK(t, func() error {
			return run(t.Context(), []string{"send", "--nats-url", srv.ClientURL(), "--chat", chatID, "--content", "Hi Jo", "--id", "traced-" + chatID}, nil, &bytes.Buffer{}, &bytes.Buffer{})
		})
	}
	result := eventuallyStored(t, js, "CHAT_RESULTS", "chat.results.send.abc")
	dead := eventuallyStored(t, js, "CHAT_DLQ", "chat.dlq.send.missing%3Ax")
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("run did not return after shutdown")
	}

	// run has returned: its spans are flushed.
	spans := map[string]telemetrytest.Span{}
	byName := map[string][]telemetrytest.Span{}
	for _, s := range rcv.Spans() {
		if s.GetName() == "GET" {
			continue // worker run's check of the credentials, a trace of its own
		}
		if hex.EncodeToString(s.GetTraceId()) != scriptTrace {
			t.Errorf("span %q in trace %x, want the script's", s.GetName(), s.GetTraceId())
		}
		spans[hex.EncodeToString(s.GetSpanId())] = s
		byName[s.GetName()] = append(byName[s.GetName()], s)
		for _, kv := range s.GetAttributes() {
			if v := kv.GetValue().GetStringValue(); strings.Contains(v, "test-key") || strings.Contains(v, "GSN-1-S") || strings.Contains(v, "Hi Jo") {
				t.Errorf("span %q attribute %s = %q holds a credential or content", s.GetName(), kv.GetKey(), v)
			}
		}
		if strings.Contains(s.GetStatus().GetMessage(), "test-key") {
			t.Errorf("span %q status quotes the API key", s.GetName())
		}
	}
	parent := func(s telemetrytest.Span) string {
		if p, ok := spans[hex.EncodeToString(s.GetParentSpanId())]; ok {
			return p.GetName()
		}
		return "?"
	}
	for _, s := range byName["process send"] {
		if parent(s) != "publish send" {
			t.Errorf("process send's parent is %q, want the command's (publish send)", parent(s))
		}
	}
	for name, want := range map[string]string{"claim": "process send", "api call": "process send", "POST": "api call",
		"record result": "process send", "record dead letter": "process send"} {
		if len(byName[name]) == 0 {
			t.Errorf("no %q span; got %v", name, keys(byName))
		}
		for _, s := range byName[name] {
			if parent(s) != want {
				t.Errorf("%q's parent is %q, want %q", name, parent(s), want)
			}
		}
	}
	// The records and the API request carry the trace on from the right spans.
	for _, c := range []struct {
		what, header, json, span string
	}{
		{"result", result.Header.Get("traceparent"), jsonTraceparent(t, result.Data), "record result"},
		{"dead letter", dead.Header.Get("traceparent"), jsonTraceparent(t, dead.Data), "record dead letter"},
	} {
		if c.header == "" || c.header != c.json {
			t.Errorf("%s: header traceparent %q, JSON %q: want the same, set", c.what, c.header, c.json)
			continue
		}
		if s, ok := spans[strings.Split(c.header, "-")[2]]; !ok || s.GetName() != c.span {
			t.Errorf("%s traceparent %q is not that of a %q span", c.what, c.header, c.span)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(apiTraceparents) == 0 {
		t.Fatal("no API request")
	}
	for path, tp := range apiTraceparents {
		if strings.HasSuffix(path, "/chats") {
			continue // the credentials check
		}
		parts := strings.Split(tp, "-")
		if len(parts) != 4 || parts[1] != scriptTrace || spans[parts[2]].GetName() != "POST" {
			t.Errorf("API request %s carried traceparent %q, want one from a POST span in the script's trace", path, tp)
		}
	}
}

func eventuallyStored(t *testing.T, js jetstream.JetStream, stream, subject string) *jetstream.RawStreamMsg {
	t.Helper()
	var m *jetstream.RawStreamMsg
	eventuallyOK(t, func() error {
		s, err := js.Stream(t.Context(), stream)
		if err != nil {
			return err
		}
		m, err = s.GetLastMsgForSubject(t.Context(), subject)
		return err
	})
	return m
}

func jsonTraceparent(t *testing.T, data []byte) string {
	t.Helper()
	var r struct {
		Traceparent string `json:"traceparent"`
	}
	if err := json.Unmarshal(data, &r); err != nil {
		t.Fatal(err)
	}
	return r.Traceparent
}

func keys[V any](m map[string]V) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	return ks
}
