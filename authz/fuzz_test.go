package authz

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"

	"github.com/extauthz/extauthz/policy"
)

// fuzzInput is one request as both adapters see it; "$CAP" in a header value
// stands for a valid capability bound to ctr-1.
type fuzzInput struct {
	method, scheme, host, path, authorization, capHeader, callerID string
}

func fuzzSeeds(f *testing.F) {
	for _, s := range []fuzzInput{
		{"POST", "https", "llm.kilo.example", "/api/openrouter/v1/chat/completions", "Bearer $CAP", "", "ctr-1"},
		{"GET", "https", "api.kilo.example", "/api/organizations/o/models", "", "$CAP", "ctr-1"},
		{"GET", "https", "api.kilo.example", "/api/profile?x=%2e%2e", "bearer $CAP", "$CAP", "ctr-1"},
		{"POST", "https", "ingest.kilo.example", "/api/session/sess-1/ingest", "Bearer $CAP", "", "ctr-1"},
		{"GET", "https", "api.kilo.example", "/api/session/sess-2/export", "Bearer $CAP", "", "ctr-1"},
		{"GET", "http", "api.kilo.example", "/api/%2e%2e/x", "Bearer $CAP,Bearer $CAP", "", "ctr-1"},
		{"GET", "https", "API.kilo.example:443", "/API/OpenRouter/x", "Bearer $CAP", "$CAP,kka1.x", "ctr-1"},
		{"GET", "https", "api.kilo.example", "/x", "Bearer kka1.AA:AA:AA", "", "ctr-2"},
		{"", "", "", "", "", "", ""},
		{"GET", "https", "api.kilo.example", "/api/\xea", "Bearer $CAP", "", "ctr-1"}, // not UTF-8: not encodable
	} {
		f.Add(s.method, s.scheme, s.host, s.path, s.authorization, s.capHeader, s.callerID)
	}
}

// checkFuzzAllow asserts what every allow must satisfy, whatever the input:
// the caller is the bound container, the route is what the policy says for
// the request, and the credential is the one the route calls for.
func checkFuzzAllow(t *testing.T, in fuzzInput, class policy.RouteClass, credential string) {
	t.Helper()
	if in.callerID != "ctr-1" {
		t.Fatalf("allowed caller %q; only ctr-1 is bound", in.callerID)
	}
	route, err := policy.Classify(policy.Request{Scheme: in.scheme, Authority: in.host, Path: in.path}, policy.Targets(testSubject().Targets), "sess-1")
	if err != nil || route.Class != class {
		t.Fatalf("allowed as %s, but the policy says %v, %v", class, route, err)
	}
	want := "Bearer " + secretUserToken
	if route.Credential == policy.CredentialProvider {
		want = "Bearer " + secretProviderToken
	}
	if credential != want {
		t.Fatalf("allow sends %.16q…; want the %v credential", credential, route.Credential)
	}
}

// oracleAndWire answers req with the oracle and, when req can be encoded
// (every string UTF-8), through Register's path too, and fails unless both
// answer without an error and alike.
func oracleAndWire(t *testing.T, srv *GRPCServer, req *authv3.CheckRequest) *authv3.CheckResponse {
	t.Helper()
	resp, err := srv.oracleCheck(context.Background(), req)
	if err != nil {
		t.Fatalf("the oracle returned an error: %v", err)
	}
	if _, encErr := proto.Marshal(req); encErr == nil {
		wire, err := srv.Check(context.Background(), req)
		if err != nil {
			t.Fatalf("Check returned an error: %v", err)
		}
		if !proto.Equal(wire, resp) {
			t.Fatalf("Check answered\n%v\nthe oracle\n%v", wire, resp)
		}
	}
	return resp
}

// FuzzCheck drives the gRPC adapter with arbitrary request attributes: it
// never panics or errors, every deny is well formed, every allow is right,
// and Register's path answers as the oracle does. A request that cannot
// be encoded (a string that is not UTF-8) never reaches Register's path:
// its attributes are decided by the oracle alone.
func FuzzCheck(f *testing.F) {
	fuzzSeeds(f)
	caps := newCapabilities(f)
	srv := newTestServer(f, serverSetup{})
	f.Fuzz(func(t *testing.T, method, scheme, host, path, authorization, capHeader, callerID string) {
		in := fuzzInput{method, scheme, host, path, authorization, capHeader, callerID}
		headers := map[string]string{}
		if authorization != "" {
			headers["authorization"] = strings.ReplaceAll(authorization, "$CAP", caps["CAP"])
		}
		if capHeader != "" {
			headers["x-kilo-capability"] = strings.ReplaceAll(capHeader, "$CAP", caps["CAP"])
		}
		req := &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
			ContextExtensions: map[string]string{"outbound_container_id": callerID},
			Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
				Method: method, Scheme: scheme, Host: host, Path: path, Headers: headers,
			}},
		}}
		resp := oracleAndWire(t, srv, req)
		if ok := resp.GetOkResponse(); ok != nil {
			md := resp.GetDynamicMetadata().AsMap()
			checkFuzzAllow(t, in, policy.RouteClass(md["route_class"].(string)), ok.GetHeaders()[0].GetHeader().GetValue())
			return
		}
		r := Reason(resp.GetStatus().GetMessage())
		if codes.Code(resp.GetStatus().GetCode()) != r.GRPCCode() || r.GRPCCode() == codes.OK || resp.GetDeniedResponse().GetBody() != r.Body() {
			t.Fatalf("malformed deny: %v", resp)
		}
		assertNoSecrets(t, "deny", resp.String(), caps)
	})
}

// FuzzForward does the same through the HTTP forward-auth endpoint.
func FuzzForward(f *testing.F) {
	fuzzSeeds(f)
	caps := newCapabilities(f)
	h := newHTTPTestHandler(f, httpSetup{})
	f.Fuzz(func(t *testing.T, method, scheme, host, path, authorization, capHeader, callerID string) {
		in := fuzzInput{method, scheme, host, path, authorization, capHeader, callerID}
		req := httptest.NewRequest("GET", ForwardPath, nil)
		set := func(k, v string) {
			// Only values a real HTTP request could carry.
			if v != "" && !strings.ContainsAny(v, "\r\n\x00") {
				req.Header.Set(k, strings.ReplaceAll(v, "$CAP", caps["CAP"]))
			}
		}
		set("X-Forwarded-Method", method)
		set("X-Forwarded-Proto", scheme)
		set("X-Forwarded-Host", host)
		set("X-Forwarded-Uri", path)
		set("Authorization", authorization)
		set("X-Kilo-Capability", capHeader)
		set(DefaultHTTPIdentityHeader, callerID)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code == http.StatusOK {
			// The invariants hold for the request as the adapter read it:
			// comma-joined repeats agreed on, the URI trimmed.
			in.scheme, _ = agree(listForm, nil, req.Header.Values("X-Forwarded-Proto"))
			in.host, _ = agree(listForm, nil, req.Header.Values("X-Forwarded-Host"))
			in.callerID, _ = agree(listForm, nil, req.Header.Values(DefaultHTTPIdentityHeader))
			in.path = strings.TrimSpace(req.Header.Get("X-Forwarded-Uri"))
			checkFuzzAllow(t, in, policy.RouteClass(w.Header().Get(HeaderRouteClass)), w.Header().Get("Authorization"))
			return
		}
		var body map[string]string
		r := Reason(w.Header().Get(HeaderReason))
		if json.Unmarshal(w.Body.Bytes(), &body) != nil || body["error"] != string(r) || w.Code != r.HTTPStatus() {
			t.Fatalf("malformed deny: %d %q %q", w.Code, r, w.Body)
		}
		assertNoSecrets(t, "deny", w.Body.String(), caps)
	})
}
