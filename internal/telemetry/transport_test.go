package telemetry

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/chatworker/worker/internal/tracecontext"
	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

const (
	parentTP = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	traceID  = "4bf92f3577b34da6a3ce929d0e0e4736"
	spanID   = "00f067aa0ba902b7"
)

// recorder returns a tracer provider whose ended spans the test can read.
func recorder(t *testing.T) (*sdktrace.TracerProvider, *tracetest.InMemoryExporter) {
	t.Helper()
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	t.Cleanup(func() { _ = tp.Shutdown(t.Context()) })
	return tp, exp
}

func TestTransport(t *testing.T) {
	const secret = "sekrit-api-key"
	tests := []struct {
		name       string
		status     int
		wantStatus codes.Code
	}{
		{"ok", http.StatusOK, codes.Unset},
		{"refused", http.StatusNotFound, codes.Error},
		{"server error", http.StatusServiceUnavailable, codes.Error},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			seen := make(chan string, 1)
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				seen <- r.Header.Get("traceparent")
				w.WriteHeader(tt.status)
			}))
			t.Cleanup(srv.Close)
			tp, exp := recorder(t)
			hc := &http.Client{Transport: Transport(srv.Client().Transport, tp)}

			ctx := tracecontext.Extract(t.Context(), nats.Header{"traceparent": {parentTP}})
			req, err := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL+"/chats/abc/messages?api_key="+secret+"&site_token=GSN-1", nil)
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Idempotency-Key", "k")
			resp, err := hc.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			_ = resp.Body.Close()
			if req.Header.Get("traceparent") != "" {
				t.Error("the caller's request was changed")
			}

			spans := exp.GetSpans()
			if len(spans) != 1 {
				t.Fatalf("%d spans, want 1", len(spans))
			}
			s := spans[0]
			// The API sees the client span as the parent, in the command's trace.
			want := "00-" + traceID + "-" + s.SpanContext.SpanID().String() + "-01"
			if got := <-seen; got != want {
				t.Errorf("the API got traceparent %q, want %q", got, want)
			}
			if s.Parent.SpanID().String() != spanID || s.SpanKind != trace.SpanKindClient || s.Name != "POST" {
				t.Errorf("span %q kind %v parent %v", s.Name, s.SpanKind, s.Parent.SpanID())
			}
			if s.Status.Code != tt.wantStatus {
				t.Errorf("status %v, want %v", s.Status.Code, tt.wantStatus)
			}
			attrs := map[string]string{}
			for _, kv := range s.Attributes {
				attrs[string(kv.Key)] = kv.Value.String()
				if strings.Contains(kv.Value.String(), secret) || strings.Contains(kv.Value.String(), "GSN-1") {
					t.Errorf("attribute %s holds a credential: %s", kv.Key, kv.Value.String())
				}
			}
			if attrs["url.full"] != srv.URL+"/chats/abc/messages" || attrs["http.request.method"] != "POST" ||
				attrs["http.response.status_code"] != strconv.Itoa(tt.status) {
				t.Errorf("attributes %v", attrs)
			}
		})
	}
}

type failing struct{ err error }

func (f failing) RoundTrip(*http.Request) (*http.Response, error) { return nil, f.err }

// TestTransportErrorQuotesNothing: a transport error may hold the URL, and
// with it the key; the span keeps only the error's type.
func TestTransportErrorQuotesNothing(t *testing.T) {
	tp, exp := recorder(t)
	cause := errors.New("dial tcp: lookup api.example?api_key=sekrit: no such host")
	ctx, parent := tp.Tracer("t").Start(t.Context(), "call")
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://api.example/x?api_key=sekrit", nil)
	if _, err := Transport(failing{cause}, tp).RoundTrip(req); !errors.Is(err, cause) {
		t.Fatalf("err = %v, want the transport's own", err)
	}
	parent.End()
	s := exp.GetSpans()[0]
	if s.Status.Code != codes.Error || strings.Contains(s.Status.Description, "sekrit") {
		t.Errorf("status %v %q", s.Status.Code, s.Status.Description)
	}
	for _, kv := range s.Attributes {
		if strings.Contains(kv.Value.String(), "sekrit") {
			t.Errorf("attribute %s quotes the error: %s", kv.Key, kv.Value.String())
		}
	}
	for _, e := range s.Events {
		t.Errorf("event %q recorded", e.Name)
	}
}

// TestTransportOff: with a no-op provider and no trace in the context the
// request goes through as it is.
func TestTransportOff(t *testing.T) {
	var got *http.Request
	base := roundTripFunc(func(r *http.Request) (*http.Response, error) {
		got = r
		return &http.Response{StatusCode: 200, Body: http.NoBody}, nil
	})
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, "http://api.example/x", nil)
	if _, err := Transport(base, noop.NewTracerProvider()).RoundTrip(req); err != nil {
		t.Fatal(err)
	}
	if got != req {
		t.Error("the request was copied with nothing to add")
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

type idleCloser struct {
	roundTripFunc
	closed bool
}

func (c *idleCloser) CloseIdleConnections() { c.closed = true }

// TestTransportClosesIdleConnections: the client's CloseIdleConnections
// still reaches the pool behind the wrapper (leak-checked tests rely on it).
func TestTransportClosesIdleConnections(t *testing.T) {
	base := &idleCloser{}
	(&http.Client{Transport: Transport(base, noop.NewTracerProvider())}).CloseIdleConnections()
	if !base.closed {
		t.Error("CloseIdleConnections did not reach the wrapped transport")
	}
}
