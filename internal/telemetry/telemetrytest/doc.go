// Package telemetrytest is a local OTLP/HTTP trace receiver for tests: it
// decodes what an exporter sends, so a test can check the spans that left
// the process rather than what the SDK holds in memory.
package telemetrytest
