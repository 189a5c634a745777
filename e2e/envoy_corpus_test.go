package e2e

import (
	"fmt"
	"strings"
	"testing"
)

// What happened to a tricky request.
const (
	envoyRejects = "envoy-rejects" // Envoy answered itself; extauthz was never asked
	localDeny    = "local-403"     // no virtual host matched: the shipped catch-all 403
	allowed      = "allow"
)

// trickyCase is one request of the corpus, written raw.
type trickyCase struct {
	name    string
	target  string // the request target as sent (absolute or origin form)
	host    string // the Host header
	headers []string
	// want is envoyRejects, localDeny, allowed or "deny:<reason>".
	want string
	// status is Envoy's answer when want is envoyRejects.
	status int
}

// trickyCorpus returns requests built to make Envoy and extauthz disagree
// about the path or host. capa is a valid capability; other one for another
// container.
func trickyCorpus(capa, other string) []trickyCase {
	hc := capabilityHdr + ": " + capa
	api := "http://" + apiHost
	return []trickyCase{
		{name: "plain", target: api + "/api/profile", host: apiHost, headers: []string{hc}, want: allowed},
		{name: "origin form", target: "/api/profile", host: apiHost, headers: []string{hc}, want: allowed},
		{name: "trailing slash", target: api + "/api/profile/", host: apiHost, headers: []string{hc}, want: allowed},
		{name: "explicit port 443", target: "http://" + apiHost + ":443/api/profile", host: apiHost, headers: []string{hc}, want: allowed},
		{name: "upper-case host", target: "http://API.Kilo.Example/api/profile", host: apiHost, headers: []string{hc}, want: allowed},
		{name: "query with encodings", target: api + "/api/profile?next=%2e%2e%2f..%2f&a=%00", host: apiHost, headers: []string{hc}, want: allowed},
		{name: "literal dot-dot", target: api + "/api/../admin", host: apiHost, headers: []string{hc}, want: "deny:invalid_upstream_url"},
		{name: "literal dot", target: api + "/api/./profile", host: apiHost, headers: []string{hc}, want: "deny:invalid_upstream_url"},
		{name: "encoded dot-dot", target: api + "/api/%2e%2e/admin", host: apiHost, headers: []string{hc}, want: "deny:invalid_upstream_url"},
		{name: "mixed-case encoded dots", target: api + "/api/.%2E/admin", host: apiHost, headers: []string{hc}, want: "deny:invalid_upstream_url"},
		{name: "encoded slash", target: api + "/api/openrouter%2f..%2fprofile", host: apiHost, headers: []string{hc}, want: "deny:invalid_upstream_url"},
		{name: "double-encoded slash", target: api + "/api/openrouter%252fx", host: apiHost, headers: []string{hc}, want: "deny:invalid_upstream_url"},
		{name: "encoded backslash", target: api + "/api/openrouter%5c..%5cprofile", host: apiHost, headers: []string{hc}, want: "deny:invalid_upstream_url"},
		{name: "encoded unreserved", target: api + "/%61pi/profile", host: apiHost, headers: []string{hc}, want: "deny:invalid_upstream_url"},
		{name: "double slash", target: api + "//api/profile", host: apiHost, headers: []string{hc}, want: "deny:invalid_upstream_url"},
		{name: "inner double slash", target: api + "/api//openrouter/x", host: apiHost, headers: []string{hc}, want: "deny:invalid_upstream_url"},
		{name: "semicolon", target: api + "/api/profile;jsessionid=1", host: apiHost, headers: []string{hc}, want: "deny:invalid_upstream_url"},
		{name: "upper-case provider path", target: api + "/API/OPENROUTER/chat", host: apiHost, headers: []string{hc}, want: "deny:upstream_not_allowed"},
		{name: "provider path, case variant", target: api + "/api/OpenRouter/chat", host: apiHost, headers: []string{hc}, want: "deny:upstream_not_allowed"},
		// In absolute form Envoy takes the authority from the URL and ignores
		// Host: extauthz and the router both see the URL's host.
		{name: "absolute-form host differs from Host", target: api + "/api/session/" + kiloSessionID + "/ingest", host: ingestHost, headers: []string{hc}, want: allowed},
		{name: "absolute-form ingest, Host api", target: "http://" + ingestHost + "/api/session/" + kiloSessionID + "/ingest", host: apiHost, headers: []string{hc}, want: allowed},
		{name: "Host names ingest, URL names api", target: api + "/api/profile", host: ingestHost, headers: []string{hc}, want: allowed},
		{name: "trailing-dot host", target: "http://" + apiHost + "./api/profile", host: apiHost + ".", headers: []string{hc}, want: localDeny},
		{name: "unknown host", target: "http://evil.example/api/profile", host: "evil.example", headers: []string{hc}, want: localDeny},
		// Envoy drops userinfo from an absolute-form URL before asking.
		{name: "userinfo", target: "http://user:pw@" + apiHost + "/api/profile", host: apiHost, headers: []string{hc}, want: allowed},
		{name: "fragment", target: api + "/api/profile#frag", host: apiHost, headers: []string{hc}, want: envoyRejects, status: 400},
		{name: "non-ASCII bytes", target: api + "/api/caf\xc3\xa9", host: apiHost, headers: []string{hc}, want: envoyRejects, status: 400},
		{name: "percent-encoded non-ASCII", target: api + "/api/caf%C3%A9", host: apiHost, headers: []string{hc}, want: allowed},
		{name: "backslash", target: api + "/api\\profile", host: apiHost, headers: []string{hc}, want: "deny:invalid_upstream_url"},
		{name: "no path", target: api, host: apiHost, headers: []string{hc}, want: allowed},
		{name: "encoded NUL", target: api + "/api/profile%00.json", host: apiHost, headers: []string{hc}, want: "deny:invalid_upstream_url"},
		{name: "tab in path", target: api + "/api/pro\tfile", host: apiHost, headers: []string{hc}, want: envoyRejects, status: 400},
		{name: "asterisk form", target: "*", host: apiHost, headers: []string{hc}, want: envoyRejects, status: 400},
		{name: "duplicate authorization, two capabilities", target: api + "/api/profile", host: apiHost,
			headers: []string{"Authorization: Bearer " + capa, "Authorization: Bearer " + other}, want: "deny:invalid_capability"},
		{name: "duplicate authorization, one not kka1", target: api + "/api/profile", host: apiHost,
			headers: []string{"Authorization: Bearer " + capa, "Authorization: Bearer sk-other"}, want: allowed},
		{name: "duplicate capability header", target: api + "/api/profile", host: apiHost,
			headers: []string{hc, capabilityHdr + ": " + other}, want: "deny:invalid_capability"},
		{name: "capability in both headers, different", target: api + "/api/profile", host: apiHost,
			headers: []string{hc, "Authorization: Bearer " + other}, want: "deny:invalid_capability"},
		{name: "capability in both headers, same", target: api + "/api/profile", host: apiHost,
			headers: []string{hc, "Authorization: Bearer " + capa}, want: allowed},
		{name: "capability header name in upper case", target: api + "/api/profile", host: apiHost,
			headers: []string{"X-KILO-CAPABILITY: " + capa}, want: allowed},
		{name: "forged identity header", target: api + "/api/profile", host: apiHost,
			headers: []string{hc, "x-outbound-container-id: another-container"}, want: allowed},
	}
}

// TestEnvoyGRPCUpstreamGetsWhatWasClassified sends the tricky corpus through
// the shipped envoy.yaml and compares, for every request, the host and path
// extauthz classified (its decision line) with the host and path the
// upstream received. On an allow they must be the same; on anything else the
// upstream must receive nothing. Each request's outcome is pinned, so the
// list in docs/envoy.md of what Envoy rejects on its own stays true.
func TestEnvoyGRPCUpstreamGetsWhatWasClassified(t *testing.T) {
	s := newEnvoyStack(t, stackOptions{})
	runCorpus(t, s, trickyCorpus(s.capability(), s.seal(subjectFor("another-container", shippedTargets))))
}

func runCorpus(t *testing.T, s *envoyStack, corpus []trickyCase) {
	t.Helper()
	var table strings.Builder
	for _, c := range corpus {
		t.Run(c.name, func(t *testing.T) {
			n := len(s.ext.decisions())
			before := map[*tlsUpstream]int{s.api: s.api.count()}
			before[s.ingest] = s.ingest.count()
			r := s.raw(buildRequest("GET", c.target, c.host, c.headers, ""))
			var d decision
			asked := false
			if c.want != envoyRejects && c.want != localDeny {
				d, asked = s.ext.decisionAfter(n)
			} else if len(s.ext.decisions()) > n {
				d, asked = s.ext.decisions()[n], true
			}
			var got *tlsUpstream
			for _, u := range []*tlsUpstream{s.api, s.ingest} {
				if u.count() != before[u] {
					if got != nil || u.count() != before[u]+1 {
						t.Fatalf("one request reached the upstreams more than once")
					}
					got = u
				}
			}
			outcome := ""
			switch {
			case !asked && got == nil && r.status == 403 && strings.Contains(r.body, "upstream_not_allowed"):
				outcome = localDeny
			case !asked && got == nil:
				outcome = envoyRejects
			case asked && d.Decision == "allow":
				outcome = allowed
			case asked:
				outcome = "deny:" + d.Reason
			}
			fmt.Fprintf(&table, "%-45s %-28s Envoy %d; extauthz saw %q %q", c.name, outcome, r.status, d.Host, d.Path)
			if got != nil {
				fmt.Fprintf(&table, "; upstream %s got %q %q", got.name, got.last().Host, got.last().RequestURI)
			}
			table.WriteString("\n")

			if outcome == localDeny {
				// The deny extauthz itself gives (docs/decisions.md, section 5).
				if ct := r.header.Get("Content-Type"); ct != "application/json" || r.body != `{"error":"upstream_not_allowed"}` {
					t.Errorf("Envoy's own deny: content-type %q, body %q; want application/json and {\"error\":\"upstream_not_allowed\"}", ct, r.body)
				}
			}
			if outcome != c.want {
				t.Errorf("outcome %s (Envoy %d %q, decision %+v); want %s", outcome, r.status, r.body, d, c.want)
			}
			if c.want == envoyRejects && r.status != c.status {
				t.Errorf("Envoy answered %d; want %d", r.status, c.status)
			}
			if outcome == allowed {
				if got == nil {
					t.Fatalf("allowed (%+v) but no upstream received it; Envoy %d %q", d, r.status, r.body)
				}
				up := got.last()
				path, _, _ := strings.Cut(up.RequestURI, "?")
				if path != d.Path {
					t.Errorf("extauthz classified path %q; upstream received %q", d.Path, path)
				}
				if !sameHost(d.Host, got.name) {
					t.Errorf("extauthz classified host %q; the request went to %s", d.Host, got.name)
				}
				checkForwarded(t, up, sentinelUser)
			} else if got != nil {
				t.Errorf("outcome %s, yet upstream %s received %q", outcome, got.name, got.last().RequestURI)
			}
		})
	}
	t.Logf("corpus:\n%s", table.String())
}

// sameHost compares an authority with a host name the way origins compare:
// case-insensitive, the https default port dropped.
func sameHost(authority, host string) bool {
	authority = strings.TrimSuffix(strings.ToLower(authority), ":443")
	return authority == strings.ToLower(host)
}
