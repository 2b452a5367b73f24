package telemetrytest

import (
	"compress/gzip"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"

	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"
)

// Receiver accepts OTLP/HTTP protobuf trace exports on /v1/traces.
type Receiver struct {
	URL string // the base URL: OTEL_EXPORTER_OTLP_ENDPOINT

	mu       sync.Mutex
	requests []*collectortrace.ExportTraceServiceRequest
	headers  []http.Header
}

// NewReceiver starts a receiver, closed with t.Cleanup.
func NewReceiver(t testing.TB) *Receiver {
	t.Helper()
	r := &Receiver{}
	srv := httptest.NewServer(http.HandlerFunc(r.serve(t)))
	t.Cleanup(srv.Close)
	r.URL = srv.URL
	return r
}

func (r *Receiver) serve(t testing.TB) func(http.ResponseWriter, *http.Request) {
	return func(w http.ResponseWriter, req *http.Request) {
		if req.Method != http.MethodPost || req.URL.Path != "/v1/traces" || req.Header.Get("Content-Type") != "application/x-protobuf" {
			t.Errorf("telemetrytest: unexpected %s %s (%s)", req.Method, req.URL.Path, req.Header.Get("Content-Type"))
			http.Error(w, "not an OTLP/HTTP protobuf trace export", http.StatusBadRequest)
			return
		}
		var body io.Reader = req.Body
		if req.Header.Get("Content-Encoding") == "gzip" {
			zr, err := gzip.NewReader(req.Body)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			body = zr
		}
		data, err := io.ReadAll(body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		export := &collectortrace.ExportTraceServiceRequest{}
		if err := proto.Unmarshal(data, export); err != nil {
			t.Errorf("telemetrytest: decoding an export: %v", err)
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		r.mu.Lock()
		r.requests = append(r.requests, export)
		r.headers = append(r.headers, req.Header.Clone())
		r.mu.Unlock()
		resp, _ := proto.Marshal(&collectortrace.ExportTraceServiceResponse{})
		w.Header().Set("Content-Type", "application/x-protobuf")
		_, _ = w.Write(resp)
	}
}

// Requests returns the exports received so far, with their HTTP headers.
func (r *Receiver) Requests() ([]*collectortrace.ExportTraceServiceRequest, []http.Header) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*collectortrace.ExportTraceServiceRequest(nil), r.requests...), append([]http.Header(nil), r.headers...)
}

// Span is one received span with the resource it came from.
type Span struct {
	*tracepb.Span
	Resource map[string]string
}

// Attr returns the span's attribute key as a string, "" when absent.
func (s Span) Attr(key string) string { return stringAttrs(s.GetAttributes())[key] }

// Spans returns every span received so far.
func (r *Receiver) Spans() []Span {
	reqs, _ := r.Requests()
	var spans []Span
	for _, req := range reqs {
		for _, rs := range req.GetResourceSpans() {
			res := stringAttrs(rs.GetResource().GetAttributes())
			for _, ss := range rs.GetScopeSpans() {
				for _, s := range ss.GetSpans() {
					spans = append(spans, Span{Span: s, Resource: res})
				}
			}
		}
	}
	return spans
}

func stringAttrs(kvs []*commonpb.KeyValue) map[string]string {
	m := make(map[string]string, len(kvs))
	for _, kv := range kvs {
		v := kv.GetValue()
		switch v.GetValue().(type) {
		case *commonpb.AnyValue_IntValue:
			m[kv.GetKey()] = strconv.FormatInt(v.GetIntValue(), 10)
		case *commonpb.AnyValue_BoolValue:
			if v.GetBoolValue() {
				m[kv.GetKey()] = "true"
			} else {
				m[kv.GetKey()] = "false"
			}
		default:
			m[kv.GetKey()] = v.GetStringValue()
		}
	}
	return m
}
