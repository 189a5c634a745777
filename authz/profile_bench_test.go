package authz

import (
	"context"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"

	"github.com/extauthz/extauthz/authz/internal/checkwire"
	"github.com/extauthz/extauthz/internal/testutil/benchcpu"
)

// BenchmarkCheckWireProfile is BenchmarkCheckWire for a profile capability:
// an openai capability as the OpenAI SDK sends it (authorization: Bearer)
// to https://api.openai.com/v1/chat/completions, with the shipped
// profiles loaded, answered the way `extauthz serve` answers it (the
// request read from its encoding, the allow encoded); with the headers in
// the headers map, and in header_map as raw values (as the shipped Envoy
// configs send them). grpcbench -profile openai measures the same through
// the gRPC stack against a do-nothing server.
func BenchmarkCheckWireProfile(b *testing.B) {
	pc := newProfileCore(b)
	srv, err := NewGRPCServer(pc.core, GRPCOptions{})
	if err != nil {
		b.Fatal(err)
	}
	tok := pc.seal(b, "openai", "api-key", nil)
	for _, fixture := range []struct {
		name string
		req  *authv3.CheckRequest
	}{
		{"headers", openaiCheck(tok, false)},
		{"header_map_raw", openaiCheck(tok, true)},
	} {
		b.Run("fixture="+fixture.name, func(b *testing.B) {
			benchHandleCheck(b, srv, fixture.req)
		})
	}
}

// benchHandleCheck measures srv answering req as Register does, minus the
// transport: its method handler, with the reader of the profiles in force
// (which benchWire, for kka1, does without), the codec reading the
// request's encoding, the handler deciding and encoding the allow.
func benchHandleCheck(b *testing.B, srv *GRPCServer, req *authv3.CheckRequest) {
	enc, err := proto.Marshal(req)
	if err != nil {
		b.Fatal(err)
	}
	data := mem.BufferSlice{mem.SliceBuffer(enc)}
	codec := checkwire.Codec()
	dec := func(call any) error { return codec.Unmarshal(data, call) }
	ctx := context.Background()
	b.ReportAllocs()
	cpu := benchcpu.Now()
	for b.Loop() {
		out, err := srv.handleCheck(nil, ctx, dec, nil)
		if _, ok := out.(*checkwire.Call); err != nil || !ok {
			b.Fatalf("handleCheck = %v, %v; want an allow", out, err)
		}
	}
	benchcpu.Report(b, cpu)
}

// openaiCheck is an OpenAI SDK's chat completion with the profile
// capability tok, from container ctr-1, its headers in the headers map or,
// if raw, in header_map as raw values.
func openaiCheck(tok string, raw bool) *authv3.CheckRequest {
	headers := map[string]string{
		"authorization": "Bearer " + tok, "content-type": "application/json", "user-agent": "OpenAI/Python 1.99.9",
		"x-request-id": "3f1c2a9e-5b7d-4e8f-9a1b-2c3d4e5f6a7b",
	}
	c := profileCheck{url: "https://api.openai.com/v1/chat/completions", headers: headers}
	if raw {
		c.headers = nil
		for _, k := range []string{"content-type", "user-agent", "x-request-id", "authorization"} {
			c.raw = append(c.raw, &corev3.HeaderValue{Key: k, RawValue: []byte(headers[k])})
		}
	}
	return c.request()
}

// TestCheckWireProfileAllows holds BenchmarkCheckWireProfile's requests to
// what it claims to measure: through the real gRPC service, an allow that
// injects the secret.
func TestCheckWireProfileAllows(t *testing.T) {
	pc := newProfileCore(t)
	srv, err := NewGRPCServer(pc.core, GRPCOptions{})
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer(ServerOptions()...)
	Register(gs, srv)
	client := authv3.NewAuthorizationClient(serveBufconn(t, gs))
	tok := pc.seal(t, "openai", "api-key", nil)
	for _, raw := range []bool{false, true} {
		resp, err := client.Check(context.Background(), openaiCheck(tok, raw))
		if err != nil {
			t.Fatal(err)
		}
		assertProfileResponse(t, resp, profileCheck{set: "authorization: Bearer " + profileSecret, remove: []string{"x-kilo-capability"}})
	}
}
