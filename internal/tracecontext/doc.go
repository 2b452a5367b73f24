// Package tracecontext carries W3C trace context (traceparent, tracestate)
// in NATS message headers. It is apart from package telemetry so that
// publishing a command (package actions) links no tracing SDK or exporter:
// it needs only the OpenTelemetry API.
package tracecontext
