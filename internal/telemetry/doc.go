// Package telemetry sets up OpenTelemetry tracing from the standard OTEL_*
// environment variables, names the worker's span attributes, and wraps the
// Chat API client's transport so each request gets its span and carries the
// trace on. W3C trace context over NATS headers lives in
// internal/tracecontext. With no OTLP endpoint configured it hands out
// nothing that records, so an untraced worker pays nothing for it.
package telemetry
