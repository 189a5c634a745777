package authz

import (
	"context"
	"net"
	"net/http"
	"net/url"

	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/contrib/propagators/b3"
	"go.opentelemetry.io/otel/attribute"
	otelcodes "go.opentelemetry.io/otel/codes"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/extauthz/extauthz/capability"
)

// This file starts the spans that the observer (observe.go) annotates:
// one server span per gRPC Check (GRPCOptions.TracerProvider) and one per
// request to an HTTP endpoint that decides (TraceHTTP). Without a tracer
// provider nothing here runs.
//
// A span carries the decision, the reason slug, the route class, the
// protocol, the caller's container id (as the decision line logs it) and
// the fingerprint of the ring's sealing key, with the RPC's or HTTP
// answer's status; never a token, a capability, a key, a header value
// other than the trace context, a request body or a query string.

// Span attribute keys.
const (
	attrDecision       = attribute.Key("extauthz.decision") // allow | deny
	attrReason         = attribute.Key("extauthz.reason")
	attrRouteClass     = attribute.Key("extauthz.route_class")
	attrProfile        = attribute.Key("extauthz.profile")
	attrProtocol       = attribute.Key("extauthz.protocol")
	attrContainerID    = attribute.Key("extauthz.container_id")
	attrKeyFingerprint = attribute.Key("extauthz.key_ring.primary_fingerprint")
)

// instrumentationName names the tracer of the Check spans.
const instrumentationName = "github.com/extauthz/extauthz"

// tracePropagator reads a parent from W3C trace context or B3 (single or
// multiple headers), whichever the request carries. Every header it reads
// is in traceHeaders (TestTraceHeadersCoverPropagators), which is what the
// gRPC reader keeps for it.
var tracePropagator = propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, b3.New())

// ringFingerprint caches the sealing key's fingerprint of one ring: rings
// are replaced whole on reload, so the pointer says when to recompute.
type ringFingerprint struct {
	ring *capability.KeyRing
	fp   string
}

// keyFingerprint is the fingerprint of the current ring's sealing key. The
// key that opened a given capability is not known here, so a span names
// the ring's primary key, which is what an operator rotating keys wants to
// see change.
func (a *Authorizer) keyFingerprint() string {
	r := a.codec.KeyRing()
	if c := a.fingerprint.Load(); c != nil && c.ring == r {
		return c.fp
	}
	c := &ringFingerprint{ring: r}
	if fps := r.Fingerprints(); len(fps) > 0 {
		c.fp = fps[0]
	}
	a.fingerprint.Store(c)
	return c.fp
}

// checkSpanName names every Check span (rpc.service/rpc.method).
const checkSpanName = ServiceName + "/Check"

var checkSpanAttrs = []attribute.KeyValue{
	attribute.String("rpc.system", "grpc"),
	attribute.String("rpc.service", ServiceName),
	attribute.String("rpc.method", "Check"),
}

// startCheckSpan starts the server span of one Check, once the request is
// read. Its parent is the original request's trace context, which Envoy's
// ext_authz filter copies into the CheckRequest's headers (body, read by
// the wire reader); failing that, the gRPC metadata of the call itself,
// where Envoy's gRPC client propagates its own span. This is why the span
// is not otelgrpc's: its stats handler starts the span before the request
// is read, from the metadata alone.
func (s *GRPCServer) startCheckSpan(ctx context.Context, body propagation.TextMapCarrier) (context.Context, trace.Span) {
	parent := tracePropagator.Extract(ctx, body)
	if !trace.SpanContextFromContext(parent).IsValid() {
		md, _ := metadata.FromIncomingContext(ctx)
		parent = tracePropagator.Extract(ctx, metadataCarrier(md))
	}
	return s.tracer.Start(parent, checkSpanName, trace.WithSpanKind(trace.SpanKindServer))
}

// endCheckSpan records the RPC's attributes and status and ends the span:
// attributes only on a span that records, so that an unsampled Check
// builds none. An error is a Check without a decision: a cancelled call.
func endCheckSpan(span trace.Span, err error) {
	if span.IsRecording() {
		code := status.Code(err)
		span.SetAttributes(checkSpanAttrs...)
		span.SetAttributes(attribute.Int("rpc.grpc.status_code", int(code)))
		if err != nil {
			span.SetStatus(otelcodes.Error, code.String())
		}
	}
	span.End()
}

// metadataCarrier reads trace headers from incoming gRPC metadata.
type metadataCarrier metadata.MD

func (m metadataCarrier) Get(key string) string {
	if v := metadata.MD(m).Get(key); len(v) > 0 {
		return v[0]
	}
	return ""
}

func (metadataCarrier) Set(string, string) {}

func (m metadataCarrier) Keys() []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	return keys
}

// TraceHTTP wraps the HTTP listener's handler h (an HTTPHandler, an
// APIHandler, or both routed by EndpointOf) so that each request to an
// endpoint that decides (Endpoint.Decides) gets a server span from tp,
// made by the maintained otelhttp instrumentation: named "extauthz "
// followed by the endpoint's name, child of the W3C or B3 trace context the
// request carries, with the HTTP status. The observer adds what was
// decided. A path that decides nothing gets no span.
//
// otelhttp records what a request says of itself (its path, user agent,
// X-Forwarded-For, host), which a client chooses and may fill with a
// capability. So it is shown a stand-in for the request that holds only
// the method (one it knows, else none), the endpoint's route as path and
// route, the listener's address as host, the peer's address, and the trace
// context headers; h is served the request itself.
func TraceHTTP(h http.Handler, tp trace.TracerProvider) http.Handler {
	t := &httpTracing{next: h}
	t.otel = otelhttp.NewHandler(http.HandlerFunc(t.serveOriginal), "",
		otelhttp.WithTracerProvider(tp),
		otelhttp.WithPropagators(tracePropagator),
		otelhttp.WithMeterProvider(metricnoop.NewMeterProvider()),
		otelhttp.WithSpanNameFormatter(func(_ string, r *http.Request) string {
			return tracedOf(r).name
		}))
	return t
}

// httpSpanNames are the span names of the HTTP listener's endpoints.
var httpSpanNames = func() (names [numEndpoints]string) {
	for i, ep := range endpoints {
		names[i] = "extauthz " + ep.Name
	}
	return names
}()

type httpTracing struct {
	next, otel http.Handler
}

// traced is what the stand-in carries of the request it stands for.
type traced struct {
	r    *http.Request
	name string
}

type tracedKey struct{}

func tracedOf(r *http.Request) *traced {
	return r.Context().Value(tracedKey{}).(*traced)
}

func (t *httpTracing) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	id, _ := endpointOf(r)
	if id == epNone || !endpoints[id].Decides {
		t.next.ServeHTTP(w, r)
		return
	}
	route := endpoints[id].Route
	stand := &http.Request{
		Method: r.Method, URL: &url.URL{Path: route}, Pattern: route, RequestURI: route,
		Proto: r.Proto, ProtoMajor: r.ProtoMajor, ProtoMinor: r.ProtoMinor,
		Header: http.Header{}, Body: r.Body, ContentLength: r.ContentLength,
		RemoteAddr: r.RemoteAddr, TLS: r.TLS,
	}
	if !knownMethods[r.Method] {
		stand.Method = "" // otelhttp: http.request.method _OTHER, no original
	}
	if addr, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
		stand.Host = addr.String()
	}
	for _, name := range traceHeaders {
		if v := r.Header.Values(name); len(v) > 0 {
			stand.Header[http.CanonicalHeaderKey(name)] = v
		}
	}
	t.otel.ServeHTTP(w, stand.WithContext(context.WithValue(r.Context(), tracedKey{}, &traced{r: r, name: httpSpanNames[id]})))
}

// serveOriginal serves the request the stand-in stands for, in the
// stand-in's context (the span) and with its body (otelhttp counts what
// is read).
func (t *httpTracing) serveOriginal(w http.ResponseWriter, stand *http.Request) {
	r := tracedOf(stand).r.WithContext(stand.Context())
	r.Body = stand.Body
	t.next.ServeHTTP(w, r)
}

// knownMethods are the methods otelhttp names; another is reported as
// _OTHER, as the HTTP conventions ask, without the method itself.
var knownMethods = map[string]bool{
	http.MethodGet: true, http.MethodHead: true, http.MethodPost: true, http.MethodPut: true,
	http.MethodPatch: true, http.MethodDelete: true, http.MethodOptions: true,
	http.MethodConnect: true, http.MethodTrace: true,
}
