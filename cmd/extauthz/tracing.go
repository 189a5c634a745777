package main

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/rs/zerolog"
	"go.opentelemetry.io/contrib/propagators/b3"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/extauthz/extauthz/capability"
)

// Tracing lives here, in the binary, beside the adapters rather than in
// them: the gRPC interceptor (tracegrpc.go) and the HTTP middleware
// (tracehttp.go) read the decision from what the adapters answer, so the
// decision core knows nothing of OpenTelemetry. With --tracing off nothing
// is installed: no interceptor, no middleware, no exporter.
//
// A span carries the decision, the reason slug, the route class, the
// protocol, the caller's container id and the fingerprint of the ring's
// sealing key; never a token, a capability, a key, a header value other
// than the identity, a request body or a query string.

// Span attribute keys.
const (
	attrDecision       = attribute.Key("extauthz.decision") // allow | deny
	attrReason         = attribute.Key("extauthz.reason")
	attrRouteClass     = attribute.Key("extauthz.route_class")
	attrProtocol       = attribute.Key("extauthz.protocol")
	attrContainerID    = attribute.Key("extauthz.container_id")
	attrKeyFingerprint = attribute.Key("extauthz.key_ring.primary_fingerprint")
)

// tracer makes the decision spans.
type tracer struct {
	tr   trace.Tracer
	prop propagation.TextMapPropagator
	ring func() *capability.KeyRing
	fp   atomic.Pointer[ringFingerprint]
}

// ringFingerprint caches the sealing key's fingerprint of one ring: rings
// are replaced whole on reload, so the pointer says when to recompute.
type ringFingerprint struct {
	ring *capability.KeyRing
	fp   string
}

// newTracer makes decision spans with tp; ring is the current key ring.
// Parents are taken from W3C trace context or B3 (single or multiple
// headers), whichever the request carries.
func newTracer(tp trace.TracerProvider, ring func() *capability.KeyRing) *tracer {
	return &tracer{
		tr:   tp.Tracer("github.com/extauthz/extauthz"),
		prop: propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, b3.New()),
		ring: ring,
	}
}

// keyFingerprint is the fingerprint of the current ring's sealing key. The
// key that opened a given capability is not reported by the core, so a span
// names the ring's primary key, which is what an operator rotating keys
// wants to see change.
func (t *tracer) keyFingerprint() string {
	r := t.ring()
	if c := t.fp.Load(); c != nil && c.ring == r {
		return c.fp
	}
	c := &ringFingerprint{ring: r}
	if fps := r.Fingerprints(); len(fps) > 0 {
		c.fp = fps[0]
	}
	t.fp.Store(c)
	return c.fp
}

// commonAttrs are the attributes every decision span starts with.
func (t *tracer) commonAttrs(protocol string, more ...attribute.KeyValue) []attribute.KeyValue {
	attrs := append(make([]attribute.KeyValue, 0, len(more)+2), attrProtocol.String(protocol))
	if fp := t.keyFingerprint(); fp != "" {
		attrs = append(attrs, attrKeyFingerprint.String(fp))
	}
	return append(attrs, more...)
}

// isSlug reports whether s is a reason slug or route class as the adapters
// write them: lower-case ASCII letters, digits and underscores, short. Only
// such values are copied from an answer into a span, so that nothing else
// an answer carries can end up there.
func isSlug(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '_' {
			return false
		}
	}
	return true
}

// maxContainerIDLen bounds the container id copied into a span.
const maxContainerIDLen = 256

// containerIDAttr is the container id attribute, or false for an empty,
// over-long or non-printable id.
func containerIDAttr(id string) (attribute.KeyValue, bool) {
	if id == "" || len(id) > maxContainerIDLen {
		return attribute.KeyValue{}, false
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; c <= ' ' || c >= 0x7f {
			return attribute.KeyValue{}, false
		}
	}
	return attrContainerID.String(id), true
}

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
