package authz

import (
	"bufio"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/rs/zerolog"
	"google.golang.org/grpc/codes"

	"github.com/extauthz/extauthz/capability"
	"github.com/extauthz/extauthz/internal/testutil/testsupport"
	"github.com/extauthz/extauthz/policy"
)

const testAPIToken = "admin-token-0123456789abcdef"

func apiHeader(token string) map[string][]string {
	return map[string][]string{"Authorization": {"Bearer " + token}, "Content-Type": {"application/json"}}
}

func redeemBody(capability, container, method, url string) string {
	b, _ := json.Marshal(map[string]string{"capability": capability, "outboundContainerId": container, "requestMethod": method, "requestUrl": url})
	return string(b)
}

func redeemRequestFor(body string) httpRequest {
	return httpRequest{method: http.MethodPost, target: RedeemPath, header: apiHeader(testAPIToken), body: body}
}

// parityCase is one question asked both ways: as a Check and as a redeem.
type parityCase struct {
	name      string
	cap       string // capability name, or a literal when it starts with "kka1." or is ""
	container string
	method    string
	scheme    string
	host      string
	path      string
	// reason, class, credential: the expected answer of both.
	reason     Reason
	class      policy.RouteClass
	credential string
}

var parityCases = []parityCase{
	{"backend_api", "CAP", "ctr-1", "GET", "https", "api.kilo.example", "/api/profile?x=1", ReasonNone, policy.BackendAPI, secretUserToken},
	{"provider_model", "CAP", "ctr-1", "POST", "https", "llm.kilo.example", "/api/openrouter/v1/chat/completions", ReasonNone, policy.ProviderModel, secretProviderToken},
	{"provider_model without provider token", "CAP_NO_PROVIDER", "ctr-1", "POST", "https", "llm.kilo.example", "/api/gateway/v1/x", ReasonNone, policy.ProviderModel, secretUserToken},
	{"organization_models", "CAP", "ctr-1", "GET", "https", "api.kilo.example", "/api/organizations/o-1/models", ReasonNone, policy.OrganizationModels, secretProviderToken},
	{"session_ingest", "CAP", "ctr-1", "PUT", "https", "ingest.kilo.example", "/api/session/sess-1/ingest", ReasonNone, policy.SessionIngest, secretUserToken},
	{"default port", "CAP", "ctr-1", "GET", "https", "api.kilo.example:443", "/api/x", ReasonNone, policy.BackendAPI, secretUserToken},
	{"missing capability", "", "ctr-1", "GET", "https", "api.kilo.example", "/api/x", ReasonMissingCapability, "", ""},
	{"missing capability beats a bad URL", "", "ctr-1", "GET", "https", "user@api.kilo.example", "/api/x", ReasonMissingCapability, "", ""},
	{"invalid capability", "kka1.AAAA:BBBB:CCCC", "ctr-1", "GET", "https", "api.kilo.example", "/api/x", ReasonInvalidCapability, "", ""},
	{"wrong key", "CAP_WRONG_KEY", "ctr-1", "GET", "https", "api.kilo.example", "/api/x", ReasonInvalidCapability, "", ""},
	{"expired", "CAP_EXPIRED", "ctr-1", "GET", "https", "api.kilo.example", "/api/x", ReasonExpiredCapability, "", ""},
	{"container mismatch", "CAP", "ctr-2", "GET", "https", "api.kilo.example", "/api/x", ReasonContainerMismatch, "", ""},
	{"unknown caller", "CAP", "", "GET", "https", "api.kilo.example", "/api/x", ReasonContainerMismatch, "", ""},
	{"dot segment", "CAP", "ctr-1", "GET", "https", "api.kilo.example", "/api/%2e%2e/admin", ReasonInvalidUpstreamURL, "", ""},
	{"userinfo", "CAP", "ctr-1", "GET", "https", "user@api.kilo.example", "/api/x", ReasonInvalidUpstreamURL, "", ""},
	{"plain http", "CAP", "ctr-1", "GET", "http", "api.kilo.example", "/api/x", ReasonInvalidUpstreamURL, "", ""},
	{"non-canonical IPv4", "CAP", "ctr-1", "GET", "https", "0x7f.1", "/api/x", ReasonInvalidUpstreamURL, "", ""},
	{"other host", "CAP", "ctr-1", "GET", "https", "evil.example", "/api/x", ReasonUpstreamNotAllowed, "", ""},
	{"provider route on backend", "CAP", "ctr-1", "GET", "https", "api.kilo.example", "/API/OpenRouter/v1", ReasonUpstreamNotAllowed, "", ""},
	{"other session ingest", "CAP", "ctr-1", "GET", "https", "ingest.kilo.example", "/api/session/sess-2/export", ReasonUpstreamNotAllowed, "", ""},
}

// TestRedeemMatchesCheck: redeem answers exactly what Check answers for the
// same capability, caller and URL — reason, HTTP status, route class and
// credential — from one table.
func TestRedeemMatchesCheck(t *testing.T) {
	caps := newCapabilities(t)
	srv := newTestServer(t, serverSetup{})
	h := newAPITestHandler(t, httpSetup{})
	for _, tc := range parityCases {
		t.Run(tc.name, func(t *testing.T) {
			token := tc.cap
			if token != "" && !strings.HasPrefix(token, capability.Prefix) {
				token = caps[tc.cap]
			}
			req := &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
				ContextExtensions: map[string]string{"outbound_container_id": tc.container},
				Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
					Method: tc.method, Scheme: tc.scheme, Host: tc.host, Path: tc.path,
					Headers: map[string]string{DefaultCapabilityHeader: token},
				}},
			}}
			resp, err := srv.Check(context.Background(), req)
			if err != nil {
				t.Fatal(err)
			}
			checkReason, checkStatus, checkClass, checkCred := Reason(resp.GetStatus().GetMessage()), http.StatusOK, "", ""
			if codes.Code(resp.GetStatus().GetCode()) == codes.OK {
				checkReason = ReasonNone
				checkClass = resp.GetDynamicMetadata().GetFields()["route_class"].GetStringValue()
				checkCred = authorizationSet(t, resp)
			} else {
				checkStatus = int(resp.GetDeniedResponse().GetStatus().GetCode())
			}

			w := doHTTP(t, h, caps, redeemRequestFor(redeemBody(token, tc.container, tc.method, tc.scheme+"://"+tc.host+tc.path)))
			var got struct{ Error, Authorization, RouteClass string }
			if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil {
				t.Fatalf("redeem body %q: %v", w.Body, err)
			}

			if checkReason != tc.reason || checkClass != string(tc.class) || checkCred != bearerOf(tc.credential) {
				t.Errorf("Check = %q %q %.20q; want %q %q (table out of date?)", checkReason, checkClass, checkCred, tc.reason, tc.class)
			}
			if Reason(got.Error) != checkReason || w.Code != checkStatus || got.RouteClass != checkClass || got.Authorization != checkCred {
				t.Errorf("redeem = %d %q %q %.20q; Check = %d %q %q %.20q",
					w.Code, got.Error, got.RouteClass, got.Authorization, checkStatus, checkReason, checkClass, checkCred)
			}
			if tc.reason != ReasonNone {
				assertNoSecrets(t, "redeem deny", dumpResponse(w), caps)
				if c := w.Header().Get("WWW-Authenticate"); c != tc.reason.WWWAuthenticate() {
					t.Errorf("WWW-Authenticate = %q; want %q", c, tc.reason.WWWAuthenticate())
				}
			}
		})
	}
}

func bearerOf(cred string) string {
	if cred == "" {
		return ""
	}
	return "Bearer " + cred
}

func issueBody(edit func(m map[string]any)) string {
	m := map[string]any{
		"userId": "user-1", "cloudAgentSessionId": "cas-1", "kiloSessionId": "sess-1", "outboundContainerId": "ctr-1",
		"userToken": secretUserToken, "providerToken": secretProviderToken,
		"targets": map[string]any{
			"backendBaseUrl": "https://api.kilo.example", "providerBaseUrl": "https://llm.kilo.example",
			"sessionIngestBaseUrl": "https://ingest.kilo.example",
		},
	}
	if edit != nil {
		edit(m)
	}
	b, _ := json.Marshal(m)
	return string(b)
}

// TestIssue: an issued capability opens to the subject sent, with the
// lifetime asked for, and redeems.
func TestIssue(t *testing.T) {
	codec := newCodec(t, testClock, testKey)
	h := newAPITestHandler(t, httpSetup{codec: codec})
	for _, tc := range []struct {
		name string
		body string
		ttl  time.Duration
	}{
		{"default lifetime", issueBody(nil), capability.MaxLifetime},
		{"ttlSeconds", issueBody(func(m map[string]any) { m["ttlSeconds"] = 600 }), 10 * time.Minute},
		{"no provider token", issueBody(func(m map[string]any) { delete(m, "providerToken") }), capability.MaxLifetime},
		{"escaped names", strings.NewReplacer(`"userId"`, `"\u0075serId"`, `"ttlSeconds"`, `"\u0074tlSeconds"`, `"backendBaseUrl"`, `"backend\u0042aseUrl"`).
			Replace(issueBody(func(m map[string]any) { m["ttlSeconds"] = 60 })), time.Minute},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := doHTTP(t, h, nil, httpRequest{method: "POST", target: IssuePath, header: apiHeader(testAPIToken), body: tc.body})
			var got map[string]string
			if w.Code != http.StatusOK || json.Unmarshal(w.Body.Bytes(), &got) != nil || len(got) != 1 {
				t.Fatalf("issue = %d %s; want 200 {\"capability\":…}", w.Code, w.Body)
			}
			if !strings.HasSuffix(w.Body.String(), "}\n") {
				t.Errorf("issue answer %q does not end with a newline", w.Body)
			}
			claims, err := codec.Open(got["capability"])
			if err != nil {
				t.Fatalf("issued capability does not open: %v", err)
			}
			want := testSubject()
			if !strings.Contains(tc.body, "providerToken") {
				want.ProviderToken = ""
			}
			if claims.Subject != want {
				t.Errorf("subject = %v; want %v", claims.Subject, want)
			}
			if life := time.Duration(claims.ExpiresAt-claims.IssuedAt) * time.Millisecond; life != tc.ttl {
				t.Errorf("lifetime = %v; want %v", life, tc.ttl)
			}
			w = doHTTP(t, h, nil, redeemRequestFor(redeemBody(got["capability"], "ctr-1", "GET", "https://api.kilo.example/x")))
			if w.Code != http.StatusOK {
				t.Errorf("redeem of the issued capability = %d %s", w.Code, w.Body)
			}
		})
	}
}

func TestAPIRejects(t *testing.T) {
	big := issueBody(func(m map[string]any) { m["userId"] = strings.Repeat("u", MaxAPIBodyBytes) })
	okRedeem := redeemBody("kka1.x", "ctr-1", "GET", "https://api.kilo.example/x")
	tests := []struct {
		name   string
		req    httpRequest
		status int
		error  string
	}{
		{"no admin token", httpRequest{method: "POST", target: IssuePath, body: issueBody(nil)}, 401, "unauthorized"},
		{"wrong admin token", httpRequest{method: "POST", target: RedeemPath, header: apiHeader(testAPIToken + "x"), body: okRedeem}, 401, "unauthorized"},
		{"admin token prefix", httpRequest{method: "POST", target: IssuePath, header: apiHeader(testAPIToken[:20]), body: issueBody(nil)}, 401, "unauthorized"},
		{"basic scheme", httpRequest{method: "POST", target: IssuePath, header: map[string][]string{"Authorization": {"Basic " + testAPIToken}}, body: issueBody(nil)}, 401, "unauthorized"},
		{"admin token twice", httpRequest{method: "POST", target: IssuePath, header: map[string][]string{"Authorization": {"Bearer " + testAPIToken, "Bearer " + testAPIToken}}, body: issueBody(nil)}, 401, "unauthorized"},
		{"GET", httpRequest{method: "GET", target: IssuePath, header: apiHeader(testAPIToken)}, 405, "method_not_allowed"},
		{"oversized issue", httpRequest{method: "POST", target: IssuePath, header: apiHeader(testAPIToken), body: big}, 413, "request_too_large"},
		{"oversized redeem", httpRequest{method: "POST", target: RedeemPath, header: apiHeader(testAPIToken), body: okRedeem + strings.Repeat(" ", MaxAPIBodyBytes)}, 413, "request_too_large"},
		{"empty body", issueReq(""), 400, "invalid_request"},
		{"not JSON", issueReq("userId=x"), 400, "invalid_request"},
		{"array", issueReq("[]"), 400, "invalid_request"},
		{"trailing data", issueReq(issueBody(nil) + "{}"), 400, "invalid_request"},
		{"unknown field", issueReq(issueBody(func(m map[string]any) { m["admin"] = true })), 400, "invalid_request"},
		{"unknown target field", issueReq(issueBody(func(m map[string]any) { m["targets"].(map[string]any)["extra"] = "x" })), 400, "invalid_request"},
		{"key in another case", issueReq(strings.Replace(issueBody(nil), `"userId"`, `"userid"`, 1)), 400, "invalid_request"},
		{"duplicate key", issueReq(strings.Replace(issueBody(nil), `{`, `{"userId":"other",`, 1)), 400, "invalid_request"},
		{"null string", issueReq(issueBody(func(m map[string]any) { m["providerToken"] = nil })), 400, "invalid_request"},
		{"null userToken", issueReq(issueBody(func(m map[string]any) { m["userToken"] = nil })), 400, "invalid_request"},
		{"null target", issueReq(issueBody(func(m map[string]any) { m["targets"].(map[string]any)["backendBaseUrl"] = nil })), 400, "invalid_request"},
		{"null targets", issueReq(issueBody(func(m map[string]any) { m["targets"] = nil })), 400, "invalid_request"},
		{"targets not an object", issueReq(issueBody(func(m map[string]any) { m["targets"] = "https://api.kilo.example" })), 400, "invalid_request"},
		{"duplicate target key", issueReq(strings.Replace(issueBody(nil), `"backendBaseUrl"`, `"backendBaseUrl":"https://other.example","backendBaseUrl"`, 1)), 400, "invalid_request"},
		{"duplicate ttlSeconds", issueReq(strings.Replace(issueBody(nil), `{`, `{"ttlSeconds":60,"ttlSeconds":60,`, 1)), 400, "invalid_request"},
		{"ttlSeconds in another case", issueReq(strings.Replace(issueBody(nil), `{`, `{"TTLSeconds":60,`, 1)), 400, "invalid_request"},
		{"number as userId", issueReq(issueBody(func(m map[string]any) { m["userId"] = 1 })), 400, "invalid_request"},
		{"number as string", issueReq(issueBody(func(m map[string]any) { m["ttlSeconds"] = "600" })), 400, "invalid_request"},
		{"fractional ttl", issueReq(issueBody(func(m map[string]any) { m["ttlSeconds"] = 1.5 })), 400, "invalid_request"},
		{"null ttl", issueReq(issueBody(func(m map[string]any) { m["ttlSeconds"] = nil })), 400, "invalid_request"},
		{"userToken with CR LF", issueReq(issueBody(func(m map[string]any) { m["userToken"] = "tok\r\nx-evil: 1" })), 400, "invalid_capability"},
		{"providerToken with NUL", issueReq(issueBody(func(m map[string]any) { m["providerToken"] = "tok\u0000" })), 400, "invalid_capability"},
		{"invalid UTF-8", issueReq(strings.Replace(issueBody(nil), "user-1", "user-\xff", 1)), 400, "invalid_request"},
		{"empty object", issueReq(`{}`), 400, "invalid_capability"},
		{"only ttlSeconds", issueReq(`{"ttlSeconds":60}`), 400, "invalid_capability"},
		{"empty userId", issueReq(issueBody(func(m map[string]any) { m["userId"] = "" })), 400, "invalid_capability"},
		{"missing userToken", issueReq(issueBody(func(m map[string]any) { delete(m, "userToken") })), 400, "invalid_capability"},
		{"empty providerToken", issueReq(issueBody(func(m map[string]any) { m["providerToken"] = "" })), 400, "invalid_capability"},
		{"zero ttl", issueReq(issueBody(func(m map[string]any) { m["ttlSeconds"] = 0 })), 400, "invalid_capability"},
		{"ttl above 4h", issueReq(issueBody(func(m map[string]any) { m["ttlSeconds"] = 4*3600 + 1 })), 400, "invalid_capability"},
		{"plain http target", issueReq(issueBody(func(m map[string]any) {
			m["targets"].(map[string]any)["backendBaseUrl"] = "http://api.kilo.example"
		})), 400, "invalid_targets"},
		{"target with a query", issueReq(issueBody(func(m map[string]any) {
			m["targets"].(map[string]any)["providerBaseUrl"] = "https://llm.kilo.example/?a=b"
		})), 400, "invalid_targets"},
		{"redeem missing member", redeemRequestFor(`{"capability":"kka1.x","outboundContainerId":"ctr-1","requestMethod":"GET"}`), 400, "invalid_request"},
		{"redeem null member", redeemRequestFor(`{"capability":null,"outboundContainerId":"ctr-1","requestMethod":"GET","requestUrl":"https://a.example/"}`), 400, "invalid_request"},
		{"redeem empty method", redeemRequestFor(redeemBody("kka1.x", "ctr-1", "", "https://api.kilo.example/x")), 400, "invalid_request"},
		{"redeem bad method", redeemRequestFor(redeemBody("kka1.x", "ctr-1", "GE T", "https://api.kilo.example/x")), 400, "invalid_request"},
		{"redeem unknown field", redeemRequestFor(strings.Replace(okRedeem, "{", `{"routeClass":"backend_api",`, 1)), 400, "invalid_request"},
	}
	h := newAPITestHandler(t, httpSetup{})
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := doHTTP(t, h, nil, tc.req)
			assertAPIError(t, w, tc.status, tc.error)
			if strings.Contains(dumpResponse(w), testAPIToken) || strings.Contains(dumpResponse(w), secretUserToken) {
				t.Error("response reveals a secret")
			}
			switch tc.status {
			case 401:
				if !strings.HasPrefix(w.Header().Get("WWW-Authenticate"), `Bearer realm="extauthz-api"`) {
					t.Errorf("WWW-Authenticate = %q", w.Header().Get("WWW-Authenticate"))
				}
			case 405:
				if w.Header().Get("Allow") != "POST" {
					t.Errorf("Allow = %q; want POST", w.Header().Get("Allow"))
				}
			}
		})
	}
}

func issueReq(body string) httpRequest {
	return httpRequest{method: "POST", target: IssuePath, header: apiHeader(testAPIToken), body: body}
}

func assertAPIError(t *testing.T, w *httptest.ResponseRecorder, status int, slug string) {
	t.Helper()
	if w.Code != status || w.Body.String() != `{"error":"`+slug+`"}`+"\n" {
		t.Errorf("= %d %q; want %d {\"error\":%q} and a newline", w.Code, w.Body, status, slug)
	}
	if ct := w.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q; want application/json", ct)
	}
}

// TestAPIDisabled: the authorization handler does not serve the API: without
// an API handler beside it, the API does not exist, whatever the caller
// sends.
func TestAPIDisabled(t *testing.T) {
	h := newHTTPTestHandler(t, httpSetup{})
	for _, target := range []string{IssuePath, RedeemPath} {
		for _, hdr := range []map[string][]string{nil, apiHeader(testAPIToken), apiHeader("")} {
			w := doHTTP(t, h, nil, httpRequest{method: "POST", target: target, header: hdr, body: issueBody(nil)})
			assertAPIError(t, w, http.StatusNotFound, "not_found")
		}
	}
}

func TestIssueWithoutKeys(t *testing.T) {
	h := newAPITestHandler(t, httpSetup{codec: capability.NewCodec(nil)})
	assertAPIError(t, doHTTP(t, h, nil, issueReq(issueBody(nil))), http.StatusServiceUnavailable, string(ReasonConfigurationError))
	w := doHTTP(t, h, nil, redeemRequestFor(redeemBody("kka1.x", "ctr-1", "GET", "https://api.kilo.example/x")))
	assertAPIError(t, w, http.StatusServiceUnavailable, string(ReasonConfigurationError))
}

// TestIssueLogsNoSecret: the issue log line names the subject, never its
// tokens or the capability.
func TestIssueLogsNoSecret(t *testing.T) {
	var log testsupport.LockedBuffer
	h := newAPITestHandler(t, httpSetup{log: &log})
	w := doHTTP(t, h, nil, issueReq(issueBody(nil)))
	var got map[string]string
	_ = json.Unmarshal(w.Body.Bytes(), &got)
	doHTTP(t, h, nil, httpRequest{method: "POST", target: IssuePath, header: apiHeader("wrong-token-S3CRET-0123456789"), body: issueBody(nil)})
	if !strings.Contains(log.String(), `"capability issued"`) || !strings.Contains(log.String(), "wrong admin token") {
		t.Errorf("log lacks the issue or the failed-auth line:\n%s", log.String())
	}
	assertNoSecrets(t, "log", log.String(), capabilities{"ISSUED": got["capability"]})
	for _, s := range []string{testAPIToken, "S3CRET"} {
		if strings.Contains(log.String(), s) {
			t.Errorf("log contains an admin token")
		}
	}
}

// TestAPIBodyReadDeadline: a client that sends the headers of an API
// call and then trickles (or never sends) the body is cut off after
// apiBodyTimeout instead of holding a goroutine and a connection forever.
func TestAPIBodyReadDeadline(t *testing.T) {
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

// TestAPIContentLengthOverLimit: a declared Content-Length above the
// limit is refused before reading, whatever the body turns out to be.
func TestAPIContentLengthOverLimit(t *testing.T) {
	h := newAPITestHandler(t, httpSetup{})
	r := httptest.NewRequest(http.MethodPost, IssuePath, strings.NewReader(issueBody(nil)))
	r.Header.Set("Authorization", "Bearer "+testAPIToken)
	r.ContentLength = MaxAPIBodyBytes + 1
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	assertAPIError(t, w, http.StatusRequestEntityTooLarge, apiErrRequestTooLarge)
}

// TestIssueChecksTheServerPolicy: issue refuses targets the server's
// policy refuses, although the codec knows no policy (Seal checks the claim
// rules only), so it never mints a capability that Check would then refuse.
func TestIssueChecksTheServerPolicy(t *testing.T) {
	ring, err := capability.NewKeyRing(testKey)
	if err != nil {
		t.Fatal(err)
	}
	codec := capability.NewCodec(ring, capability.WithClock(testClock))
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
