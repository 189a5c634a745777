package e2e

import (
	"net/http"
	"strings"
	"testing"

	"github.com/extauthz/extauthz/capability"
)

// httpModeOptions runs deploy/envoy/envoy-http-service.yaml against extauthz's HTTP
// endpoint with the identity header that config sets.
var httpModeOptions = stackOptions{
	httpMode:  true,
	serveArgs: []string{"--http-container-id-header", "x-outbound-container-id"},
}

// httpModeTargets put every target on the one host envoy-http-service.yaml
// routes, so every route class is reachable through it.
var httpModeTargets = capability.Targets{
	BackendBaseURL:       "https://" + apiHost,
	ProviderBaseURL:      "https://" + apiHost,
	SessionIngestBaseURL: "https://" + apiHost,
}

// TestEnvoyHTTPServiceAllowsEveryRouteClass: the shipped http_service config
// forwards each route class with the right token and without the capability.
func TestEnvoyHTTPServiceAllowsEveryRouteClass(t *testing.T) {
	s := newEnvoyStack(t, httpModeOptions)
	capa := s.seal(subjectFor(shippedID, httpModeTargets))
	for _, rc := range everyRouteClass {
		rc.host = apiHost
		for carrier, headers := range map[string][]string{
			"dedicated header":     {capabilityHdr + ": " + capa, "Authorization: Bearer sandbox-made-this-up"},
			"authorization bearer": {"Authorization: Bearer " + capa},
		} {
			t.Run(rc.class+rc.path+"/"+carrier, func(t *testing.T) {
				before := s.api.count()
				n := len(s.ext.decisions())
				resp := s.get(rc.host, rc.path+"?q=1", headers...)
				if resp.status != http.StatusOK {
					t.Fatalf("status %d %s; want 200", resp.status, resp.body)
				}
				if s.api.count() != before+1 {
					t.Fatalf("upstream got %d requests; want 1", s.api.count()-before)
				}
				got := s.api.last()
				checkForwarded(t, got, rc.token)
				if v := got.Header.Values("X-Outbound-Container-Id"); len(v) != 0 {
					t.Errorf("upstream received the identity header %q", v)
				}
				if got.RequestURI != rc.path+"?q=1" {
					t.Errorf("upstream got %s; want %s", got.RequestURI, rc.path+"?q=1")
				}
				d, ok := s.ext.decisionAfter(n)
				if !ok || d.Decision != "allow" || d.RouteClass != rc.class || d.Path != rc.path {
					t.Errorf("extauthz decided %+v; want allow %s on %s", d, rc.class, rc.path)
				}
			})
		}
	}
}

// TestEnvoyHTTPServiceDenies: denies reach the sandbox through
// allowed_client_headers with their status, JSON body and
// www-authenticate; nothing reaches the upstream.
func TestEnvoyHTTPServiceDenies(t *testing.T) {
	s := newEnvoyStack(t, httpModeOptions)
	capa := s.seal(subjectFor(shippedID, httpModeTargets))
	other := s.seal(subjectFor("another-container", httpModeTargets))
	for _, c := range []struct {
		name, path string
		headers    []string
		status     int
		reason     string
		wwwAuth    string
	}{
		{"missing", "/api/profile", nil, 401, "missing_capability", `Bearer realm="extauthz"`},
		{"invalid", "/api/profile", []string{capabilityHdr + ": kka1.AAAA:BBBB:CCCC"}, 401, "invalid_capability", `Bearer realm="extauthz", error="invalid_token"`},
		{"other container", "/api/profile", []string{capabilityHdr + ": " + other}, 403, "container_mismatch", ""},
		{"encoded slash", "/api/openrouter%2fx", []string{capabilityHdr + ": " + capa}, 403, "invalid_upstream_url", ""},
		{"other session", "/api/session/someone-else/export", []string{capabilityHdr + ": " + capa}, 403, "upstream_not_allowed", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			before := s.api.count()
			r := s.get(apiHost, c.path, c.headers...)
			if r.status != c.status || strings.TrimSpace(r.body) != `{"error":"`+c.reason+`"}` {
				t.Errorf("got %d %q; want %d %s", r.status, r.body, c.status, c.reason)
			}
			if ct := r.header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("content-type %q; want application/json", ct)
			}
			if got := r.header.Get("Www-Authenticate"); got != c.wwwAuth {
				t.Errorf("www-authenticate %q; want %q", got, c.wwwAuth)
			}
			if s.api.count() != before {
				t.Errorf("a denied request reached the upstream")
			}
		})
	}
}

// TestEnvoyHTTPServiceUpstreamGetsWhatWasClassified runs the tricky corpus
// through envoy-http-service.yaml. Its one difference from the gRPC mode
// comes from the config: it routes one host, so its catch-all virtual host
// refuses the ingest host too, without asking extauthz.
func TestEnvoyHTTPServiceUpstreamGetsWhatWasClassified(t *testing.T) {
	s := newEnvoyStack(t, httpModeOptions)
	corpus := trickyCorpus(s.seal(subjectFor(shippedID, shippedTargets)), s.seal(subjectFor("another-container", shippedTargets)))
	for i, c := range corpus {
		if c.name == "absolute-form ingest, Host api" {
			corpus[i].want = localDeny
		}
	}
	runCorpus(t, s, corpus)
}

func TestEnvoyHTTPServiceFailsClosed(t *testing.T) { testFailClosed(t, httpModeOptions) }
