package authz

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/extauthz/extauthz/capability"
	"github.com/extauthz/extauthz/policy"
)

// TestCheckFixtures: each request of testdata/check gets the outcome its file
// names, and the fixtures cover every decision reason and route class.
func TestCheckFixtures(t *testing.T) {
	caps := newCapabilities(t)
	cases := loadCheckCases(t)
	covered := map[string]bool{}
	for _, tc := range cases {
		covered[string(tc.reason)+string(tc.class)] = true
	}
	for _, want := range []string{string(ReasonMissingCapability), string(ReasonInvalidCapability), string(ReasonExpiredCapability),
		string(ReasonContainerMismatch), string(ReasonInvalidUpstreamURL), string(ReasonUpstreamNotAllowed),
		string(policy.ProviderModel), string(policy.OrganizationModels), string(policy.SessionIngest), string(policy.BackendAPI)} {
		if !covered[want] {
			t.Errorf("no fixture in testdata/check expects %s", want)
		}
	}
	for _, tc := range cases {
		t.Run(tc.fixture, func(t *testing.T) {
			srv := newTestServer(t, serverSetup{identity: tc.identity})
			// Twice: the second Check finds the capability in the cache
			// and must decide the same.
			for range 2 {
				resp, err := srv.Check(context.Background(), loadCheckRequest(t, caps, tc.fixture))
				if err != nil {
					t.Fatalf("Check returned an error for a decision: %v", err)
				}
				if tc.reason == ReasonNone {
					assertAllow(t, srv, resp, tc)
				} else {
					assertDeny(t, resp, tc.reason)
				}
				js, _ := protojson.Marshal(resp)
				if tc.reason != ReasonNone {
					assertNoSecrets(t, "deny response", string(js), caps)
				}
			}
		})
	}
}

func TestCheckNoProviderTokenUsesUserToken(t *testing.T) {
	caps := newCapabilities(t)
	caps["CAP"] = caps["CAP_NO_PROVIDER"]
	for _, fixture := range []string{"allow_provider_model", "allow_organization_models"} {
		t.Run(fixture, func(t *testing.T) {
			srv := newTestServer(t, serverSetup{})
			resp, err := srv.Check(context.Background(), loadCheckRequest(t, caps, fixture))
			if err != nil {
				t.Fatal(err)
			}
			if got := authorizationSet(t, resp); got != "Bearer "+secretUserToken {
				t.Errorf("authorization = %q; want the user token", got)
			}
		})
	}
}

func TestCheckWithoutKeys(t *testing.T) {
	caps := newCapabilities(t)
	srv := newTestServer(t, serverSetup{codec: capability.NewCodec(nil)})
	resp, err := srv.Check(context.Background(), loadCheckRequest(t, caps, "allow_backend_api"))
	if err != nil {
		t.Fatal(err)
	}
	assertDeny(t, resp, ReasonConfigurationError)
}

func TestCheckCancelledContext(t *testing.T) {
	caps := newCapabilities(t)
	srv := newTestServer(t, serverSetup{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := srv.Check(ctx, loadCheckRequest(t, caps, "allow_backend_api")); err == nil {
		t.Fatal("Check with a cancelled context returned no error")
	}
}

func TestCheckHeaderIdentityIsRemoved(t *testing.T) {
	caps := newCapabilities(t)
	srv := newTestServer(t, serverSetup{identity: "header:x-outbound-container-id"})
	resp, _ := srv.Check(context.Background(), loadCheckRequest(t, caps, "allow_header_identity"))
	if got := resp.GetOkResponse().GetHeadersToRemove(); !slices.Contains(got, "x-outbound-container-id") {
		t.Errorf("headers_to_remove = %q; want the identity header too", got)
	}
}

func TestNewServerRejectsAuthorizationAsCapabilityHeader(t *testing.T) {
	core, err := NewAuthorizer(Config{Codec: capability.NewCodec(nil)})
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range []string{"authorization", "Authorization", "bad header", "x:y", "Host", "connection", "Transfer-Encoding", "content-length"} {
		if _, err := NewGRPCServer(core, GRPCOptions{CapabilityHeader: h}); err == nil {
			t.Errorf("NewGRPCServer(CapabilityHeader: %q) = nil error; want an error", h)
		}
	}
	if _, err := NewGRPCServer(core, GRPCOptions{UpstreamScheme: "ftp"}); err == nil {
		t.Error("NewGRPCServer(UpstreamScheme: ftp) = nil error; want an error")
	}
}

func assertAllow(t *testing.T, srv *GRPCServer, resp *authv3.CheckResponse, tc checkCase) {
	t.Helper()
	if c := codes.Code(resp.GetStatus().GetCode()); c != codes.OK {
		t.Fatalf("status = %v %q; want OK", c, resp.GetStatus().GetMessage())
	}
	ok := resp.GetOkResponse()
	if ok == nil {
		t.Fatalf("no OkHttpResponse in %v", resp)
	}
	if got := authorizationSet(t, resp); got != "Bearer "+tc.credential {
		t.Errorf("authorization set to %.20q…; want the %s credential", got, tc.class)
	}
	if slices.Contains(ok.GetHeadersToRemove(), "authorization") {
		t.Error("headers_to_remove lists authorization: Envoy would drop the credential it just set")
	}
	if !slices.Contains(ok.GetHeadersToRemove(), srv.capabilityHeader) {
		t.Errorf("headers_to_remove = %q; want %q", ok.GetHeadersToRemove(), srv.capabilityHeader)
	}
	md := resp.GetDynamicMetadata().AsMap()
	want := map[string]any{
		"route_class": string(tc.class), "user_id": "user-1", "cloud_agent_session_id": "cas-1",
		"kilo_session_id": "sess-1", "outbound_container_id": "ctr-1",
	}
	if len(md) != len(want) {
		t.Errorf("dynamic metadata = %v; want %v", md, want)
	}
	for k, v := range want {
		if md[k] != v {
			t.Errorf("dynamic metadata %s = %v; want %v", k, md[k], v)
		}
	}
}

// authorizationSet returns the authorization value an allow sets, checking it
// is set exactly once and overwrites.
func authorizationSet(t *testing.T, resp *authv3.CheckResponse) string {
	t.Helper()
	var got []string
	for _, h := range resp.GetOkResponse().GetHeaders() {
		if strings.EqualFold(h.GetHeader().GetKey(), "authorization") {
			got = append(got, h.GetHeader().GetValue())
			if h.GetAppendAction() != corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD {
				t.Errorf("authorization append_action = %v; want OVERWRITE_IF_EXISTS_OR_ADD", h.GetAppendAction())
			}
		}
	}
	if len(got) != 1 {
		t.Fatalf("allow sets authorization %d times; want once", len(got))
	}
	return got[0]
}

func assertDeny(t *testing.T, resp *authv3.CheckResponse, want Reason) {
	t.Helper()
	if got := resp.GetStatus().GetMessage(); got != string(want) {
		t.Fatalf("status message = %q; want %q", got, want)
	}
	if c := codes.Code(resp.GetStatus().GetCode()); c != want.GRPCCode() || c == codes.OK {
		t.Errorf("status code = %v; want %v", c, want.GRPCCode())
	}
	d := resp.GetDeniedResponse()
	if d == nil {
		t.Fatalf("no DeniedHttpResponse in %v", resp)
	}
	if int(d.GetStatus().GetCode()) != want.HTTPStatus() {
		t.Errorf("HTTP status = %d; want %d", d.GetStatus().GetCode(), want.HTTPStatus())
	}
	var body map[string]string
	if err := json.Unmarshal([]byte(d.GetBody()), &body); err != nil || len(body) != 1 || body["error"] != string(want) {
		t.Errorf("body = %q; want {\"error\":%q}", d.GetBody(), want)
	}
	headers := map[string]string{}
	for _, h := range d.GetHeaders() {
		headers[h.GetHeader().GetKey()] = h.GetHeader().GetValue()
		if h.GetAppendAction() != corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD {
			t.Errorf("deny header %s append_action = %v; want OVERWRITE_IF_EXISTS_OR_ADD", h.GetHeader().GetKey(), h.GetAppendAction())
		}
	}
	if headers["content-type"] != "application/json" {
		t.Errorf("content-type = %q; want application/json", headers["content-type"])
	}
	if got, wantWA := headers["www-authenticate"], want.WWWAuthenticate(); got != wantWA {
		t.Errorf("www-authenticate = %q; want %q", got, wantWA)
	}
}

// checkRequestFrom is a CheckRequest by container ctr-1 with the given
// http attributes.
func checkRequestFrom(h *authv3.AttributeContext_HttpRequest) *authv3.CheckRequest {
	return &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		ContextExtensions: map[string]string{"outbound_container_id": "ctr-1"},
		Request:           &authv3.AttributeContext_Request{Http: h},
	}}
}

// TestCredentialMustBeAHeaderValue: a credential that cannot travel in
// a header (CR, LF, NUL, other controls) is never handed to a proxy: it
// would inject request headers upstream or make Envoy reject the response.
func TestCredentialMustBeAHeaderValue(t *testing.T) {
	codec := newCodec(t, testClock, testKey)
	for _, bad := range []string{"tok\r\nx-injected: 1", "tok\nx", "tok\x00", "tok\x7f"} {
		s := testSubject()
		s.UserToken = bad
		tok, err := codec.Seal(s, time.Hour)
		if err != nil {
			continue // refused at issue: fine too
		}
		caps := capabilities{"BAD": tok}
		srv := newTestServer(t, serverSetup{})
		resp, err := srv.Check(context.Background(), checkRequestFrom(&authv3.AttributeContext_HttpRequest{
			Method: "GET", Scheme: "https", Host: "api.kilo.example", Path: "/api/profile",
			Headers: map[string]string{"authorization": "Bearer " + tok}}))
		if err != nil {
			t.Fatal(err)
		}
		if resp.GetOkResponse() != nil {
			t.Errorf("token %q: Check allows", bad)
		}
		h := newAPITestHandler(t, httpSetup{codec: codec})
		if w := doHTTP(t, h, caps, fwd(set("Authorization", "Bearer ${BAD}"))); w.Code == http.StatusOK {
			t.Errorf("token %q: forward allows", bad)
		}
		if w := doHTTP(t, h, caps, redeemRequestFor(redeemBody(tok, "ctr-1", "GET", "https://api.kilo.example/api/x"))); w.Code == http.StatusOK {
			t.Errorf("token %q: redeem allows", bad)
		}
	}
}

// TestCheckCacheInvisible: a capability allowed once, and so cached, is
// refused as expired the moment the clock reaches its expiry, and refused
// as invalid straight after its key is rotated out.
func TestCheckCacheInvisible(t *testing.T) {
	now := testNow
	codec := newCodec(t, func() time.Time { return now }, testKey)
	caps := capabilities{"CAP": seal(t, codec, testSubject(), time.Minute)}
	srv := newTestServer(t, serverSetup{codec: codec})
	req := loadCheckRequest(t, caps, "allow_provider_model")
	check := func() *authv3.CheckResponse {
		t.Helper()
		resp, err := srv.Check(context.Background(), req)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	for range 2 {
		if resp := check(); resp.GetOkResponse() == nil {
			t.Fatalf("Check = %v; want an allow", resp)
		}
	}
	if s := codec.CacheStats(); s.Hits == 0 {
		t.Fatalf("cache stats %+v; want a hit", s)
	}
	now = testNow.Add(time.Minute)
	assertDeny(t, check(), ReasonExpiredCapability)

	now = testNow
	if resp := check(); resp.GetOkResponse() == nil {
		t.Fatalf("Check = %v; want an allow", resp)
	}
	ring, err := capability.NewKeyRing(otherKey)
	if err != nil {
		t.Fatal(err)
	}
	codec.SetKeyRing(ring)
	assertDeny(t, check(), ReasonInvalidCapability)
}
