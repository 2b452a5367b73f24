package telemetry

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// Transport returns base wrapped so that every request gets a client span
// and carries that span's traceparent. It is ours rather than otelhttp's
// because otelhttp records the full URL, query included, and the Chat API
// takes its key in the query: the span keeps the URL without its query, and
// never an error's text (a transport error may quote the URL).
func Transport(base http.RoundTripper, tp trace.TracerProvider) http.RoundTripper {
	if base == nil {
		base = http.DefaultTransport
	}
	return &transport{base: base, tracer: tp.Tracer(Instrumentation)}
}

type transport struct {
	base   http.RoundTripper
	tracer trace.Tracer
}

func (t *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx, span := t.tracer.Start(req.Context(), req.Method, trace.WithSpanKind(trace.SpanKindClient))
	defer span.End()
	if span.IsRecording() {
		u := *req.URL
		u.User, u.RawQuery, u.ForceQuery = nil, "", false
		span.SetAttributes(
			attribute.String("http.request.method", req.Method),
			attribute.String("server.address", req.URL.Hostname()),
			attribute.String("url.full", u.String()),
		)
		if p := req.URL.Port(); p != "" {
			if n, err := strconv.Atoi(p); err == nil {
				span.SetAttributes(attribute.Int("server.port", n))
			}
		}
	}
	if !span.SpanContext().IsValid() {
		return t.base.RoundTrip(req) // nothing to propagate
	}
	// A RoundTripper must not change the caller's request: the header goes
	// on a copy.
	out := req.WithContext(ctx)
	out.Header = req.Header.Clone()
	if out.Header == nil {
		out.Header = http.Header{}
	}
	propagation.TraceContext{}.Inject(ctx, propagation.HeaderCarrier(out.Header))
	resp, err := t.base.RoundTrip(out)
	if err != nil {
		span.SetAttributes(attribute.String("error.type", errorType(err)))
		span.SetStatus(codes.Error, "the request failed before a response")
		return resp, err
	}
	span.SetAttributes(attribute.Int("http.response.status_code", resp.StatusCode))
	if resp.StatusCode >= 400 {
		span.SetAttributes(attribute.String("error.type", strconv.Itoa(resp.StatusCode)))
		span.SetStatus(codes.Error, "")
	}
	return resp, nil
}

// errorType names an error by its Go type, which says what kind of failure
// it was without quoting anything the error holds.
func errorType(err error) string {
	return strings.TrimPrefix(fmt.Sprintf("%T", err), "*")
}

// CloseIdleConnections passes the call on, so that http.Client's of the
// same name still reaches the pool behind the wrapper.
func (t *transport) CloseIdleConnections() {
	if c, ok := t.base.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}
