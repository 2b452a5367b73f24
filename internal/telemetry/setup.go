package telemetry

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/chatworker/worker/internal/version"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
	"go.uber.org/zap"
)

// DefaultServiceName names the worker's traces unless OTEL_SERVICE_NAME (or
// service.name in OTEL_RESOURCE_ATTRIBUTES) says otherwise.
const DefaultServiceName = "chatworker"

// Instrumentation names the worker's tracers.
const Instrumentation = "github.com/chatworker/worker"

// Provider is the process's tracer provider: an OTLP-exporting SDK provider
// when the environment configures one, a no-op one otherwise.
type Provider struct {
	trace.TracerProvider
	sdk *sdktrace.TracerProvider // nil when tracing is off
}

var _ trace.TracerProvider = (*Provider)(nil)

// Enabled reports whether spans are recorded and exported.
func (p *Provider) Enabled() bool { return p.sdk != nil }

// Shutdown flushes the spans still queued and stops the exporter. It is a
// no-op when tracing is off.
func (p *Provider) Shutdown(ctx context.Context) error {
	if p.sdk == nil {
		return nil
	}
	return p.sdk.Shutdown(ctx)
}

// Off is a provider that records nothing.
func Off() *Provider { return &Provider{TracerProvider: noop.NewTracerProvider()} }

// Setup builds the Provider the OTEL_* environment describes. Tracing is off
// unless OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is
// set, and off whenever OTEL_SDK_DISABLED=true or OTEL_TRACES_EXPORTER=none.
// The exporter itself reads the rest of the OTLP variables (headers,
// timeout, compression, certificates), the SDK reads OTEL_TRACES_SAMPLER and
// OTEL_BSP_*. Values it would only log and ignore are refused here instead,
// so that a typo fails the start rather than silently changing what is
// traced. log receives the errors the exporter meets later (a collector that
// is down must not stop the worker).
func Setup(ctx context.Context, log *zap.Logger) (*Provider, error) {
	on, err := enabled(os.Getenv)
	if err != nil || !on {
		return Off(), err
	}
	proto, _ := protocol(os.Getenv) // checked by enabled
	exp, err := newExporter(ctx, proto)
	if err != nil {
		return Off(), err
	}
	res, err := newResource(ctx)
	if err != nil {
		return Off(), err
	}
	if log != nil {
		// The SDK reports export failures through this process-wide hook;
		// without it they go to the standard logger, unstructured.
		otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) {
			log.Warn("exporting traces", zap.Error(err))
		}))
	}
	sdk := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))
	return &Provider{TracerProvider: sdk, sdk: sdk}, nil
}

// enabled decides from the environment whether to trace, refusing values
// the SDK does not understand.
func enabled(getenv func(string) string) (bool, error) {
	if v := strings.TrimSpace(getenv("OTEL_SDK_DISABLED")); v != "" {
		disabled, err := strconv.ParseBool(v)
		if err != nil {
			return false, fmt.Errorf("OTEL_SDK_DISABLED=%q: want true or false", v)
		}
		if disabled {
			return false, nil
		}
	}
	switch v := strings.TrimSpace(strings.ToLower(getenv("OTEL_TRACES_EXPORTER"))); v {
	case "", "otlp":
	case "none":
		return false, nil
	default:
		return false, fmt.Errorf("OTEL_TRACES_EXPORTER=%q: the worker exports traces with otlp (or none)", v)
	}
	if getenv("OTEL_EXPORTER_OTLP_ENDPOINT") == "" && getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") == "" {
		return false, nil
	}
	if err := checkSampler(getenv); err != nil {
		return false, err
	}
	_, err := protocol(getenv)
	return err == nil, err
}

// protocol is the OTLP transport named by the environment, the traces
// variable first; http/protobuf by default, as the specification says.
func protocol(getenv func(string) string) (string, error) {
	name, v := "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", getenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
	if v == "" {
		name, v = "OTEL_EXPORTER_OTLP_PROTOCOL", getenv("OTEL_EXPORTER_OTLP_PROTOCOL")
	}
	switch v = strings.TrimSpace(strings.ToLower(v)); v {
	case "", "http/protobuf":
		return "http/protobuf", nil
	case "http/json":
		return v, nil
	case "grpc":
		return v, nil
	default:
		return "", fmt.Errorf("%s=%q: want http/protobuf, http/json or grpc", name, v)
	}
}

// checkSampler refuses what the SDK would log and replace by its default.
func checkSampler(getenv func(string) string) error {
	s := strings.TrimSpace(getenv("OTEL_TRACES_SAMPLER"))
	switch s {
	case "", "always_on", "always_off", "parentbased_always_on", "parentbased_always_off":
		return nil
	case "traceidratio", "parentbased_traceidratio":
		arg := strings.TrimSpace(getenv("OTEL_TRACES_SAMPLER_ARG"))
		if arg == "" {
			return nil
		}
		if r, err := strconv.ParseFloat(arg, 64); err != nil || r < 0 || r > 1 {
			return fmt.Errorf("OTEL_TRACES_SAMPLER_ARG=%q: want a ratio from 0 to 1", arg)
		}
		return nil
	default:
		return fmt.Errorf("OTEL_TRACES_SAMPLER=%q: want always_on, always_off, traceidratio or their parentbased_ forms", s)
	}
}

func newExporter(ctx context.Context, protocol string) (sdktrace.SpanExporter, error) {
	// The exporters read the endpoint, headers, compression, timeout and TLS
	// settings from the environment themselves; neither connects in New.
	var (
		exp sdktrace.SpanExporter
		err error
	)
	if protocol == "grpc" {
		exp, err = otlptracegrpc.New(ctx)
	} else {
		exp, err = otlptracehttp.New(ctx)
	}
	if err != nil {
		return nil, fmt.Errorf("OTLP trace exporter: %w", err)
	}
	return exp, nil
}

// newResource names the service chatworker, at the binary's version, unless
// the environment says otherwise.
func newResource(ctx context.Context) (*resource.Resource, error) {
	res, err := resource.New(ctx,
		resource.WithAttributes(attribute.String("service.name", DefaultServiceName), attribute.String("service.version", version.Get().Version)),
		resource.WithTelemetrySDK(),
		resource.WithHost(),
		resource.WithProcessPID(),
		resource.WithFromEnv(), // last: OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES win
	)
	if err != nil && !errors.Is(err, resource.ErrPartialResource) {
		return nil, fmt.Errorf("OTEL_RESOURCE_ATTRIBUTES: %w", err)
	}
	return res, nil
}
