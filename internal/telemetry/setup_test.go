package telemetry

import (
	"context"
	"net"
	"strings"
	"testing"

	"github.com/chatworker/worker/internal/telemetry/telemetrytest"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/grpc"
)

func TestEnabled(t *testing.T) {
	const endpoint = "http://collector:4318"
	tests := []struct {
		name    string
		env     map[string]string
		want    bool
		wantErr string
	}{
		{"nothing set", nil, false, ""},
		{"only a service name", map[string]string{"OTEL_SERVICE_NAME": "x"}, false, ""},
		{"endpoint", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint}, true, ""},
		{"traces endpoint", map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": endpoint + "/v1/traces"}, true, ""},
		{"sdk disabled", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint, "OTEL_SDK_DISABLED": "true"}, false, ""},
		{"sdk not disabled", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint, "OTEL_SDK_DISABLED": "false"}, true, ""},
		{"exporter none", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint, "OTEL_TRACES_EXPORTER": "none"}, false, ""},
		{"exporter otlp", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint, "OTEL_TRACES_EXPORTER": "otlp"}, true, ""},
		{"http/json", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint, "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"}, true, ""},
		{"ratio sampler", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint, "OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.25"}, true, ""},
		{"bad disabled", map[string]string{"OTEL_SDK_DISABLED": "yes please"}, false, "OTEL_SDK_DISABLED"},
		{"other exporter", map[string]string{"OTEL_TRACES_EXPORTER": "zipkin"}, false, "OTEL_TRACES_EXPORTER"},
		{"grpc", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint, "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, true, ""},
		{"traces protocol wins", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint, "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "json"}, false, "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"},
		{"unknown protocol", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint, "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "carrier-pigeon"}, false, "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"},
		{"unknown sampler", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint, "OTEL_TRACES_SAMPLER": "sometimes"}, false, "OTEL_TRACES_SAMPLER"},
		{"bad ratio", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint, "OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "2"}, false, "OTEL_TRACES_SAMPLER_ARG"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := enabled(func(k string) string { return tt.env[k] })
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one naming %s", err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("enabled = %v, %v; want %v", got, err, tt.want)
			}
		})
	}
}

// clearEnv unsets every variable that could turn tracing on from the
// environment the tests run in.
func clearEnv(t *testing.T) {
	t.Helper()
	for _, k := range []string{"OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_PROTOCOL",
		"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_SDK_DISABLED", "OTEL_TRACES_EXPORTER", "OTEL_SERVICE_NAME",
		"OTEL_RESOURCE_ATTRIBUTES", "OTEL_TRACES_SAMPLER", "OTEL_TRACES_SAMPLER_ARG", "OTEL_EXPORTER_OTLP_HEADERS"} {
		t.Setenv(k, "")
	}
}

func TestSetupIsOffWithoutAnEndpoint(t *testing.T) {
	clearEnv(t)
	p, err := Setup(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if p.Enabled() {
		t.Fatal("tracing is on with no OTEL_* variable set")
	}
	_, span := p.Tracer("t").Start(t.Context(), "x")
	if span.IsRecording() {
		t.Error("the off provider records spans")
	}
	span.End()
	if err := p.Shutdown(t.Context()); err != nil {
		t.Error(err)
	}
}

// TestExportOverOTLPHTTP configures tracing only through the environment,
// as an operator would, and decodes what a local OTLP/HTTP receiver gets.
func TestExportOverOTLPHTTP(t *testing.T) {
	clearEnv(t)
	rcv := telemetrytest.NewReceiver(t)
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", rcv.URL)
	t.Setenv("OTEL_EXPORTER_OTLP_HEADERS", "Authorization=Bearer collector-token")

	p, err := Setup(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if !p.Enabled() {
		t.Fatal("tracing is off with OTEL_EXPORTER_OTLP_ENDPOINT set")
	}
	_, span := p.Tracer(Instrumentation).Start(t.Context(), "command send", trace.WithAttributes(attribute.String(AttrCommandID, "c-1")))
	want := span.SpanContext()
	span.End()
	// Shutdown flushes: the batch goes out now rather than after its delay.
	if err := p.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	spans := rcv.Spans()
	if len(spans) != 1 {
		t.Fatalf("the receiver has %d spans once Shutdown returned, want 1", len(spans))
	}
	if _, headers := rcv.Requests(); headers[0].Get("Authorization") != "Bearer collector-token" {
		t.Errorf("OTEL_EXPORTER_OTLP_HEADERS not sent: %q", headers[0].Get("Authorization"))
	}
	s := spans[0]
	if s.Resource["service.name"] != DefaultServiceName || s.Resource["service.version"] == "" {
		t.Errorf("service %q version %q, want %q at some version", s.Resource["service.name"], s.Resource["service.version"], DefaultServiceName)
	}
	if s.GetName() != "command send" || trace.TraceID(s.GetTraceId()) != want.TraceID() || trace.SpanID(s.GetSpanId()) != want.SpanID() {
		t.Errorf("span %q %x/%x, want %q %s/%s", s.GetName(), s.GetTraceId(), s.GetSpanId(), "command send", want.TraceID(), want.SpanID())
	}
	if s.Attr(AttrCommandID) != "c-1" {
		t.Errorf("attributes %v", s.GetAttributes())
	}
}

func TestServiceNameFromEnv(t *testing.T) {
	clearEnv(t)
	t.Setenv("OTEL_SERVICE_NAME", "chatworker-eu")
	res, err := newResource(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := res.Set().Value("service.name"); v.AsString() != "chatworker-eu" {
		t.Errorf("service.name %q, want OTEL_SERVICE_NAME's", v.AsString())
	}
}

type traceService struct {
	collectortrace.UnimplementedTraceServiceServer
	got chan *collectortrace.ExportTraceServiceRequest
}

func (s *traceService) Export(_ context.Context, req *collectortrace.ExportTraceServiceRequest) (*collectortrace.ExportTraceServiceResponse, error) {
	s.got <- req
	return &collectortrace.ExportTraceServiceResponse{}, nil
}

// TestExportOverOTLPGRPC: OTEL_EXPORTER_OTLP_PROTOCOL=grpc reaches a gRPC
// collector.
func TestExportOverOTLPGRPC(t *testing.T) {
	clearEnv(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	svc := &traceService{got: make(chan *collectortrace.ExportTraceServiceRequest, 10)}
	srv := grpc.NewServer()
	collectortrace.RegisterTraceServiceServer(srv, svc)
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(srv.Stop)
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://"+ln.Addr().String())
	t.Setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")

	p, err := Setup(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	_, span := p.Tracer(Instrumentation).Start(t.Context(), "command note")
	span.End()
	if err := p.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	select {
	case req := <-svc.got:
		if n := req.GetResourceSpans()[0].GetScopeSpans()[0].GetSpans()[0].GetName(); n != "command note" {
			t.Errorf("span %q", n)
		}
	default:
		t.Fatal("Shutdown returned before the collector had the spans")
	}
}
