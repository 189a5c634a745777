package e2e

import (
	"bufio"
	"crypto/sha256"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/extauthz/extauthz/capability"
	"github.com/extauthz/extauthz/internal/testutil/envoyproc"
	"github.com/extauthz/extauthz/internal/testutil/testpki"
)

// routeCase is one allowed request per route class.
type routeCase struct {
	class, host, path, token string
}

var everyRouteClass = []routeCase{
	{"provider_model", apiHost, "/api/openrouter/chat/completions", sentinelProv},
	{"provider_model", apiHost, "/api/gateway/v1/messages", sentinelProv},
	{"organization_models", apiHost, "/api/organizations/org-1/models", sentinelProv},
	{"backend_api", apiHost, "/api/profile", sentinelUser},
	{"session_ingest", ingestHost, "/api/session/" + kiloSessionID + "/ingest", sentinelUser},
}

// checkForwarded asserts what an upstream received on an allow: the real
// token, once, and nothing of the capability.
func checkForwarded(t *testing.T, got seen, token string) {
	t.Helper()
	if a := got.Header.Values("Authorization"); len(a) != 1 || a[0] != "Bearer "+token {
		t.Errorf("upstream authorization = %q; want exactly %q", a, "Bearer "+token)
	}
	if v := got.Header.Values(capabilityHdr); len(v) != 0 {
		t.Errorf("upstream received %s", capabilityHdr)
	}
	for k, vs := range got.Header {
		for _, v := range vs {
			if strings.Contains(v, capability.Prefix) {
				t.Errorf("upstream header %s carries a capability", k)
			}
		}
	}
	if strings.Contains(got.Body, capability.Prefix) {
		t.Errorf("upstream body carries a capability")
	}
}

func (s *envoyStack) upstream(host string) *tlsUpstream {
	if host == ingestHost {
		return s.ingest
	}
	return s.api
}

// TestEnvoyGRPCAllowsEveryRouteClass: through the shipped envoy.yaml, each
// route class reaches its upstream with the right real token, whichever
// header carried the capability, and the sandbox's own authorization is
// replaced, not joined.
func TestEnvoyGRPCAllowsEveryRouteClass(t *testing.T) {
	s := newEnvoyStack(t, stackOptions{})
	capa := s.capability()
	carriers := map[string][]string{
		"dedicated header":     {capabilityHdr + ": " + capa, "Authorization: Bearer sandbox-made-this-up"},
		"authorization bearer": {"Authorization: Bearer " + capa},
		"both headers, same":   {capabilityHdr + ": " + capa, "Authorization: Bearer " + capa},
	}
	for _, rc := range everyRouteClass {
		for carrier, headers := range carriers {
			t.Run(rc.class+rc.path+"/"+carrier, func(t *testing.T) {
				up := s.upstream(rc.host)
				before := up.count()
				n := len(s.ext.decisions())
				resp := s.get(rc.host, rc.path+"?q=1", headers...)
				if resp.status != http.StatusOK {
					t.Fatalf("status %d %s; want 200\n%s", resp.status, resp.body, s.ext.output)
				}
				if up.count() != before+1 {
					t.Fatalf("upstream %s got %d requests; want 1", rc.host, up.count()-before)
				}
				got := up.last()
				checkForwarded(t, got, rc.token)
				if got.RequestURI != rc.path+"?q=1" || got.Host != rc.host {
					t.Errorf("upstream got %s %s; want %s %s", got.Host, got.RequestURI, rc.host, rc.path+"?q=1")
				}
				d, ok := s.ext.decisionAfter(n)
				if !ok || d.Decision != "allow" || d.RouteClass != rc.class {
					t.Errorf("extauthz decided %+v; want allow %s", d, rc.class)
				}
			})
		}
	}
}

// TestEnvoyGRPCDeniesEveryReason: every deny a running server can give
// reaches the sandbox with its documented status, JSON body and
// www-authenticate, and nothing reaches an upstream. (The seventh reason,
// capability_configuration_error, needs a server without a usable key,
// which `serve` refuses to start: it is covered in-process in authz.)
func TestEnvoyGRPCDeniesEveryReason(t *testing.T) {
	s := newEnvoyStack(t, stackOptions{})
	capa := s.capability()
	past := time.Now().Add(-3 * time.Hour)
	expired, err := capability.NewCodec(s.codec.KeyRing(), capability.WithClock(func() time.Time { return past })).
		Seal(subjectFor(shippedID, shippedTargets), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	other := s.seal(subjectFor("another-container", shippedTargets))
	const bearer = `Bearer realm="extauthz"`
	const invalid = `Bearer realm="extauthz", error="invalid_token"`
	for _, c := range []struct {
		name, host, path string
		headers          []string
		status           int
		reason, wwwAuth  string
	}{
		{"missing", apiHost, "/api/profile", nil, 401, "missing_capability", bearer},
		{"not kka1 only", apiHost, "/api/profile", []string{"Authorization: Bearer sk-live-abc"}, 401, "missing_capability", bearer},
		{"invalid", apiHost, "/api/profile", []string{capabilityHdr + ": kka1.AAAA:BBBB:CCCC"}, 401, "invalid_capability", invalid},
		{"tampered", apiHost, "/api/profile", []string{capabilityHdr + ": " + capa[:len(capa)-4] + "AAA="}, 401, "invalid_capability", invalid},
		{"two different", apiHost, "/api/profile", []string{capabilityHdr + ": " + capa, "Authorization: Bearer " + other}, 401, "invalid_capability", invalid},
		{"expired", apiHost, "/api/profile", []string{capabilityHdr + ": " + expired}, 401, "expired_capability", invalid},
		{"other container", apiHost, "/api/profile", []string{capabilityHdr + ": " + other}, 403, "container_mismatch", ""},
		{"encoded dot segment", apiHost, "/api/%2e%2e/admin", []string{capabilityHdr + ": " + capa}, 403, "invalid_upstream_url", ""},
		{"other session", ingestHost, "/api/session/someone-else/export", []string{capabilityHdr + ": " + capa}, 403, "upstream_not_allowed", ""},
		{"provider route with user token", apiHost, "/api/OpenRouter/x", []string{capabilityHdr + ": " + capa}, 403, "upstream_not_allowed", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			before := s.api.count() + s.ingest.count()
			resp := s.get(c.host, c.path, c.headers...)
			if resp.status != c.status {
				t.Fatalf("status %d %q; want %d", resp.status, resp.body, c.status)
			}
			if want := `{"error":"` + c.reason + `"}`; strings.TrimSpace(resp.body) != want {
				t.Errorf("body %q; want %q", resp.body, want)
			}
			if ct := resp.header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("content-type %q; want application/json", ct)
			}
			if got := resp.header.Get("Www-Authenticate"); got != c.wwwAuth {
				t.Errorf("www-authenticate %q; want %q", got, c.wwwAuth)
			}
			if strings.Contains(resp.body, sentinelUser) || strings.Contains(resp.body, capability.Prefix) {
				t.Errorf("deny leaks a secret: %q", resp.body)
			}
			if after := s.api.count() + s.ingest.count(); after != before {
				t.Errorf("a denied request reached an upstream")
			}
		})
	}
}

// TestEnvoyGRPCBodiesAndStreams: a 1 MiB POST body reaches the upstream
// unchanged (ext_authz does not buffer it), and a server-sent-events
// response streams back event by event.
func TestEnvoyGRPCBodiesAndStreams(t *testing.T) {
	s := newEnvoyStack(t, stackOptions{})
	capa := s.capability()

	t.Run("1 MiB POST", func(t *testing.T) {
		body := randomBody(1 << 20)
		resp := s.raw(buildRequest("POST", "http://"+apiHost+"/api/openrouter/chat/completions", apiHost,
			[]string{capabilityHdr + ": " + capa, "Content-Type: application/octet-stream"}, body))
		if resp.status != 200 {
			t.Fatalf("status %d %s", resp.status, resp.body)
		}
		got := s.api.last()
		if sha256.Sum256([]byte(got.Body)) != sha256.Sum256([]byte(body)) {
			t.Errorf("upstream body differs: %d bytes; want %d", len(got.Body), len(body))
		}
		checkForwarded(t, got, sentinelProv)
	})

	t.Run("server-sent events stream", func(t *testing.T) {
		firstSeen := make(chan struct{})
		s.api.handle("/api/openrouter/stream", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/event-stream")
			fmt.Fprint(w, "data: one\n\n")
			w.(http.Flusher).Flush()
			// The second event only once the client has read the first:
			// this answer cannot complete unless Envoy streams.
			select {
			case <-firstSeen:
			case <-time.After(10 * time.Second):
			}
			fmt.Fprint(w, "data: two\n\n")
		})
		c, err := net.Dial("tcp", s.proxy)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(8 * time.Second))
		io.WriteString(c, buildRequest("GET", "http://"+apiHost+"/api/openrouter/stream", apiHost,
			[]string{capabilityHdr + ": " + capa, "Accept: text/event-stream"}, ""))
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("status %d", resp.StatusCode)
		}
		br := bufio.NewReader(resp.Body)
		line, err := br.ReadString('\n')
		if err != nil || line != "data: one\n" {
			t.Fatalf("first event %q, %v: the response did not stream", line, err)
		}
		close(firstSeen)
		rest, _ := io.ReadAll(br)
		if !strings.Contains(string(rest), "data: two") {
			t.Errorf("second event missing: %q", rest)
		}
	})
}

// TestEnvoyGRPCAccessLog: the shipped access log carries the route class and
// the container id from extauthz's dynamic metadata, and no token,
// capability or query string.
func TestEnvoyGRPCAccessLog(t *testing.T) {
	s := newEnvoyStack(t, stackOptions{})
	capa := s.capability()
	const querySentinel = "query-SENTINEL-b41e"
	if r := s.get(apiHost, "/api/openrouter/chat?key="+querySentinel, capabilityHdr+": "+capa); r.status != 200 {
		t.Fatalf("status %d %s", r.status, r.body)
	}
	if r := s.get(apiHost, "/api/profile?key="+querySentinel, "Authorization: Bearer "+capa); r.status != 200 {
		t.Fatalf("status %d %s", r.status, r.body)
	}
	if r := s.get(apiHost, "/api/x?key="+querySentinel); r.status != 401 {
		t.Fatalf("status %d %s", r.status, r.body)
	}
	var entries []map[string]any
	deadline := time.Now().Add(5 * time.Second)
	for len(entries) < 3 && time.Now().Before(deadline) {
		entries = entries[:0]
		for _, line := range strings.Split(s.envoy.Output(), "\n") {
			var e map[string]any
			if json.Unmarshal([]byte(line), &e) == nil && e["method"] != nil {
				entries = append(entries, e)
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	if len(entries) != 3 {
		t.Fatalf("access log has %d entries; want 3:\n%s", len(entries), s.envoy.Output())
	}
	want := []struct{ class, id, path string }{
		{"provider_model", shippedID, "/api/openrouter/chat"},
		{"backend_api", shippedID, "/api/profile"},
		{"", "", "/api/x"},
	}
	for i, w := range want {
		e := entries[i]
		class, _ := e["route_class"].(string)
		id, _ := e["outbound_container_id"].(string)
		if class != w.class && !(w.class == "" && class == "-") {
			t.Errorf("entry %d route_class %q; want %q", i, class, w.class)
		}
		if id != w.id && !(w.id == "" && id == "-") {
			t.Errorf("entry %d outbound_container_id %q; want %q", i, id, w.id)
		}
		if e["path"] != w.path {
			t.Errorf("entry %d path %v; want %s", i, e["path"], w.path)
		}
	}
	out := s.envoy.Output()
	for _, secret := range []string{sentinelUser, sentinelProv, capability.Prefix, querySentinel} {
		if strings.Contains(out, secret) {
			t.Errorf("Envoy's output contains %q", secret)
		}
	}
}

// TestEnvoyGRPCTLSOrigination: Envoy originates TLS to the upstream as the
// shipped cluster says; an upstream whose certificate names another host is
// refused and receives no request.
func TestEnvoyGRPCTLSOrigination(t *testing.T) {
	s := newEnvoyStack(t, stackOptions{})
	if r := s.get(apiHost, "/api/profile", capabilityHdr+": "+s.capability()); r.status != 200 {
		t.Fatalf("right certificate: status %d %s", r.status, r.body)
	}
	if got := s.api.last(); got.Header.Get("Authorization") != "Bearer "+sentinelUser {
		t.Fatalf("upstream did not get the token over TLS")
	}

	wrong := newEnvoyStack(t, stackOptions{apiCert: func(ca *testpki.CA) tls.Certificate {
		return ca.Issue(testpki.Spec{CommonName: "evil.example", DNSNames: []string{"evil.example"}}).TLS
	}})
	r := wrong.get(apiHost, "/api/profile", capabilityHdr+": "+wrong.capability())
	if r.status != http.StatusServiceUnavailable {
		t.Errorf("certificate for another name: status %d %q; want 503", r.status, r.body)
	}
	if wrong.api.count() != 0 {
		t.Errorf("upstream with a certificate for another name received %d requests", wrong.api.count())
	}
}

// TestEnvoyGRPCMutationsAlone: without the shipped route-level
// request_headers_to_remove (the second safeguard), extauthz's own answer
// still removes x-kilo-capability and overwrites authorization: the
// OVERWRITE_IF_EXISTS_OR_ADD and headers_to_remove of the OkHttpResponse do
// the work in a real Envoy.
func TestEnvoyGRPCMutationsAlone(t *testing.T) {
	s := newEnvoyStack(t, stackOptions{edit: func(cfg *envoyproc.Config) error {
		n := cfg.ReplaceString(capabilityHdr, "x-not-the-capability")
		if n != 1 {
			return fmt.Errorf("replaced %d route-level removals; want 1", n)
		}
		return nil
	}})
	capa := s.capability()
	r := s.get(apiHost, "/api/openrouter/chat", capabilityHdr+": "+capa, "Authorization: Bearer sandbox-value", "Authorization: Bearer another")
	if r.status != 200 {
		t.Fatalf("status %d %s", r.status, r.body)
	}
	checkForwarded(t, s.api.last(), sentinelProv)
}
