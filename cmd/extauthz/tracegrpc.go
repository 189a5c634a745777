package main

import (
	"context"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/extauthz/extauthz/authz"
	"go.opentelemetry.io/otel/attribute"
	otelcodes "go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// checkSpanName names every Check span (rpc.service/rpc.method).
const checkSpanName = authz.ServiceName + "/Check"

// unary is a gRPC unary interceptor that wraps each Check in a server span.
// The parent is the original request's trace context, which Envoy's
// ext_authz filter copies into the CheckRequest's headers when Envoy
// traces; failing that, the gRPC metadata of the call itself (Envoy's own
// gRPC client propagates its span there). Other methods pass through.
func (t *tracer) unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if info.FullMethod != checkMethod {
		return handler(ctx, req)
	}
	var carrier propagation.TextMapCarrier = (*checkCarrier)(nil)
	switch r := req.(type) {
	case *authv3.CheckRequest:
		carrier = (*checkCarrier)(r)
	case authz.WireRequest: // served by authz.RegisterWire
		carrier = wireCarrier{r}
	}
	parent := t.prop.Extract(ctx, carrier)
	if !trace.SpanContextFromContext(parent).IsValid() {
		md, _ := metadata.FromIncomingContext(ctx)
		parent = t.prop.Extract(ctx, metadataCarrier(md))
	}
	ctx, span := t.tr.Start(parent, checkSpanName, trace.WithSpanKind(trace.SpanKindServer))
	defer span.End()
	resp, err := handler(ctx, req)
	if !span.IsRecording() {
		return resp, err // not sampled: no attributes to build
	}
	span.SetAttributes(t.commonAttrs(authz.ProtocolGRPC,
		attribute.String("rpc.system", "grpc"),
		attribute.String("rpc.service", authz.ServiceName),
		attribute.String("rpc.method", "Check"))...)
	code := status.Code(err)
	span.SetAttributes(attribute.Int("rpc.grpc.status_code", int(code)))
	if err != nil {
		// No decision: a cancelled call or a request that could not be read.
		span.SetStatus(otelcodes.Error, code.String())
		return resp, err
	}
	if cresp, ok := resp.(*authv3.CheckResponse); ok {
		span.SetAttributes(checkResponseAttrs(cresp)...)
	} else if class, container, ok := authz.WireAllowed(resp); ok {
		span.SetAttributes(allowAttrs(string(class), container)...)
	}
	return resp, err
}

// checkResponseAttrs reads the decision from a CheckResponse: status.code
// OK is an allow, whose dynamic metadata carries the route class and the
// container id; any other code is a deny whose status.message is the reason
// slug.
func checkResponseAttrs(resp *authv3.CheckResponse) []attribute.KeyValue {
	if st := resp.GetStatus(); st.GetCode() != 0 {
		attrs := []attribute.KeyValue{attrDecision.String("deny")}
		if isSlug(st.GetMessage()) {
			attrs = append(attrs, attrReason.String(st.GetMessage()))
		}
		return attrs
	}
	md := resp.GetDynamicMetadata().GetFields()
	return allowAttrs(md["route_class"].GetStringValue(), md["outbound_container_id"].GetStringValue())
}

// allowAttrs are an allow's span attributes.
func allowAttrs(routeClass, containerID string) []attribute.KeyValue {
	attrs := []attribute.KeyValue{attrDecision.String("allow")}
	if isSlug(routeClass) {
		attrs = append(attrs, attrRouteClass.String(routeClass))
	}
	if kv, ok := containerIDAttr(containerID); ok {
		attrs = append(attrs, kv)
	}
	return attrs
}

// checkCarrier and wireCarrier read the trace headers of the original
// request from the Check request an interceptor sees (a *CheckRequest from
// Register, a WireRequest from RegisterWire) by authz's one reader of
// CheckRequest headers (authz.CheckHeader, which WireRequest.Header
// matches). Only the propagators' own headers are ever asked for. A
// checkCarrier is the request's own pointer: no allocation per Check.
type (
	checkCarrier authv3.CheckRequest
	wireCarrier  struct{ authz.WireRequest }
)

var (
	_ propagation.TextMapCarrier = (*checkCarrier)(nil)
	_ propagation.TextMapCarrier = wireCarrier{}
)

func (c *checkCarrier) Get(key string) string {
	return authz.CheckHeader((*authv3.CheckRequest)(c), key)
}

func (w wireCarrier) Get(key string) string { return w.Header(key) }

// Set is never called: the server extracts, it does not inject; Keys is
// not needed by the W3C and B3 propagators.
func (*checkCarrier) Set(string, string) {}
func (*checkCarrier) Keys() []string     { return nil }
func (wireCarrier) Set(string, string)   {}
func (wireCarrier) Keys() []string       { return nil }

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
