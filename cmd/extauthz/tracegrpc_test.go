package main

import (
	"context"
	"net"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/extauthz/extauthz/authz"
)

// TestTraceParentReadAsAuthzReads: the interceptor reads the trace context
// of a Check as authz reads every CheckRequest header, on both ways of
// serving Check (Register: a *CheckRequest; RegisterWire: a WireRequest).
// A header_map entry whose value and raw value differ stands for both,
// raw value first, so its raw value is the parent either way.
func TestTraceParentReadAsAuthzReads(t *testing.T) {
	f := newTraceFixture(t)
	const otherParent = "00-" + b3TraceID + "-" + b3SpanID + "-01"
	req := grpcCheck(f.cap, nil)
	req.Attributes.Request.Http.HeaderMap = &corev3.HeaderMap{Headers: []*corev3.HeaderValue{
		{Key: "Traceparent", Value: otherParent, RawValue: []byte(traceparent)},
	}}
	if got := authz.CheckHeader(req, "traceparent"); got != traceparent {
		t.Fatalf("authz.CheckHeader = %q; want the raw value %q", got, traceparent)
	}

	t.Run("Register", func(t *testing.T) {
		f.exp.Reset()
		f.check(t, context.Background(), req)
		wantParent(t, f.only(t), w3cTraceID, w3cSpanID)
	})

	t.Run("RegisterWire", func(t *testing.T) {
		f.exp.Reset()
		srv, err := authz.NewGRPCServer(f.app.core, authz.GRPCOptions{ExtraHeaders: authz.TraceHeaders()})
		if err != nil {
			t.Fatal(err)
		}
		// As serve registers it: the wire codec, the tracer's interceptor.
		gs := grpc.NewServer(authz.WireServerOption(), grpc.ChainUnaryInterceptor(f.tr.unary))
		authz.RegisterWire(gs, srv)
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		go gs.Serve(ln)
		t.Cleanup(gs.Stop)
		conn, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		resp, err := authv3.NewAuthorizationClient(conn).Check(context.Background(), req)
		if err != nil || resp.GetOkResponse() == nil {
			t.Fatalf("Check = %v, %v; want an allow", resp.GetStatus(), err)
		}
		wantParent(t, f.only(t), w3cTraceID, w3cSpanID)
	})
}
