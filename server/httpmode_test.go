package server

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/extauthz/extauthz/authz"
)

// TestWithAPI: the API gets exactly its two paths, matched on the raw
// path (a query does not matter, a longer or dotted path is not the API);
// every other request goes to the authorization handler unchanged.
func TestWithAPI(t *testing.T) {
	var got string
	stub := func(name string) http.Handler {
		return http.HandlerFunc(func(http.ResponseWriter, *http.Request) { got = name })
	}
	h := withAPI(stub("proxy"), stub("api"))
	for _, tc := range []struct{ target, want string }{
		{authz.IssuePath, "api"},
		{authz.RedeemPath, "api"},
		{authz.RedeemPath + "?x=1", "api"},
		{authz.IssuePath + "x", "proxy"},
		{"/v1/capabilities:issue/", "proxy"},
		{"/v1/x/../capabilities:issue", "proxy"},
		{authz.ForwardPath, "proxy"},
		{authz.EnvoyPathPrefix + "/v1/capabilities:issue", "proxy"},
		{"/", "proxy"},
	} {
		got = ""
		r := httptest.NewRequest(http.MethodPost, "/", nil)
		r.RequestURI = tc.target
		h.ServeHTTP(httptest.NewRecorder(), r)
		if got != tc.want {
			t.Errorf("%s went to %q; want %q", tc.target, got, tc.want)
		}
	}
}

// TestHTTPListenerComposition: what --http-addr serves, built by New.
// With --api-token-file the API answers beside the authorization endpoints
// and issues a capability that the forward endpoint then allows; without it
// the API paths are 404 and the authorization endpoints still answer.
func TestHTTPListenerComposition(t *testing.T) {
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "keys")
	writeKeys(t, keyFile, bytes.Repeat([]byte{7}, 32))
	tokenFile := filepath.Join(dir, "token")
	const token = "composition-token-0123456789"
	if err := os.WriteFile(tokenFile, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	build := func(args ...string) http.Handler {
		t.Helper()
		s, err := New(mustConfig(t, append([]string{"--key-file", keyFile, "--dev-http-hosts", "up.test",
			"--http-addr", "127.0.0.1:0", "--http-container-id-header", "x-outbound-container-id"}, args...)...), zerolog.Nop())
		if err != nil {
			t.Fatal(err)
		}
		return s.HTTPHandler()
	}
	do := func(h http.Handler, method, target string, header map[string]string, body string) *httptest.ResponseRecorder {
		r := httptest.NewRequest(method, target, strings.NewReader(body))
		for k, v := range header {
			r.Header.Set(k, v)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w
	}
	subject := `{"userId":"u","cloudAgentSessionId":"c","kiloSessionId":"k","outboundContainerId":"ctr",` +
		`"userToken":"ut","targets":{"backendBaseUrl":"http://up.test","providerBaseUrl":"http://up.test",` +
		`"sessionIngestBaseUrl":"http://up.test:81"}}`

	h := build("--api-token-file", tokenFile, "--revocation-store", "memory")
	w := do(h, http.MethodPost, authz.IssuePath, map[string]string{"Authorization": "Bearer " + token}, subject)
	var issued struct{ Capability string }
	if w.Code != http.StatusOK || json.Unmarshal(w.Body.Bytes(), &issued) != nil || issued.Capability == "" {
		t.Fatalf("issue = %d %s; want 200 and a capability", w.Code, w.Body)
	}
	w = do(h, http.MethodGet, authz.ForwardPath, map[string]string{
		"Authorization": "Bearer " + issued.Capability, "X-Outbound-Container-Id": "ctr",
		"X-Forwarded-Proto": "http", "X-Forwarded-Host": "up.test", "X-Forwarded-Uri": "/api/x"}, "")
	if w.Code != http.StatusOK || w.Header().Get("Authorization") != "Bearer ut" {
		t.Errorf("forward with the issued capability = %d %q; want 200 with the user token", w.Code, w.Header().Get("Authorization"))
	}

	h = build()
	for _, target := range []string{authz.IssuePath, authz.RedeemPath} {
		if w := do(h, http.MethodPost, target, map[string]string{"Authorization": "Bearer " + token}, subject); w.Code != http.StatusNotFound {
			t.Errorf("without --api-token-file, POST %s = %d; want 404", target, w.Code)
		}
	}
	if w := do(h, http.MethodGet, authz.ForwardPath, nil, ""); w.Header().Get(authz.HeaderReason) != "invalid_upstream_url" {
		t.Errorf("without --api-token-file, forward without attributes = %d %q; want the invalid_upstream_url deny", w.Code, w.Header().Get(authz.HeaderReason))
	}
}
