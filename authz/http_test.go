package authz

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/extauthz/extauthz/capability"
	"github.com/extauthz/extauthz/internal/testutil/testsupport"
	"github.com/extauthz/extauthz/policy"
)

// httpSetup configures a handler under test.
type httpSetup struct {
	codec *capability.Codec // nil: a codec over testKey
	log   *testsupport.LockedBuffer
	opts  HTTPOptions
}

func newHTTPTestHandler(t testing.TB, setup httpSetup) http.Handler {
	t.Helper()
	core := newTestCore(t, setup.codec, setup.log)
	h, err := NewHTTPHandler(core, setup.opts)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// newAPITestHandler returns the capability API guarded by testAPIToken
// (setup.opts is not used).
func newAPITestHandler(t testing.TB, setup httpSetup) http.Handler {
	t.Helper()
	core := newTestCore(t, setup.codec, setup.log)
	h, err := NewAPIHandler(core, APIOptions{Token: testAPIToken})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// httpRequest is one request to the handler. Header values may name
// capabilities as ${NAME}; every value of a name is sent as its own header.
type httpRequest struct {
	method string // "" = GET
	target string
	host   string // "" = the target's default
	header map[string][]string
	body   string
}

func doHTTP(t testing.TB, h http.Handler, caps capabilities, req httpRequest) *httptest.ResponseRecorder {
	t.Helper()
	method := req.method
	if method == "" {
		method = http.MethodGet
	}
	var body io.Reader
	if req.body != "" {
		body = strings.NewReader(req.body)
	}
	r := httptest.NewRequest(method, req.target, body)
	if req.host != "" {
		r.Host = req.host
	}
	for name, values := range req.header {
		for _, v := range values {
			r.Header.Add(name, caps.expand(t, v))
		}
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	if got := w.Header().Get("Cache-Control"); got != "no-store" {
		t.Errorf("%s %s: Cache-Control = %q; want no-store", method, req.target, got)
	}
	return w
}

// httpCase is a decision through one of the authorization endpoints.
type httpCase struct {
	name       string
	req        httpRequest
	opts       HTTPOptions
	reason     Reason
	class      policy.RouteClass
	credential string
}

// fwd builds forward-auth headers: the original request is GET
// https://api.kilo.example/api/profile?x=1 by container ctr-1 with ${CAP} as
// a bearer, then edit changes them.
func fwd(edit func(h map[string][]string)) httpRequest {
	h := map[string][]string{
		"X-Forwarded-Method":      {"GET"},
		"X-Forwarded-Proto":       {"https"},
		"X-Forwarded-Host":        {"api.kilo.example"},
		"X-Forwarded-Uri":         {"/api/profile?x=1"},
		"X-Outbound-Container-Id": {"ctr-1"},
		"Authorization":           {"Bearer ${CAP}"},
	}
	if edit != nil {
		edit(h)
	}
	return httpRequest{target: ForwardPath, host: "extauthz:8181", header: h}
}

func set(name string, values ...string) func(map[string][]string) {
	return func(h map[string][]string) {
		if len(values) == 0 {
			delete(h, name)
			return
		}
		h[name] = values
	}
}

func edits(fs ...func(map[string][]string)) func(map[string][]string) {
	return func(h map[string][]string) {
		for _, f := range fs {
			f(h)
		}
	}
}

var forwardCases = []httpCase{
	{name: "allow backend_api", req: fwd(nil), class: policy.BackendAPI, credential: secretUserToken},
	{name: "allow provider_model via dedicated header", req: fwd(edits(
		set("X-Forwarded-Host", "llm.kilo.example"), set("X-Forwarded-Uri", "/api/openrouter/v1/chat/completions"),
		set("Authorization", "Bearer not-a-capability"), set("X-Kilo-Capability", "${CAP}"))),
		class: policy.ProviderModel, credential: secretProviderToken},
	{name: "allow organization_models", req: fwd(set("X-Forwarded-Uri", "/api/organizations/org-1/models")),
		class: policy.OrganizationModels, credential: secretProviderToken},
	{name: "allow session_ingest", req: fwd(edits(set("X-Forwarded-Host", "ingest.kilo.example"), set("X-Forwarded-Uri", "/api/session/sess-1/export"))),
		class: policy.SessionIngest, credential: secretUserToken},
	{name: "allow nginx X-Original headers", req: fwd(edits(set("X-Forwarded-Method"), set("X-Forwarded-Uri"),
		set("X-Original-Method", "POST"), set("X-Original-URI", "/api/profile"))),
		class: policy.BackendAPI, credential: secretUserToken},
	{name: "allow X-Forwarded-Uri and X-Original-URI agree", req: fwd(set("X-Original-URI", "/api/profile?x=1")),
		class: policy.BackendAPI, credential: secretUserToken},
	{name: "allow method from the request itself", req: func() httpRequest {
		r := fwd(set("X-Forwarded-Method"))
		r.method = http.MethodDelete
		return r
	}(), class: policy.BackendAPI, credential: secretUserToken},
	{name: "allow Host when X-Forwarded-Host is absent", req: func() httpRequest {
		r := fwd(set("X-Forwarded-Host"))
		r.host = "api.kilo.example"
		return r
	}(), class: policy.BackendAPI, credential: secretUserToken},
	{name: "allow comma in the URI", req: fwd(set("X-Forwarded-Uri", "/api/a,b?c=d,e")), class: policy.BackendAPI, credential: secretUserToken},
	{name: "allow upstream scheme overrides X-Forwarded-Proto", req: fwd(set("X-Forwarded-Proto", "http")),
		opts: HTTPOptions{UpstreamScheme: "https"}, class: policy.BackendAPI, credential: secretUserToken},
	{name: "allow custom headers", req: fwd(edits(set("Authorization"), set("X-Outbound-Container-Id"), set("X-Cap", "${CAP}"), set("X-Sandbox", "ctr-1"))),
		opts: HTTPOptions{CapabilityHeader: "X-Cap", IdentityHeader: "X-Sandbox"}, class: policy.BackendAPI, credential: secretUserToken},
	{name: "deny missing_capability", req: fwd(set("Authorization")), reason: ReasonMissingCapability},
	{name: "deny non-capability bearer", req: fwd(set("Authorization", "Bearer abc")), reason: ReasonMissingCapability},
	{name: "deny invalid_capability", req: fwd(set("Authorization", "Bearer kka1.AAAA:BBBB:CCCC")), reason: ReasonInvalidCapability},
	{name: "deny wrong key", req: fwd(set("Authorization", "Bearer ${CAP_WRONG_KEY}")), reason: ReasonInvalidCapability},
	{name: "deny two different capabilities", req: fwd(set("X-Kilo-Capability", "${CAP_OTHER}")), reason: ReasonInvalidCapability},
	{name: "deny capability header twice, different", req: fwd(edits(set("Authorization"), set("X-Kilo-Capability", "${CAP}", "${CAP_OTHER}"))), reason: ReasonInvalidCapability},
	{name: "deny expired_capability", req: fwd(set("Authorization", "Bearer ${CAP_EXPIRED}")), reason: ReasonExpiredCapability},
	{name: "deny other container", req: fwd(set("X-Outbound-Container-Id", "ctr-2")), reason: ReasonContainerMismatch},
	{name: "deny missing identity", req: fwd(set("X-Outbound-Container-Id")), reason: ReasonContainerMismatch},
	{name: "deny ambiguous identity", req: fwd(set("X-Outbound-Container-Id", "ctr-1", "ctr-2")), reason: ReasonContainerMismatch},
	{name: "deny ambiguous comma-joined identity", req: fwd(set("X-Outbound-Container-Id", "ctr-1, ctr-2")), reason: ReasonContainerMismatch},
	{name: "deny missing X-Forwarded-Proto", req: fwd(set("X-Forwarded-Proto")), reason: ReasonInvalidUpstreamURL},
	{name: "deny missing URI", req: fwd(set("X-Forwarded-Uri")), reason: ReasonInvalidUpstreamURL},
	{name: "deny ambiguous URI", req: fwd(set("X-Original-URI", "/api/other")), reason: ReasonInvalidUpstreamURL},
	{name: "deny URI twice, different", req: fwd(set("X-Forwarded-Uri", "/api/profile", "/api/other")), reason: ReasonInvalidUpstreamURL},
	{name: "deny ambiguous host", req: fwd(set("X-Forwarded-Host", "api.kilo.example", "evil.example")), reason: ReasonInvalidUpstreamURL},
	{name: "deny proxy-chained proto", req: fwd(set("X-Forwarded-Proto", "https, http")), reason: ReasonInvalidUpstreamURL},
	{name: "deny ambiguous method", req: fwd(set("X-Original-Method", "POST")), reason: ReasonInvalidUpstreamURL},
	{name: "deny dot segment", req: fwd(set("X-Forwarded-Uri", "/api/../admin")), reason: ReasonInvalidUpstreamURL},
	{name: "deny encoded slash", req: fwd(set("X-Forwarded-Uri", "/api/a%2fb")), reason: ReasonInvalidUpstreamURL},
	{name: "deny plain http to production", req: fwd(set("X-Forwarded-Proto", "http")), reason: ReasonInvalidUpstreamURL},
	{name: "deny upstream_not_allowed", req: fwd(set("X-Forwarded-Host", "evil.example")), reason: ReasonUpstreamNotAllowed},
	{name: "deny provider route on backend", req: fwd(set("X-Forwarded-Uri", "/api/openrouter/v1/chat")), reason: ReasonUpstreamNotAllowed},
}

// env builds an Envoy http_service request: the original request, as Envoy
// forwards it, for https://api.kilo.example<path>.
func env(method, path string, edit func(h map[string][]string)) httpRequest {
	h := map[string][]string{
		"X-Forwarded-Proto":       {"https"},
		"X-Outbound-Container-Id": {"ctr-1"},
		"Authorization":           {"Bearer ${CAP}"},
	}
	if edit != nil {
		edit(h)
	}
	return httpRequest{method: method, target: EnvoyPathPrefix + path, host: "api.kilo.example", header: h}
}

var envoyCases = []httpCase{
	{name: "allow backend_api", req: env("GET", "/api/profile?x=1", nil), class: policy.BackendAPI, credential: secretUserToken},
	{name: "allow POST with the original method", req: env("POST", "/api/organizations/o/models", set("X-Kilo-Capability", "${CAP}")),
		class: policy.OrganizationModels, credential: secretProviderToken},
	{name: "allow root path", req: env("GET", "/", nil), class: policy.BackendAPI, credential: secretUserToken},
	{name: "allow upstream scheme option", req: env("GET", "/api/x", set("X-Forwarded-Proto")), opts: HTTPOptions{UpstreamScheme: "https"},
		class: policy.BackendAPI, credential: secretUserToken},
	{name: "deny dot segment, not redirected", req: env("GET", "/api/../admin", nil), reason: ReasonInvalidUpstreamURL},
	{name: "deny double slash, not redirected", req: env("GET", "//api/profile", nil), reason: ReasonInvalidUpstreamURL},
	{name: "deny encoded dot segment", req: env("GET", "/api/%2e%2e/admin", nil), reason: ReasonInvalidUpstreamURL},
	{name: "deny empty path", req: env("GET", "", nil), reason: ReasonInvalidUpstreamURL},
	{name: "deny path not after a slash", req: env("GET", "x/api", nil), reason: ReasonInvalidUpstreamURL},
	{name: "deny missing X-Forwarded-Proto", req: env("GET", "/api/x", set("X-Forwarded-Proto")), reason: ReasonInvalidUpstreamURL},
	{name: "deny missing capability", req: env("GET", "/api/x", set("Authorization")), reason: ReasonMissingCapability},
	{name: "deny missing capability before a bad path", req: env("GET", "/api/../x", set("Authorization")), reason: ReasonMissingCapability},
	{name: "deny expired", req: env("GET", "/api/x", set("Authorization", "Bearer ${CAP_EXPIRED}")), reason: ReasonExpiredCapability},
	{name: "deny ambiguous identity", req: env("GET", "/api/x", set("X-Outbound-Container-Id", "ctr-1,ctr-2")), reason: ReasonContainerMismatch},
	{name: "deny other origin", req: func() httpRequest { r := env("GET", "/api/x", nil); r.host = "api.kilo.example:8443"; return r }(),
		reason: ReasonUpstreamNotAllowed},
}

func TestForwardEndpoint(t *testing.T) {
	runHTTPCases(t, forwardCases, false)
}

func TestEnvoyEndpoint(t *testing.T) {
	runHTTPCases(t, envoyCases, true)
}

func runHTTPCases(t *testing.T, cases []httpCase, envoy bool) {
	caps := newCapabilities(t)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHTTPTestHandler(t, httpSetup{opts: tc.opts})
			w := doHTTP(t, h, caps, tc.req)
			if tc.reason != ReasonNone {
				assertHTTPDeny(t, w, tc.reason)
				assertNoSecrets(t, "deny response", dumpResponse(w), caps)
				return
			}
			if w.Code != http.StatusOK {
				t.Fatalf("status = %d %s; want 200", w.Code, w.Body)
			}
			if got := w.Header().Values("Authorization"); len(got) != 1 || got[0] != "Bearer "+tc.credential {
				t.Errorf("Authorization = %.30q; want the %s credential once", got, tc.class)
			}
			if got := w.Header().Get(HeaderRouteClass); got != string(tc.class) {
				t.Errorf("%s = %q; want %q", HeaderRouteClass, got, tc.class)
			}
			remove := w.Header().Get("X-Envoy-Auth-Headers-To-Remove")
			switch {
			case envoy && remove != wantRemoved(tc.opts):
				t.Errorf("x-envoy-auth-headers-to-remove = %q; want %q", remove, wantRemoved(tc.opts))
			case !envoy && remove != "":
				t.Errorf("forward allow sets x-envoy-auth-headers-to-remove = %q", remove)
			}
			if w.Header().Get(HeaderReason) != "" || w.Body.Len() != 0 {
				t.Errorf("allow carries a reason or a body: %q %q", w.Header().Get(HeaderReason), w.Body)
			}
		})
	}
}

func wantRemoved(o HTTPOptions) string {
	c, id := DefaultCapabilityHeader, DefaultHTTPIdentityHeader
	if o.CapabilityHeader != "" {
		c = strings.ToLower(o.CapabilityHeader)
	}
	if o.IdentityHeader != "" {
		id = strings.ToLower(o.IdentityHeader)
	}
	return c + "," + id
}

// assertHTTPDeny checks a deny against the reason table: status, JSON body,
// content type, challenge, reason header, and no credential.
func assertHTTPDeny(t *testing.T, w *httptest.ResponseRecorder, want Reason) {
	t.Helper()
	if w.Code != want.HTTPStatus() {
		t.Fatalf("status = %d %s; want %d (%s)", w.Code, w.Body, want.HTTPStatus(), want)
	}
	var body map[string]string
	if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil || len(body) != 1 || body["error"] != string(want) {
		t.Errorf("body = %q; want {\"error\":%q}", w.Body, want)
	}
	if !strings.HasSuffix(w.Body.String(), "}\n") {
		t.Errorf("body %q does not end with a newline", w.Body)
	}
	if ct := w.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q; want application/json", ct)
	}
	if got := w.Header().Get("WWW-Authenticate"); got != want.WWWAuthenticate() {
		t.Errorf("WWW-Authenticate = %q; want %q", got, want.WWWAuthenticate())
	}
	if got := w.Header().Get(HeaderReason); got != string(want) {
		t.Errorf("%s = %q; want %q", HeaderReason, got, want)
	}
	if got := w.Header().Get("Authorization"); got != "" {
		t.Errorf("deny sets Authorization")
	}
}

func dumpResponse(w *httptest.ResponseRecorder) string {
	var b strings.Builder
	_ = w.Header().Write(&b)
	b.WriteString(w.Body.String())
	return b.String()
}

func TestHTTPWithoutKeys(t *testing.T) {
	caps := newCapabilities(t)
	h := newHTTPTestHandler(t, httpSetup{codec: capability.NewCodec(nil)})
	assertHTTPDeny(t, doHTTP(t, h, caps, fwd(nil)), ReasonConfigurationError)
	assertHTTPDeny(t, doHTTP(t, h, caps, env("GET", "/api/x", nil)), ReasonConfigurationError)
}

func TestHTTPUnknownPaths(t *testing.T) {
	h := newHTTPTestHandler(t, httpSetup{})
	for _, target := range []string{"/", "/v1/authz/forward/x", "/v1/authz/forwardx", "/v1/authz", "/V1/authz/forward", "/v1/capabilities:issuex", "/healthz"} {
		t.Run(target, func(t *testing.T) {
			w := doHTTP(t, h, nil, httpRequest{target: target})
			if w.Code != http.StatusNotFound || w.Body.String() != `{"error":"not_found"}`+"\n" {
				t.Errorf("GET %s = %d %s; want 404 not_found", target, w.Code, w.Body)
			}
		})
	}
}

// TestHTTPDecidesOnceAndLogsNoSecret: every request is one logged decision,
// with its protocol, and no log line carries a secret.
func TestHTTPDecidesOnceAndLogsNoSecret(t *testing.T) {
	caps := newCapabilities(t)
	var log testsupport.LockedBuffer
	h := newHTTPTestHandler(t, httpSetup{log: &log})
	doHTTP(t, h, caps, fwd(nil))
	doHTTP(t, h, caps, fwd(set("Authorization", "Bearer ${CAP_EXPIRED}")))
	doHTTP(t, h, caps, env("POST", "/api/x", nil))
	doHTTP(t, newAPITestHandler(t, httpSetup{log: &log}), caps, redeemRequestFor(redeemBody(caps["CAP"], "ctr-1", "GET", "https://api.kilo.example/api/x")))
	want := map[string]int{ProtocolForward: 2, ProtocolEnvoy: 1, ProtocolRedeem: 1}
	got := map[string]int{}
	for line := range strings.Lines(log.String()) {
		var e map[string]any
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("log line is not JSON: %v", err)
		}
		if e["message"] == "decision" {
			got[e["protocol"].(string)]++
		}
	}
	for p, n := range want {
		if got[p] != n {
			t.Errorf("%d decision lines for %s; want %d (all: %v)", got[p], p, n, got)
		}
	}
	assertNoSecrets(t, "log", log.String(), caps)
}

func TestNewHTTPHandlerRejects(t *testing.T) {
	core, err := NewAuthorizer(Config{Codec: newCodec(t, testClock, testKey), Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		opts HTTPOptions
	}{
		{"authorization as capability header", HTTPOptions{CapabilityHeader: "Authorization"}},
		{"identity header is authorization", HTTPOptions{IdentityHeader: "authorization"}},
		{"identity header is the capability header", HTTPOptions{IdentityHeader: "X-Kilo-Capability"}},
		{"identity header is a forwarded attribute", HTTPOptions{IdentityHeader: "X-Forwarded-Host"}},
		{"identity header is not a token", HTTPOptions{IdentityHeader: "x id"}},
		{"bad upstream scheme", HTTPOptions{UpstreamScheme: "ftp"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := NewHTTPHandler(core, tc.opts); err == nil {
				t.Fatalf("NewHTTPHandler(%s) = nil error; want an error", tc.name)
			}
		})
	}
	if _, err := NewHTTPHandler(nil, HTTPOptions{}); err == nil {
		t.Error("NewHTTPHandler(nil core) = nil error; want an error")
	}
}

func TestNewAPIHandlerRejects(t *testing.T) {
	core := newTestCore(t, nil, nil)
	for _, tc := range []struct{ name, token string }{
		{"no token", ""},
		{"short token", "short-S3CRET"},
		{"token with a space", "0123456789 S3CRET-abcdef"},
		{"token with a newline", "0123456789S3CRET-abcdef\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewAPIHandler(core, APIOptions{Token: tc.token})
			if err == nil {
				t.Fatalf("NewAPIHandler(%s) = nil error; want an error", tc.name)
			}
			if strings.Contains(err.Error(), "S3CRET") {
				t.Errorf("error reveals the API token: %v", err)
			}
		})
	}
	if _, err := NewAPIHandler(nil, APIOptions{Token: testAPIToken}); err == nil {
		t.Error("NewAPIHandler(nil core) = nil error; want an error")
	}
}

// TestHTTPRecoversPanic: a panic in an HTTP decision answers a clean
// capability_configuration_error deny, with no header set before the panic.
func TestHTTPRecoversPanic(t *testing.T) {
	caps := newCapabilities(t)
	h := &HTTPHandler{capHeader: DefaultCapabilityHeader, identityHeader: DefaultHTTPIdentityHeader} // no core: Decide panics
	w := doHTTP(t, h, caps, fwd(nil))
	assertHTTPDeny(t, w, ReasonConfigurationError)
	assertNoSecrets(t, "response", dumpResponse(w), caps)
}
