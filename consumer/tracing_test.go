package consumer_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chatworker/worker/workertest"

	"github.com/chatworker/worker/actions"
	"github.com/chatworker/worker/chat"
	"github.com/chatworker/worker/contract"
	"github.com/chatworker/worker/execute"
	"github.com/chatworker/worker/internal/telemetry"
	"github.com/chatworker/worker/internal/tracecontext"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

// TestTracing checks the span tree of each kind of command with the SDK's
// in-memory exporter: the command span under the app's, its children, and
// the record's traceparent in the record's header and JSON.
func TestTracing(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	t.Cleanup(func() { _ = tp.Shutdown(context.WithoutCancel(t.Context())) })

	p := newBarePipeline(t)
	p.Config.Tracer = tp
	hs := httptest.NewServer(p.Sim)
	t.Cleanup(hs.Close)
	client, err := chat.New(chat.WithBaseURL(hs.URL+"/chat/v1"), chat.WithCredentials(chat.Credentials{APIKey: "secret-key", SiteToken: "secret-site"}),
		chat.WithTransportWrapper(func(rt http.RoundTripper) http.RoundTripper { return telemetry.Transport(rt, tp) }))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(client.CloseIdleConnections)
	p.Start(&failFirst{next: &execute.Executor{Client: client, SiteToken: "secret-site"}, chat: "retried"})

	tests := []struct {
		name     string
		chat     string
		traced   bool // published inside an app's span
		outcome  string
		attempts int
		children []string // the command span's children, sorted
		record   string   // its record's subject
	}{
		{"succeeded", "abc", true, "succeeded", 1, []string{"api call", "claim", "order check", "record result"}, "chat.results.send."},
		{"retried", "retried", true, "succeeded", 2, []string{"api call", "api call", "claim", "order check", "record result"}, "chat.results.send."},
		{"refused", "missing:x", true, "dead_letter", 1, []string{"api call", "claim", "order check", "record dead letter"}, "chat.dlq.send."},
		{"untraced", "def", false, "succeeded", 1, []string{"api call", "claim", "order check", "record result"}, "chat.results.send."},
	}
	app := tp.Tracer("app")
	parents := map[string]trace.SpanContext{}
	for _, tt := range tests {
		ctx := t.Context()
		if tt.traced {
			var span trace.Span
			ctx, span = app.Start(ctx, "app "+tt.name)
			parents[tt.name] = span.SpanContext()
			span.End()
		}
		if _, err := actions.Publish(ctx, p.JS, actions.Send{ID: tt.name, ChatID: tt.chat, Content: "private words"}, actions.Subjects{}); err != nil {
			t.Fatal(err)
		}
	}
	p.Settled()
	// The command spans end just after the acknowledgement.
	workertest.Eventually(t, time.Minute, func() bool { return len(spansNamed(exp.GetSpans(), "process send")) == len(tests) }, "command spans")
	spans := exp.GetSpans()
	records := recordsByID(t, p)

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var cmd *tracetest.SpanStub
			for _, s := range spansNamed(spans, "process send") {
				if attr(s, telemetry.AttrCommandID) == tt.name {
					cmd = s
				}
			}
			if cmd == nil {
				t.Fatal("no command span")
			}
			if want, ok := parents[tt.name]; ok {
				if cmd.Parent.SpanID() != want.SpanID() || cmd.SpanContext.TraceID() != want.TraceID() {
					t.Errorf("command span's parent %v, want the app's span %v", cmd.Parent, want)
				}
			} else if cmd.Parent.IsValid() {
				t.Errorf("an untraced command's span has parent %v", cmd.Parent)
			}
			if cmd.SpanKind != trace.SpanKindConsumer || attr(cmd, telemetry.AttrOutcome) != tt.outcome ||
				attr(cmd, telemetry.AttrAttempts) != strconv.Itoa(tt.attempts) || attr(cmd, telemetry.AttrChatToken) != contract.Token(tt.chat) ||
				attr(cmd, telemetry.AttrCommandType) != "send" || attr(cmd, "messaging.destination.name") != "chat.commands.send."+contract.Token(tt.chat) {
				t.Errorf("command span %v %v", cmd.SpanKind, cmd.Attributes)
			}
			if tt.outcome == "dead_letter" && (cmd.Status.Code != codes.Error || attr(cmd, telemetry.AttrErrorClass) != "permanent") {
				t.Errorf("dead letter's span status %v, attributes %v", cmd.Status, cmd.Attributes)
			}
			if retries := len(cmd.Events); retries != tt.attempts-1 {
				t.Errorf("%d retry events, want %d", retries, tt.attempts-1)
			}
			var children []string
			var record *tracetest.SpanStub
			for _, s := range childrenOf(spans, cmd) {
				children = append(children, s.Name)
				if strings.HasPrefix(s.Name, "record") {
					record = s
				}
				if s.Name == "api call" {
					// The HTTP request's span sits under each call that reached the API.
					if n := len(childrenOf(spans, s)); n > 1 || n == 1 && childrenOf(spans, s)[0].Name != "POST" {
						t.Errorf("api call's children: %v", childrenOf(spans, s))
					}
				}
			}
			slices.Sort(children)
			if !slices.Equal(children, tt.children) {
				t.Errorf("children %v, want %v", children, tt.children)
			}
			// The record carries on from its span, in its header and its JSON.
			m := records[tt.name]
			if m == nil || record == nil {
				t.Fatalf("record %v, record span %v", m, record)
			}
			want := "00-" + record.SpanContext.TraceID().String() + "-" + record.SpanContext.SpanID().String() + "-01"
			if got := m.Header.Get("traceparent"); got != want || jsonTraceparent(t, m.Data) != want || !strings.HasPrefix(m.Subject, tt.record) {
				t.Errorf("record on %s: header traceparent %q, JSON %q; want %q", m.Subject, got, jsonTraceparent(t, m.Data), want)
			}
		})
	}
	for _, s := range spans {
		for _, kv := range s.Attributes {
			if v := kv.Value.String(); strings.Contains(v, "secret-") || strings.Contains(v, "private words") {
				t.Errorf("span %q attribute %s = %q holds a credential or content", s.Name, kv.Key, v)
			}
		}
		if strings.Contains(s.Status.Description, "secret-") {
			t.Errorf("span %q status %q holds a credential", s.Name, s.Status.Description)
		}
	}
}

// TestRecordsCarryTheCommandsTraceparent: with tracing off, the result and
// the dead letter carry the command's traceparent as it came, as a header
// and in their JSON; a command without one gives records without one.
func TestRecordsCarryTheCommandsTraceparent(t *testing.T) {
	p := newPipeline(t)
	const tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	tests := []struct {
		id, chat, header, want string
	}{
		{"ok", "abc", "traceparent", tp},
		{"dead", "missing:x", "traceparent", tp},
		{"capitalised", "def", "Traceparent", tp},
		{"none", "ghi", "", ""},
		{"dead-none", "missing:y", "", ""},
	}
	for _, tt := range tests {
		body, _ := json.Marshal(actions.Command{ID: tt.id, Type: contract.TypeSend, ChatID: tt.chat, Content: "x"})
		msg := &nats.Msg{Subject: actions.Subjects{}.Command(contract.TypeSend, tt.chat), Data: body, Header: nats.Header{}}
		if tt.header != "" {
			msg.Header.Set(tt.header, tp)
		}
		if _, err := p.JS.PublishMsg(t.Context(), msg); err != nil {
			t.Fatal(err)
		}
	}
	p.Settled()
	records := recordsByID(t, p)
	for _, tt := range tests {
		t.Run(tt.id, func(t *testing.T) {
			m := records[tt.id]
			if m == nil {
				t.Fatal("no record")
			}
			if got := m.Header.Get("traceparent"); got != tt.want {
				t.Errorf("header traceparent %q, want %q", got, tt.want)
			}
			if got := jsonTraceparent(t, m.Data); got != tt.want {
				t.Errorf("JSON traceparent %q, want %q", got, tt.want)
			}
		})
	}
}

// recordsByID reads every result and dead letter, by command id.
func recordsByID(t *testing.T, p *pipeline) map[string]*jetstream.RawStreamMsg {
	t.Helper()
	out := map[string]*jetstream.RawStreamMsg{}
	for _, stream := range []string{"CHAT_RESULTS", "CHAT_DLQ"} {
		for _, m := range p.Records(stream, int(p.Count(stream))) {
			var r struct {
				ID      string `json:"id"`
				Command struct {
					ID string `json:"id"`
				} `json:"command"`
			}
			if err := json.Unmarshal(m.Data, &r); err != nil {
				t.Fatal(err)
			}
			out[r.ID+r.Command.ID] = m
		}
	}
	return out
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

func spansNamed(spans tracetest.SpanStubs, name string) []*tracetest.SpanStub {
	var out []*tracetest.SpanStub
	for i := range spans {
		if spans[i].Name == name {
			out = append(out, &spans[i])
		}
	}
	return out
}

func childrenOf(spans tracetest.SpanStubs, parent *tracetest.SpanStub) []*tracetest.SpanStub {
	var out []*tracetest.SpanStub
	for i := range spans {
		if spans[i].Parent.SpanID() == parent.SpanContext.SpanID() && spans[i].Parent.TraceID() == parent.SpanContext.TraceID() {
			out = append(out, &spans[i])
		}
	}
	return out
}

func attr(s *tracetest.SpanStub, key string) string {
	for _, kv := range s.Attributes {
		if string(kv.Key) == key {
			return kv.Value.String()
		}
	}
	return ""
}

// TestScheduledCommandKeepsItsTrace: a command scheduled inside an app's
// span runs, at its time, in that trace (the server copies the schedule's
// headers onto the command it fires).
func TestScheduledCommandKeepsItsTrace(t *testing.T) {
	p := newPipeline(t)
	const tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	ctx := tracecontext.Extract(t.Context(), nats.Header{"traceparent": {tp}})
	if _, err := actions.ScheduleAt(ctx, p.JS, actions.Note{ChatID: "sched-trace", Content: "later"}, time.Now().Add(time.Second), actions.Subjects{}); err != nil {
		t.Fatal(err)
	}
	if r := p.Results(1)[0]; r.Traceparent != tp {
		t.Errorf("the scheduled command's result has traceparent %q, want the app's %q", r.Traceparent, tp)
	}
}
