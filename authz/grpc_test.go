package authz

import (
	"context"
	"strings"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/extauthz/extauthz/internal/testutil/testsupport"
	"github.com/extauthz/extauthz/policy"
)

// TestGRPCOverBufconn runs the real gRPC stack: health, then an allowed and a
// denied Check, both successful RPCs.
func TestGRPCOverBufconn(t *testing.T) {
	caps := newCapabilities(t)
	gs := grpc.NewServer(ServerOptions()...)
	Register(gs, newTestServer(t, serverSetup{}))
	hs := health.NewServer()
	healthpb.RegisterHealthServer(gs, hs)
	conn := serveBufconn(t, gs)
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

// TestCheckPseudoHeadersAreNotCommaSplit: when the path or authority comes
// from the :path/:authority headers, the value checked must be the value the
// proxy forwards. Splitting on commas made ":path: Q,Q" be checked as Q, so
// an upstream path the policy classifies as backend_api (user credential)
// got organization_models' provider credential.
func TestCheckPseudoHeadersAreNotCommaSplit(t *testing.T) {
	caps := newCapabilities(t)
	srv := newTestServer(t, serverSetup{})
	claims, err := newCodec(t, testClock, testKey).Open(caps["CAP"])
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ authority, path string }{
		{"api.kilo.example", "/api/organizations/o/models,/api/organizations/o/models"},
		{"api.kilo.example", "/api/organizations/o/models, /api/organizations/o/models"},
		{"api.kilo.example", "/api/x,/api/x"},
		{"api.kilo.example,api.kilo.example", "/api/profile"},
		{"api.kilo.example, api.kilo.example", "/api/profile"},
	} {
		for _, raw := range []bool{false, true} {
			req := checkRequestFrom(&authv3.AttributeContext_HttpRequest{Method: "GET", Scheme: "https"})
			hdr := map[string]string{":authority": tc.authority, ":path": tc.path, "authorization": "Bearer " + caps["CAP"]}
			if raw {
				hm := &corev3.HeaderMap{}
				for k, v := range hdr {
					hm.Headers = append(hm.Headers, &corev3.HeaderValue{Key: k, RawValue: []byte(v)})
				}
				req.Attributes.Request.Http.HeaderMap = hm
			} else {
				req.Attributes.Request.Http.Headers = hdr
			}
			resp, err := srv.Check(context.Background(), req)
			if err != nil {
				t.Fatal(err)
			}
			route, perr := policy.Classify(policy.Request{Scheme: "https", Authority: tc.authority, Path: tc.path}, policy.Targets(claims.Targets), claims.KiloSessionID)
			if perr != nil {
				if resp.GetOkResponse() != nil {
					t.Errorf("%s%s (raw %v): allowed; the policy refuses the forwarded URL (%v)", tc.authority, tc.path, raw, perr)
				}
				continue
			}
			want := secretUserToken
			if route.Credential == policy.CredentialProvider {
				want = secretProviderToken
			}
			if resp.GetOkResponse() == nil {
				t.Errorf("%s%s (raw %v): denied %q; want %s", tc.authority, tc.path, raw, resp.GetStatus().GetMessage(), route.Class)
				continue
			}
			if got := resp.GetDynamicMetadata().GetFields()["route_class"].GetStringValue(); got != string(route.Class) {
				t.Errorf("%s%s (raw %v): route class %s; the forwarded path is %s", tc.authority, tc.path, raw, got, route.Class)
			}
			if got := authorizationSet(t, resp); got != "Bearer "+want {
				t.Errorf("%s%s (raw %v): wrong credential for %s", tc.authority, tc.path, raw, route.Class)
			}
		}
	}
}

// TestCheckHeaderMapValueAndRawValue: a header_map entry carrying both a
// value and a raw_value is two values; when they differ the request is
// ambiguous, not decided on raw_value alone.
func TestCheckHeaderMapValueAndRawValue(t *testing.T) {
	caps := newCapabilities(t)
	srv := newTestServer(t, serverSetup{})
	req := checkRequestFrom(&authv3.AttributeContext_HttpRequest{Method: "GET", Scheme: "https", Host: "api.kilo.example", Path: "/api/profile",
		HeaderMap: &corev3.HeaderMap{Headers: []*corev3.HeaderValue{
			{Key: "authorization", Value: "Bearer " + caps["CAP_OTHER"], RawValue: []byte("Bearer " + caps["CAP"])},
		}}})
	resp, err := srv.Check(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	assertDeny(t, resp, ReasonInvalidCapability)
}

// TestCheckRecoversPanic: a panic while deciding is a deny
// (capability_configuration_error), never a crashed process or a Go error
// that failure_mode_allow could turn into an allow.
func TestCheckRecoversPanic(t *testing.T) {
	caps := newCapabilities(t)
	var log testsupport.LockedBuffer
	srv := newTestServer(t, serverSetup{log: &log})
	srv.identity = IdentitySource{Kind: IdentityPrincipal} // nil pattern: panics
	req := loadCheckRequest(t, caps, "allow_backend_api")
	req.Attributes.Source = &authv3.AttributeContext_Peer{Principal: "spiffe://td/ns/x/sa/ctr-1"}
	var resp *authv3.CheckResponse
	var err error
	func() {
		defer func() {
			if p := recover(); p != nil {
				t.Fatalf("Check panicked: %v", p)
			}
		}()
		resp, err = srv.Check(context.Background(), req)
	}()
	if err != nil {
		t.Fatalf("Check returned an error: %v", err)
	}
	assertDeny(t, resp, ReasonConfigurationError)
	assertNoSecrets(t, "log", log.String(), caps)
	if !strings.Contains(log.String(), "panic") {
		t.Errorf("the panic is not logged:\n%s", log.String())
	}
}
