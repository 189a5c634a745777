package authz

// Regression tests from an adversarial audit of the authz package. Each one
// failed before the fix it names.

import (
	"bufio"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/rs/zerolog"
	"google.golang.org/grpc/codes"

	"github.com/extauthz/extauthz/capability"
	"github.com/extauthz/extauthz/internal/testsupport"
	"github.com/extauthz/extauthz/policy"
)

// auditCheckRequest is a CheckRequest by container ctr-1 with the given
// http attributes.
func auditCheckRequest(h *authv3.AttributeContext_HttpRequest) *authv3.CheckRequest {
	return &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		ContextExtensions: map[string]string{"outbound_container_id": "ctr-1"},
		Request:           &authv3.AttributeContext_Request{Http: h},
	}}
}

// TestAuditPseudoHeadersAreNotCommaSplit: when the path or authority comes
// from the :path/:authority headers, the value checked must be the value the
// proxy forwards. Splitting on commas made ":path: Q,Q" be checked as Q, so
// an upstream path the policy classifies as backend_api (user credential)
// got organization_models' provider credential.
func TestAuditPseudoHeadersAreNotCommaSplit(t *testing.T) {
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
			req := auditCheckRequest(&authv3.AttributeContext_HttpRequest{Method: "GET", Scheme: "https"})
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
			route, perr := policy.Classify(policy.Request{Scheme: "https", Authority: tc.authority, Path: tc.path}, claims.Targets, claims.KiloSessionID)
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

// TestAuditHeaderMapValueAndRawValue: a header_map entry carrying both a
// value and a raw_value is two values; when they differ the request is
// ambiguous, not decided on raw_value alone.
func TestAuditHeaderMapValueAndRawValue(t *testing.T) {
	caps := newCapabilities(t)
	srv := newTestServer(t, serverSetup{})
	req := auditCheckRequest(&authv3.AttributeContext_HttpRequest{Method: "GET", Scheme: "https", Host: "api.kilo.example", Path: "/api/profile",
		HeaderMap: &corev3.HeaderMap{Headers: []*corev3.HeaderValue{
			{Key: "authorization", Value: "Bearer " + caps["CAP_OTHER"], RawValue: []byte("Bearer " + caps["CAP"])},
		}}})
	resp, err := srv.Check(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	assertDeny(t, resp, ReasonInvalidCapability)
}

// TestAuditNewServerValidatesIdentity: an IdentitySource built as a struct
// literal gets the checks ParseIdentitySource applies. Before, a principal
// source without a pattern panicked on every Check (grpc-go does not
// recover: the process died), and a header source could name authorization,
// which then landed in headers_to_remove.
func TestAuditNewServerValidatesIdentity(t *testing.T) {
	core := newTestCore(t, nil, nil)
	for _, id := range []IdentitySource{
		{Kind: IdentityPrincipal},
		{Kind: IdentityPrincipal, Pattern: regexp.MustCompile(`^spiffe://.*$`)},
		{Kind: IdentityHeader, Key: "authorization"},
		{Kind: IdentityHeader, Key: "Authorization"},
		{Kind: IdentityHeader, Key: ""},
		{Kind: IdentityHeader, Key: ":authority"},
		{Kind: IdentityHeader, Key: "x-kilo-capability"},
		{Kind: IdentityContextExtension, Key: ""},
		{Kind: IdentityKind(42), Key: "x"},
	} {
		if _, err := NewGRPCServer(core, GRPCOptions{Identity: id}); err == nil {
			t.Errorf("NewGRPCServer(%+v) = nil error; want an error", id)
		}
	}

	// A mixed-case header name is looked up (and removed) lower-case, as
	// Envoy sends it.
	caps := newCapabilities(t)
	srv, err := NewGRPCServer(core, GRPCOptions{Identity: IdentitySource{Kind: IdentityHeader, Key: "X-Sandbox"}})
	if err != nil {
		t.Fatal(err)
	}
	req := auditCheckRequest(&authv3.AttributeContext_HttpRequest{Method: "GET", Scheme: "https", Host: "api.kilo.example", Path: "/api/profile",
		Headers: map[string]string{"authorization": "Bearer " + caps["CAP"], "x-sandbox": "ctr-1"}})
	resp, err := srv.Check(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetOkResponse() == nil {
		t.Fatalf("denied %q; want allow", resp.GetStatus().GetMessage())
	}
	if got := resp.GetOkResponse().GetHeadersToRemove(); !slices.Contains(got, "x-sandbox") {
		t.Errorf("headers_to_remove = %q; want x-sandbox", got)
	}
}

// TestAuditCheckRecoversPanic: a panic while deciding is a deny
// (capability_configuration_error), never a crashed process or a Go error
// that failure_mode_allow could turn into an allow.
func TestAuditCheckRecoversPanic(t *testing.T) {
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

// TestAuditDenyNeverEncodesAllow: the deny encoders never produce an OK
// status or a 2xx, and never a slug outside the reason table, whatever
// Reason they are given (ReasonNone was encoded as gRPC OK / HTTP 200: an
// allow without the credential swap or the capability removal).
func TestAuditDenyNeverEncodesAllow(t *testing.T) {
	for _, r := range []Reason{ReasonNone, Reason("bogus"), Reason(`x","y`)} {
		resp := deniedResponse(r)
		if codes.Code(resp.GetStatus().GetCode()) == codes.OK {
			t.Errorf("deniedResponse(%q): status OK", r)
		}
		if _, known := reasons[Reason(resp.GetStatus().GetMessage())]; !known {
			t.Errorf("deniedResponse(%q): message %q is not a reason slug", r, resp.GetStatus().GetMessage())
		}
		if c := resp.GetDeniedResponse().GetStatus().GetCode(); c < 400 {
			t.Errorf("deniedResponse(%q): HTTP %d", r, c)
		}
		w := httptest.NewRecorder()
		writeDeny(w, r)
		if w.Code < 400 {
			t.Errorf("writeDeny(%q): HTTP %d", r, w.Code)
		}
		var body map[string]string
		if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil {
			t.Errorf("writeDeny(%q): body %q is not JSON", r, w.Body)
		} else if _, known := reasons[Reason(body["error"])]; !known {
			t.Errorf("writeDeny(%q): body %q is not a reason slug", r, w.Body)
		}
	}
}

// TestAuditCredentialMustBeAHeaderValue: a credential that cannot travel in
// a header (CR, LF, NUL, other controls) is never handed to a proxy: it
// would inject request headers upstream or make Envoy reject the response.
func TestAuditCredentialMustBeAHeaderValue(t *testing.T) {
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
		resp, err := srv.Check(context.Background(), auditCheckRequest(&authv3.AttributeContext_HttpRequest{
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

// TestAuditLogsCarryNoCapabilityFromTheURL: a capability placed in the path,
// the authority or the method is not logged, and attacker-sized values are
// bounded in the decision line.
func TestAuditLogsCarryNoCapabilityFromTheURL(t *testing.T) {
	caps := newCapabilities(t)
	var log testsupport.LockedBuffer
	srv := newTestServer(t, serverSetup{log: &log})
	cp := caps["CAP"]
	long := strings.Repeat("a", 20000)
	for _, h := range []*authv3.AttributeContext_HttpRequest{
		{Method: "GET", Scheme: "https", Host: "api.kilo.example", Path: "/api/x/" + cp},
		{Method: "GET", Scheme: "https", Host: "api.kilo.example", Path: "/" + strings.Repeat("x", 200) + cp},
		{Method: "GET", Scheme: "https", Host: cp, Path: "/api/x"},
		{Method: cp, Scheme: "https", Host: "api.kilo.example", Path: "/api/x"},
		{Method: long, Scheme: "https", Host: long + ".example", Path: "/api/x"},
	} {
		h.Headers = map[string]string{"authorization": "Bearer " + cp}
		if _, err := srv.Check(context.Background(), auditCheckRequest(h)); err != nil {
			t.Fatal(err)
		}
	}
	hh := newHTTPTestHandler(t, httpSetup{log: &log})
	doHTTP(t, hh, caps, fwd(set("X-Forwarded-Method", "${CAP}")))
	doHTTP(t, hh, caps, fwd(set("X-Forwarded-Uri", "/api/${CAP}")))
	doHTTP(t, hh, caps, fwd(set("X-Forwarded-Host", "${CAP}")))
	assertNoSecrets(t, "log", log.String(), caps)
	for line := range strings.Lines(log.String()) {
		if len(line) > 2048 {
			t.Errorf("log line of %d bytes: attacker-sized values are not bounded", len(line))
		}
	}
}

// TestAuditAPIBodyReadDeadline: a client that sends the headers of an API
// call and then trickles (or never sends) the body is cut off after
// apiBodyTimeout instead of holding a goroutine and a connection forever.
func TestAuditAPIBodyReadDeadline(t *testing.T) {
	old := apiBodyTimeout
	apiBodyTimeout = 200 * time.Millisecond
	t.Cleanup(func() { apiBodyTimeout = old })
	srv := httptest.NewServer(newAPITestHandler(t, httpSetup{}))
	defer srv.Close()
	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	_, err = conn.Write([]byte("POST " + RedeemPath + " HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + testAPIToken +
		"\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"capa"))
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("no response to a stalled body (after %v): %v", time.Since(start), err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestTimeout {
		t.Errorf("status = %d; want 408", resp.StatusCode)
	}
}

// TestAuditAPIContentLengthOverLimit: a declared Content-Length above the
// limit is refused before reading, whatever the body turns out to be.
func TestAuditAPIContentLengthOverLimit(t *testing.T) {
	h := newAPITestHandler(t, httpSetup{})
	r := httptest.NewRequest(http.MethodPost, IssuePath, strings.NewReader(issueBody(nil)))
	r.Header.Set("Authorization", "Bearer "+testAPIToken)
	r.ContentLength = MaxAPIBodyBytes + 1
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	assertAPIError(t, w, http.StatusRequestEntityTooLarge, apiErrRequestTooLarge)
}

// TestAuditIssueChecksTheServerPolicy: issue refuses targets the server's
// policy refuses even when the codec was built without a target validator,
// so it never mints a capability that Check would then refuse.
func TestAuditIssueChecksTheServerPolicy(t *testing.T) {
	ring, err := capability.NewKeyRing(testKey)
	if err != nil {
		t.Fatal(err)
	}
	codec := capability.NewCodec(ring, capability.WithClock(testClock), capability.WithTargetValidator(nil))
	core, err := NewAuthorizer(Config{Codec: codec, Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	h, err := NewAPIHandler(core, APIOptions{Token: testAPIToken})
	if err != nil {
		t.Fatal(err)
	}
	body := issueBody(func(m map[string]any) {
		m["targets"].(map[string]any)["backendBaseUrl"] = "http://api.kilo.example"
	})
	assertAPIError(t, doHTTP(t, h, nil, issueReq(body)), http.StatusBadRequest, string(ReasonInvalidTargets))
}

// TestAuditHTTPRecoversPanic: a panic in an HTTP decision answers a clean
// capability_configuration_error deny, with no header set before the panic.
func TestAuditHTTPRecoversPanic(t *testing.T) {
	caps := newCapabilities(t)
	h := &HTTPHandler{capHeader: DefaultCapabilityHeader, identityHeader: DefaultHTTPIdentityHeader} // no core: Decide panics
	w := doHTTP(t, h, caps, fwd(nil))
	assertHTTPDeny(t, w, ReasonConfigurationError)
	assertNoSecrets(t, "response", dumpResponse(w), caps)
}
