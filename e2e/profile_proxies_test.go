package e2e

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/extauthz/extauthz/capability"
)

// The HTTP-mode proxies (Envoy http_service, nginx) with profile
// capabilities, for real: TestProxyConfigsPassProfileHeaders checks their
// header lists against the shipped profiles; these tests send the requests.

// The real keys of the keyed profiles.
const (
	keyedSecret = "sk-keyed-REAL-KEY-a41f"
	googSecret  = "goog-REAL-KEY-7c20"
)

// keyedProfiles writes two profiles shaped as the shipped anthropic and
// gemini ones, on origin: "keyed" takes its capability as a bearer token or
// in x-api-key and injects the key into x-api-key; "goog" takes it in
// x-goog-api-key and injects there. It returns the file.
func keyedProfiles(t *testing.T, origin string) string {
	t.Helper()
	file := filepath.Join(t.TempDir(), "profiles.yaml")
	yaml := `profiles:
  - name: keyed
    accept: [bearer, {header: x-api-key}]
    routes:
      - {class: keyed_api, origin: "ORIGIN", paths: ["/v1/**"], credential: api-key, inject: {header: x-api-key}}
  - name: goog
    accept: [{header: x-goog-api-key}]
    routes:
      - {class: goog_api, origin: "ORIGIN", paths: ["/v1beta/**"], credential: api-key, inject: {header: x-goog-api-key}}
`
	if err := os.WriteFile(file, []byte(strings.ReplaceAll(yaml, "ORIGIN", origin)), 0o600); err != nil {
		t.Fatal(err)
	}
	return file
}

// keyedCase is one way a sandbox presents a keyed capability, and the key
// the upstream must get.
type keyedCase struct {
	name, path   string
	header       func(capability string) map[string]string
	keyHeader    string // where the upstream must find the key
	key          string
	profile      string
	unsetHeaders []string // must not reach the upstream at all
}

var keyedCases = []keyedCase{
	{"bearer into x-api-key", "/v1/messages", func(c string) map[string]string { return map[string]string{"Authorization": "Bearer " + c} },
		"X-Api-Key", keyedSecret, "keyed", []string{"Authorization"}},
	{"x-api-key into x-api-key", "/v1/messages", func(c string) map[string]string { return map[string]string{"X-Api-Key": c} },
		"X-Api-Key", keyedSecret, "keyed", []string{"Authorization"}},
	{"x-goog-api-key into x-goog-api-key", "/v1beta/models/m:generateContent", func(c string) map[string]string { return map[string]string{"X-Goog-Api-Key": c} },
		"X-Goog-Api-Key", googSecret, "goog", []string{"Authorization", "X-Api-Key"}},
}

// sealKeyed issues the case's capability for container.
func (c keyedCase) seal(t *testing.T, codec *capability.Codec, container string) string {
	t.Helper()
	return sealProfileWith(t, codec, c.profile, container, nil, map[string]string{"api-key": c.key}, time.Hour)
}

// check holds what the upstream got to the case: the key, once, where the
// provider reads it, and no capability anywhere.
func (c keyedCase) check(t *testing.T, got seen) {
	t.Helper()
	if v := got.Header.Values(c.keyHeader); len(v) != 1 || v[0] != c.key {
		t.Errorf("upstream %s = %q; want the real key once", c.keyHeader, v)
	}
	for _, h := range c.unsetHeaders {
		if v := got.Header.Values(h); len(v) != 0 {
			t.Errorf("upstream got %s %q; want none", h, v)
		}
	}
	for name, vs := range got.Header {
		for _, v := range vs {
			if strings.Contains(v, capability.ProfilePrefix) {
				t.Errorf("upstream got a capability in %s", name)
			}
		}
	}
}

// TestEnvoyHTTPServicePassesProfileCapabilities: the shipped
// envoy-http-service.yaml sends the capability to extauthz from every
// header a profile takes (allowed_headers), sets the key from the allow
// (allowed_upstream_headers) and removes the rest
// (x-envoy-auth-headers-to-remove).
func TestEnvoyHTTPServicePassesProfileCapabilities(t *testing.T) {
	opts := httpModeOptions
	opts.serveArgs = append([]string{"--profiles-file", keyedProfiles(t, "https://"+apiHost)}, opts.serveArgs...)
	s := newEnvoyStack(t, opts)
	for _, c := range keyedCases {
		t.Run(c.name, func(t *testing.T) {
			hd := []string{}
			for k, v := range c.header(c.seal(t, s.codec, shippedID)) {
				hd = append(hd, k+": "+v)
			}
			before := s.api.count()
			resp := s.get(apiHost, c.path, hd...)
			if resp.status != http.StatusOK || s.api.count() != before+1 {
				t.Fatalf("status %d %s, %d requests upstream; want 200 and one", resp.status, resp.body, s.api.count()-before)
			}
			c.check(t, s.api.last())
		})
	}
}

// TestNginxPassesProfileCapabilities: the shipped nginx.conf passes the
// capability to extauthz (auth_request carries the request's headers), sets
// each injected header from the allow (auth_request_set) and clears the
// headers extauthz did not answer with.
func TestNginxPassesProfileCapabilities(t *testing.T) {
	nginx := findNginx(t)
	keyFile, codec := newKey(t)
	up := newEchoUpstream(t)
	upAddr := up.Listener.Addr().String()
	x := startServe(t, extauthzBin(t), keyFile, true,
		"--http-container-id-header", "x-outbound-container-id", "--profiles-file", keyedProfiles(t, "http://"+upAddr))
	ng := startNginx(t, nginx, x.process, x.http, upAddr)
	for _, c := range keyedCases {
		t.Run(c.name, func(t *testing.T) {
			before, _ := up.requests()
			resp, body := do(t, http.MethodPost, ng.url+c.path, c.header(c.seal(t, codec, devContainer)), "{}")
			after, got := up.requests()
			if resp.StatusCode != http.StatusOK || after != before+1 {
				t.Fatalf("status %d %s, %d requests upstream; want 200 and one", resp.StatusCode, body, after-before)
			}
			c.check(t, got)
		})
	}
}
