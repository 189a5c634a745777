package nopauthz

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"testing"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/protobuf/proto"
)

func TestServe(t *testing.T) {
	for _, tc := range []struct {
		name string
		resp *authv3.CheckResponse
	}{
		{"bare", Bare()},
		{"mirror", Mirror("x-kilo-capability", 32)},
		{"allow", Allow("x-api-key", "sk-1", []string{"x-kilo-capability", "authorization"}, map[string]string{"profile": "anthropic"})},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- Serve(ctx, ln, New(tc.resp)) }()
			defer func() {
				cancel()
				if err := <-done; err != nil {
					t.Errorf("Serve: %v", err)
				}
			}()
			conn, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			got, err := authv3.NewAuthorizationClient(conn).Check(ctx, &authv3.CheckRequest{})
			if err != nil {
				t.Fatal(err)
			}
			if !proto.Equal(got, tc.resp) {
				t.Errorf("Check = %v; want %v", got, tc.resp)
			}
			h, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
			if err != nil {
				t.Fatal(err)
			}
			if h.Status != healthpb.HealthCheckResponse_SERVING {
				t.Errorf("health = %v; want SERVING", h.Status)
			}
		})
	}
}

// TestMain lets the test binary stand in for a benchmark's binary when
// StartProcess re-executes it.
func TestMain(m *testing.M) {
	ServeIfChild()
	os.Exit(m.Run())
}

// TestStartProcess: the child process answers the response it was given.
func TestStartProcess(t *testing.T) {
	want := Allow("authorization", "Bearer sk-1", []string{"x-kilo-capability"},
		map[string]string{"route_class": "openai_api", "profile": "openai"})
	p, err := StartProcess(want, filepath.Join(t.TempDir(), "nopauthz.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Stop()
	conn, err := grpc.NewClient("passthrough:///"+p.Addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	got, err := authv3.NewAuthorizationClient(conn).Check(context.Background(), &authv3.CheckRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(got, want) {
		t.Errorf("Check = %v; want %v", got, want)
	}
}

func TestMirrorHeaderSize(t *testing.T) {
	h := Mirror("x-kilo-capability", 40).GetOkResponse().Headers[0].Header
	if h.Key != "authorization" || len(h.Value) != len("Bearer ")+40 {
		t.Errorf("Mirror header = %s: %d bytes; want authorization, %d bytes", h.Key, len(h.Value), len("Bearer ")+40)
	}
}
