package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/rs/zerolog"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// This file builds the tracer provider of `serve --tracing`: an OTLP
// exporter behind a batch processor, configured by the standard OTEL_*
// variables. The spans themselves are authz's (authz/trace.go): a Check
// span started by the gRPC adapter, otelhttp's span on the HTTP listener,
// both annotated by the decision's one observer. With --tracing off
// nothing is built and no span is ever started.

// tracingSetup is the tracer provider of `serve --tracing`: an OTLP
// exporter behind a batch processor.
type tracingSetup struct {
	tp *sdktrace.TracerProvider
}

// newTracingSetup builds the exporter and provider from the standard
// OpenTelemetry environment variables:
//   - OTEL_EXPORTER_OTLP_TRACES_PROTOCOL, else OTEL_EXPORTER_OTLP_PROTOCOL:
//     grpc (the default) or http/protobuf;
//   - OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT, _HEADERS, _INSECURE, _TIMEOUT,
//     _CERTIFICATE, _COMPRESSION: read by the exporter;
//   - OTEL_SERVICE_NAME (default extauthz), OTEL_RESOURCE_ATTRIBUTES;
//   - OTEL_TRACES_SAMPLER, OTEL_TRACES_SAMPLER_ARG (default
//     parentbased_always_on): read by the SDK;
//   - OTEL_BSP_MAX_QUEUE_SIZE, _SCHEDULE_DELAY, _EXPORT_TIMEOUT,
//     _MAX_EXPORT_BATCH_SIZE: the batch processor's bounded queue, which
//     drops spans when full rather than block a decision.
//
// Nothing connects here: the exporters dial when the first batch leaves.
func newTracingSetup(ctx context.Context, getenv func(string) string, log zerolog.Logger) (*tracingSetup, error) {
	protoVar := "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"
	proto := getenv(protoVar)
	if proto == "" {
		protoVar = "OTEL_EXPORTER_OTLP_PROTOCOL"
		proto = getenv(protoVar)
	}
	var exp sdktrace.SpanExporter
	var err error
	switch proto {
	case "", "grpc":
		exp, err = otlptracegrpc.New(ctx)
	case "http/protobuf":
		exp, err = otlptracehttp.New(ctx)
	default:
		return nil, fmt.Errorf("--tracing: %s: want grpc or http/protobuf, got %q", protoVar, proto)
	}
	if err != nil {
		return nil, fmt.Errorf("--tracing: OTLP exporter: %w", err)
	}
	// OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES (WithFromEnv, applied
	// last) override the default name.
	res, err := resource.New(ctx,
		resource.WithAttributes(attribute.String("service.name", "extauthz")),
		resource.WithTelemetrySDK(),
		resource.WithFromEnv())
	if err != nil {
		return nil, fmt.Errorf("--tracing: OTEL_RESOURCE_ATTRIBUTES or OTEL_SERVICE_NAME: %w", err)
	}
	// Export failures (a collector down) are logged, not fatal: decisions
	// never wait for the exporter.
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) {
		log.Warn().Str("component", "tracing").Err(err).Msg("trace export failed")
	}))
	return &tracingSetup{tp: sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))}, nil
}

// shutdown flushes the spans still queued and stops the exporter, within
// ctx's deadline.
func (s *tracingSetup) shutdown(ctx context.Context) error {
	if s == nil {
		return nil
	}
	err := s.tp.Shutdown(ctx)
	if errors.Is(err, context.DeadlineExceeded) {
		return errors.New("tracing: spans still queued at the shutdown timeout were dropped")
	}
	return err
}

// shutdownTracing flushes and stops the exporter at exit, within
// --shutdown-timeout.
func (a *app) shutdownTracing() {
	if a.tracing == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), a.opts.shutdownTimeout)
	defer cancel()
	if err := a.tracing.shutdown(ctx); err != nil {
		a.log.Warn().Str("component", "tracing").Err(err).Msg("trace flush at exit failed")
	}
}
