package authz

import (
	"context"
	"net/http/httptest"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/rs/zerolog"
	"google.golang.org/grpc"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"

	"github.com/extauthz/extauthz/authz/internal/checkwire"
	"github.com/extauthz/extauthz/internal/testutil/benchcpu"
)

// BenchmarkCheck is an allowed provider_model Check in-process on the
// decoded message (the test oracle's path, which was the production path
// before the wire codec: kept for comparison with earlier numbers;
// serve's path is BenchmarkCheckWire), logging disabled above info so the
// line is not built.
func BenchmarkCheck(b *testing.B) {
	caps := newCapabilities(b)
	srv := newTestServer(b, serverSetup{})
	req := loadCheckRequest(b, caps, "allow_provider_model")
	ctx := context.Background()
	b.ReportAllocs()
	cpu := benchcpu.Now()
	for b.Loop() {
		resp, err := srv.oracleCheck(ctx, req)
		if err != nil || resp.GetOkResponse() == nil {
			b.Fatalf("Check = %v, %v", resp, err)
		}
	}
	benchcpu.Report(b, cpu)
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
	cpu := benchcpu.Now()
	for b.Loop() {
		if _, err := srv.oracleCheck(ctx, req); err != nil {
			b.Fatal(err)
		}
	}
	benchcpu.Report(b, cpu)
}

// BenchmarkCheckLogAllows is an allowed Check the way serve answers it
// (BenchmarkCheckWire, header_map fixture as the shipped Envoy configs
// send it) with the decision line written to a discarding writer, for
// each --log-allows choice.
func BenchmarkCheckLogAllows(b *testing.B) {
	caps := newCapabilities(b)
	req := loadCheckRequest(b, caps, "allow_header_map_raw")
	for _, mode := range []LogAllows{LogAllowsAll, LogAllowsSampled, LogAllowsNone} {
		b.Run("allows="+mode.String(), func(b *testing.B) {
			core, err := NewAuthorizer(Config{Codec: newCodec(b, testClock, testKey),
				Logger: zerolog.New(discard{}).Level(zerolog.InfoLevel).With().Timestamp().Logger(), LogAllows: mode})
			if err != nil {
				b.Fatal(err)
			}
			srv, err := NewGRPCServer(core, GRPCOptions{})
			if err != nil {
				b.Fatal(err)
			}
			benchWire(b, srv, req)
		})
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
	cpu := benchcpu.Now()
	for b.Loop() {
		if _, err := srv.oracleCheck(ctx, req); err != nil {
			b.Fatal(err)
		}
	}
	benchcpu.Report(b, cpu)
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

// BenchmarkCheckGRPC is an allowed Check through the real gRPC stack over an
// in-memory connection: protobuf encoding, HTTP/2 framing and the handler,
// registered with Register (as `extauthz serve` registers it) and, for
// comparison, the test oracle served as authv3's generated service
// (protobuf-go messages both ways).
func BenchmarkCheckGRPC(b *testing.B) {
	caps := newCapabilities(b)
	for _, c := range []struct {
		name     string
		opts     []grpc.ServerOption
		register func(*grpc.Server, *GRPCServer)
	}{
		{"register=proto", nil, func(g *grpc.Server, s *GRPCServer) { authv3.RegisterAuthorizationServer(g, oracleServer{s}) }},
		{"register=wire", ServerOptions(), Register},
	} {
		b.Run(c.name, func(b *testing.B) {
			gs := grpc.NewServer(c.opts...)
			c.register(gs, newTestServer(b, serverSetup{}))
			client := authv3.NewAuthorizationClient(serveBufconn(b, gs))
			req := loadCheckRequest(b, caps, "allow_provider_model")
			ctx := context.Background()
			b.ReportAllocs()
			cpu := benchcpu.Now()
			for b.Loop() {
				resp, err := client.Check(ctx, req)
				if err != nil || resp.GetOkResponse() == nil {
					b.Fatalf("Check = %v, %v", resp, err)
				}
			}
			benchcpu.Report(b, cpu)
		})
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
	cpu := benchcpu.Now()
	for b.Loop() {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != 200 {
			b.Fatalf("forward = %d %s", w.Code, w.Body)
		}
	}
	benchcpu.Report(b, cpu)
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
	cpu := benchcpu.Now()
	for b.Loop() {
		headers["authorization"] = "Bearer " + toks[i%len(toks)]
		i++
		resp, err := srv.oracleCheck(ctx, req)
		if err != nil || resp.GetOkResponse() == nil {
			b.Fatalf("Check = %v, %v", resp, err)
		}
	}
	benchcpu.Report(b, cpu)
	if s := codec.CacheStats(); s.Hits != 0 {
		b.Fatalf("cache stats %+v; want only misses", s)
	}
}

// BenchmarkCheckWire is BenchmarkCheck the way `extauthz serve` answers it
// (Register): the request read from its encoding, the allow encoded; with
// the headers in the headers map, and in header_map as raw values (as the
// shipped Envoy configs send them, encode_raw_headers).
func BenchmarkCheckWire(b *testing.B) {
	caps := newCapabilities(b)
	srv := newTestServer(b, serverSetup{})
	for _, fixture := range []string{"allow_provider_model", "allow_header_map_raw"} {
		b.Run("fixture="+fixture, func(b *testing.B) {
			benchWire(b, srv, loadCheckRequest(b, caps, fixture))
		})
	}
}

// benchWire measures srv answering req as Register does, minus the
// transport: the codec reads its encoding, the handler decides and
// encodes the allow.
func benchWire(b *testing.B, srv *GRPCServer, req *authv3.CheckRequest) {
	enc, err := proto.Marshal(req)
	if err != nil {
		b.Fatal(err)
	}
	data := mem.BufferSlice{mem.SliceBuffer(enc)}
	codec := checkwire.Codec()
	ctx := context.Background()
	b.ReportAllocs()
	cpu := benchcpu.Now()
	for b.Loop() {
		call := checkwire.NewCall(&srv.reader, nil)
		if err := codec.Unmarshal(data, call); err != nil {
			b.Fatal(err)
		}
		out, err := srv.check(ctx, call, srv.core.currentProfiles())
		if err != nil || out != any(call) {
			b.Fatalf("check = %v, %v", out, err)
		}
	}
	benchcpu.Report(b, cpu)
}
