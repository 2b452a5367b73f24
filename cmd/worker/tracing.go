package main

import (
	"context"
	"time"

	"github.com/chatworker/worker/internal/telemetry"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"
)

// startTracing sets tracing up from the OTEL_* environment; stop flushes
// what is still queued, waiting a few seconds at most, so that a collector
// that has gone away cannot hold up the exit.
func startTracing(ctx context.Context, log *zap.Logger) (tp *telemetry.Provider, stop func(), err error) {
	tp, err = telemetry.Setup(ctx, log)
	if err != nil {
		return nil, nil, usageError{err}
	}
	if tp.Enabled() {
		log.Info("tracing: exporting spans over OTLP")
	}
	return tp, func() {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if err := tp.Shutdown(ctx); err != nil {
			log.Warn("flushing traces", zap.Error(err))
		}
	}, nil
}

// tracerIfOn is tp when it traces, and nil otherwise: the consumer then
// starts no span at all rather than no-op ones.
func tracerIfOn(tp *telemetry.Provider) trace.TracerProvider {
	if !tp.Enabled() {
		return nil
	}
	return tp
}
