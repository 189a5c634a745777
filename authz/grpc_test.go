package authz

import (
	"context"
	"net"
	"testing"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/test/bufconn"
)

// TestGRPCOverBufconn runs the real gRPC stack: health, then an allowed and a
// denied Check, both successful RPCs.
func TestGRPCOverBufconn(t *testing.T) {
	caps := newCapabilities(t)
	lis := bufconn.Listen(1 << 20)
	gs := grpc.NewServer()
	Register(gs, newTestServer(t, serverSetup{}))
	hs := health.NewServer()
	healthpb.RegisterHealthServer(gs, hs)
	go gs.Serve(lis)
	t.Cleanup(gs.Stop)

	conn, err := grpc.NewClient("passthrough:///bufnet",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	ctx := context.Background()

	h, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
	if err != nil || h.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health = %v, %v; want SERVING", h.GetStatus(), err)
	}
	client := authv3.NewAuthorizationClient(conn)
	resp, err := client.Check(ctx, loadCheckRequest(t, caps, "allow_provider_model"))
	if err != nil {
		t.Fatalf("Check(allow): %v", err)
	}
	if resp.GetOkResponse() == nil {
		t.Fatalf("Check(allow) = %v; want an OkHttpResponse", resp)
	}
	resp, err = client.Check(ctx, loadCheckRequest(t, caps, "deny_container_mismatch"))
	if err != nil {
		t.Fatalf("Check(deny) returned an RPC error, which failure_mode_allow could turn into an allow: %v", err)
	}
	if resp.GetDeniedResponse() == nil || resp.GetStatus().GetMessage() != string(ReasonContainerMismatch) {
		t.Fatalf("Check(deny) = %v; want container_mismatch", resp)
	}
}

// TestServiceName: the name the binary reports health for is the name of
// the service Register registers.
func TestServiceName(t *testing.T) {
	if ServiceName != authv3.Authorization_ServiceDesc.ServiceName {
		t.Errorf("ServiceName = %q; want %q", ServiceName, authv3.Authorization_ServiceDesc.ServiceName)
	}
	gs := grpc.NewServer()
	Register(gs, newTestServer(t, serverSetup{}))
	if _, ok := gs.GetServiceInfo()[ServiceName]; !ok {
		t.Errorf("Register did not register %s", ServiceName)
	}
}
