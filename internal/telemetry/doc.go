// Package telemetry sets up OpenTelemetry tracing from the standard OTEL_*
// environment variables and carries W3C trace context over NATS headers and
// Chat API requests. With no OTLP endpoint configured it hands out nothing
// that records, so an untraced worker pays nothing for it.
package telemetry
