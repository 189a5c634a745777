package authz

import (
	"context"
	"net"
	"net/http/httptest"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/rs/zerolog"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/test/bufconn"
)

// BenchmarkCheck is the hot path: an allowed provider_model Check, in-process,
// logging disabled above info so the line is built but discarded.
func BenchmarkCheck(b *testing.B) {
	caps := newCapabilities(b)
	srv := newTestServer(b, serverSetup{})
	req := loadCheckRequest(b, caps, "allow_provider_model")
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		resp, err := srv.Check(ctx, req)
		if err != nil || resp.GetOkResponse() == nil {
			b.Fatalf("Check = %v, %v", resp, err)
		}
	}
}

// BenchmarkCheckLogged is BenchmarkCheck with the info line written (to a
// discarding writer), as in production.
func BenchmarkCheckLogged(b *testing.B) {
	caps := newCapabilities(b)
	srv := newTestServer(b, serverSetup{})
	srv.core.log = zerolog.New(discard{}).Level(zerolog.InfoLevel)
	req := loadCheckRequest(b, caps, "allow_provider_model")
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := srv.Check(ctx, req); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCheckDeny measures a deny after the capability opened (wrong
// container), the most expensive deny.
func BenchmarkCheckDeny(b *testing.B) {
	caps := newCapabilities(b)
	srv := newTestServer(b, serverSetup{})
	req := loadCheckRequest(b, caps, "deny_container_mismatch")
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := srv.Check(ctx, req); err != nil {
			b.Fatal(err)
		}
	}
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

// BenchmarkCheckGRPC is an allowed Check through the real gRPC stack over an
// in-memory connection: protobuf encoding, HTTP/2 framing and the handler.
func BenchmarkCheckGRPC(b *testing.B) {
	caps := newCapabilities(b)
	lis := bufconn.Listen(1 << 20)
	gs := grpc.NewServer()
	Register(gs, newTestServer(b, serverSetup{}))
	go gs.Serve(lis)
	defer gs.Stop()
	conn, err := grpc.NewClient("passthrough:///bufnet",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	client := authv3.NewAuthorizationClient(conn)
	req := loadCheckRequest(b, caps, "allow_provider_model")
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		resp, err := client.Check(ctx, req)
		if err != nil || resp.GetOkResponse() == nil {
			b.Fatalf("Check = %v, %v", resp, err)
		}
	}
}

// BenchmarkForward is an allowed HTTP forward-auth request, in-process.
func BenchmarkForward(b *testing.B) {
	caps := newCapabilities(b)
	h, err := NewHTTPHandler(newTestCore(b, nil, nil), HTTPOptions{})
	if err != nil {
		b.Fatal(err)
	}
	req := httptest.NewRequest("GET", ForwardPath, nil)
	req.Header.Set("Authorization", "Bearer "+caps["CAP"])
	req.Header.Set("X-Forwarded-Method", "POST")
	req.Header.Set("X-Forwarded-Proto", "https")
	req.Header.Set("X-Forwarded-Host", "llm.kilo.example")
	req.Header.Set("X-Forwarded-Uri", "/api/openrouter/v1/chat/completions")
	req.Header.Set(DefaultHTTPIdentityHeader, "ctr-1")
	b.ReportAllocs()
	for b.Loop() {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != 200 {
			b.Fatalf("forward = %d %s", w.Code, w.Body)
		}
	}
}

// BenchmarkCheckNewCapability is BenchmarkCheck with a capability the
// server has not seen before on every call: more distinct capabilities than
// the cache holds, in turn, so every Check misses, decrypts and evicts.
func BenchmarkCheckNewCapability(b *testing.B) {
	codec := newCodec(b, testClock, testKey)
	toks := make([]string, 4*testCacheSize)
	for i := range toks {
		toks[i] = seal(b, codec, testSubject(), time.Hour)
	}
	srv := newTestServer(b, serverSetup{codec: codec})
	req := loadCheckRequest(b, capabilities{"CAP": toks[0]}, "allow_provider_model")
	headers := req.GetAttributes().GetRequest().GetHttp().GetHeaders()
	ctx := context.Background()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		headers["authorization"] = "Bearer " + toks[i%len(toks)]
		i++
		resp, err := srv.Check(ctx, req)
		if err != nil || resp.GetOkResponse() == nil {
			b.Fatalf("Check = %v, %v", resp, err)
		}
	}
	if s := codec.CacheStats(); s.Hits != 0 {
		b.Fatalf("cache stats %+v; want only misses", s)
	}
}
