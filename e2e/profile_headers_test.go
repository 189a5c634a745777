package e2e

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"

	extauthzv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_authz/v3"
	"sigs.k8s.io/yaml"

	"github.com/extauthz/extauthz/internal/testutil/envoyconf"
	"github.com/extauthz/extauthz/policy"
	"github.com/extauthz/extauthz/profiles"
)

// profileHeaders are the headers the HTTP-mode proxy configs must handle for
// a set of route profiles (docs/profiles.md), lower case:
//   - accept: the named headers a capability may arrive in (authorization,
//     where bearer and basic arrive, always reaches extauthz), which the proxy
//     must pass to extauthz and never pass upstream;
//   - inject: the headers an allow sets the credential in, which the proxy
//     must copy from extauthz's answer onto the upstream request.
type profileHeaders struct {
	accept, inject []string
}

// shippedProfileHeaders reads profiles/ as --profiles-file would.
func shippedProfileHeaders(t *testing.T) profileHeaders {
	t.Helper()
	set, err := profiles.Load("../profiles", nil)
	if err != nil {
		t.Fatal(err)
	}
	var h profileHeaders
	for _, name := range set.Names() {
		pr, _ := set.Profile(name)
		for _, place := range pr.Accept() {
			if place.Kind == policy.PresentHeader && !slices.Contains(h.accept, place.Header) {
				h.accept = append(h.accept, place.Header)
			}
		}
		for _, in := range pr.Injections() {
			if inj := in.HeaderName(); !slices.Contains(h.inject, inj) {
				h.inject = append(h.inject, inj)
			}
		}
	}
	return h
}

// TestProxyConfigsPassProfileHeaders holds the shipped HTTP-mode configs
// (Envoy http_service, nginx, Traefik) to the shipped profiles: each passes
// every header a profile capability may arrive in to extauthz, sets every
// header a profile injects from extauthz's allow, and lets no capability
// header through to the upstream. A profile that adds a header the configs
// do not handle fails it (the second subtest).
func TestProxyConfigsPassProfileHeaders(t *testing.T) {
	shipped := shippedProfileHeaders(t)
	for _, want := range []string{"x-kilo-capability", "x-api-key", "x-goog-api-key"} {
		if !slices.Contains(shipped.accept, want) {
			t.Errorf("shipped profiles accept named headers %q; want %s among them (has a profile changed?)", shipped.accept, want)
		}
	}
	checks := map[string]func(profileHeaders) []string{
		"envoy-http-service.yaml": func(h profileHeaders) []string { return envoyHTTPServiceProblems(t, h) },
		"nginx.conf":              func(h profileHeaders) []string { return nginxProblems(t, h) },
		"traefik.yaml":            func(h profileHeaders) []string { return traefikProblems(t, h) },
		"gRPC envoy configs":      func(h profileHeaders) []string { return envoyRemovalProblems(t, h) },
	}
	t.Run("shipped profiles", func(t *testing.T) {
		for name, check := range checks {
			for _, p := range check(shipped) {
				t.Errorf("%s: %s", name, p)
			}
		}
	})
	t.Run("a profile with a new header", func(t *testing.T) {
		more := profileHeaders{
			accept: append(slices.Clone(shipped.accept), "x-new-capability"),
			inject: append(slices.Clone(shipped.inject), "x-new-key"),
		}
		for name, check := range checks {
			if name == "gRPC envoy configs" {
				continue // gRPC passes every header; only a removal could break it
			}
			got := strings.Join(check(more), "\n")
			if !strings.Contains(got, "x-new-capability") || !strings.Contains(got, "x-new-key") {
				t.Errorf("%s: a profile accepting x-new-capability and injecting x-new-key went unnoticed:\n%s", name, got)
			}
		}
	})
}

// envoyHTTPServiceProblems: allowed_headers carries every accept header to
// extauthz, allowed_upstream_headers copies every injected header from the
// allow, and no route removes an injected header after ext_authz set it.
func envoyHTTPServiceProblems(t *testing.T, h profileHeaders) []string {
	t.Helper()
	hcm := envoyconf.FirstHCM(t, "../deploy/envoy/envoy-http-service.yaml")
	ea := &extauthzv3.ExtAuthz{}
	if err := hcm.GetHttpFilters()[0].GetTypedConfig().UnmarshalTo(ea); err != nil {
		t.Fatal(err)
	}
	var out []string
	toExtauthz := append(exactPatterns(ea.GetAllowedHeaders()), "authorization") // Envoy always sends it
	for _, a := range h.accept {
		if !slices.Contains(toExtauthz, a) {
			out = append(out, fmt.Sprintf("allowed_headers lacks %s: a capability there never reaches extauthz", a))
		}
	}
	upstream := exactPatterns(ea.GetHttpService().GetAuthorizationResponse().GetAllowedUpstreamHeaders())
	for _, inj := range h.inject {
		if !slices.Contains(upstream, inj) {
			out = append(out, fmt.Sprintf("allowed_upstream_headers lacks %s: an allow's credential there is dropped", inj))
		}
	}
	return append(out, removedInjected("envoy-http-service.yaml", hcm.GetRouteConfig().GetRequestHeadersToRemove(), h)...)
}

// envoyRemovalProblems: the gRPC configs pass every header to extauthz, but
// a route's request_headers_to_remove runs after ext_authz and would drop an
// injected credential.
func envoyRemovalProblems(t *testing.T, h profileHeaders) []string {
	t.Helper()
	var out []string
	for _, f := range []string{"envoy.yaml", "envoy-profiles.yaml", "envoy-compose.yaml"} {
		hcm := envoyconf.FirstHCM(t, "../deploy/envoy/"+f)
		out = append(out, removedInjected(f, hcm.GetRouteConfig().GetRequestHeadersToRemove(), h)...)
	}
	return out
}

func removedInjected(file string, removed []string, h profileHeaders) []string {
	var out []string
	for _, r := range removed {
		if slices.Contains(h.inject, strings.ToLower(r)) {
			out = append(out, fmt.Sprintf("%s: request_headers_to_remove drops %s, where an allow sets the credential", file, r))
		}
	}
	return out
}

var (
	nginxAuthSet  = regexp.MustCompile(`(?m)^\s*auth_request_set\s+(\$\w+)\s+\$upstream_http_(\w+)\s*;`)
	nginxSetHdr   = regexp.MustCompile(`(?m)^\s*proxy_set_header\s+([A-Za-z0-9-]+)\s+("[^"]*"|\S+)\s*;`)
	nginxNoHeader = regexp.MustCompile(`(?m)^\s*proxy_pass_request_headers\s+off\s*;`)
)

// nginxBlock returns the body of the block that opens with open (up to its
// matching brace), or "".
func nginxBlock(conf, open string) string {
	i := strings.Index(conf, open)
	if i < 0 {
		return ""
	}
	depth := 0
	for j := i + len(open) - 1; j < len(conf); j++ {
		switch conf[j] {
		case '{':
			depth++
		case '}':
			depth--
			if depth == 0 {
				return conf[i+len(open) : j]
			}
		}
	}
	return ""
}

// nginxProblems: the auth_request subrequest carries the client's headers
// (nginx passes them unless told not to) without clearing an accept header,
// and the proxied request sets every injected header from the auth response
// and every accept header from it or to "" (removed).
func nginxProblems(t *testing.T, h profileHeaders) []string {
	t.Helper()
	conf := string(readConfig(t, "nginx", "nginx.conf"))
	auth, proxied := nginxBlock(conf, "location = /_extauthz {"), nginxBlock(conf, "location / {")
	if auth == "" || proxied == "" {
		t.Fatal("nginx.conf: no `location = /_extauthz {` or `location / {` block")
	}
	var out []string
	if nginxNoHeader.MatchString(auth) {
		out = append(out, "the auth subrequest has proxy_pass_request_headers off: no capability reaches extauthz")
	}
	setIn := func(block string) map[string]string {
		m := map[string]string{}
		for _, s := range nginxSetHdr.FindAllStringSubmatch(block, -1) {
			m[strings.ToLower(s[1])] = s[2]
		}
		return m
	}
	fromAllow := map[string]string{} // nginx variable -> response header, lower case
	for _, s := range nginxAuthSet.FindAllStringSubmatch(proxied, -1) {
		fromAllow[s[1]] = strings.ReplaceAll(strings.ToLower(s[2]), "_", "-")
	}
	toAuth, upstream := setIn(auth), setIn(proxied)
	for _, a := range append([]string{"authorization"}, h.accept...) {
		if v, ok := toAuth[a]; ok {
			out = append(out, fmt.Sprintf("the auth subrequest sets %s to %s: the sandbox's capability there never reaches extauthz", a, v))
		}
		if v := upstream[a]; v != `""` && fromAllow[v] != a {
			out = append(out, fmt.Sprintf("location / does not set %s from the allow's %s or to \"\": a capability there would reach the upstream", a, a))
		}
	}
	for _, inj := range h.inject {
		if v := upstream[inj]; fromAllow[v] != inj {
			out = append(out, fmt.Sprintf("location / does not set %s from the allow (auth_request_set $v $upstream_http_%s; proxy_set_header %s $v)", inj, strings.ReplaceAll(inj, "-", "_"), inj))
		}
	}
	return out
}

// traefikProblems: forwardAuth sends every accept header to extauthz
// (authRequestHeaders, when set, is the whole list), lists every injected
// header in authResponseHeaders (removed from the request, then copied from
// the allow), removes every accept header one way or the other, and no
// later middleware clears an injected header.
func traefikProblems(t *testing.T, h profileHeaders) []string {
	t.Helper()
	var c traefikConfig
	if err := yaml.UnmarshalStrict(readConfig(t, "traefik", "traefik.yaml"), &c); err != nil {
		t.Fatalf("strict parse: %v", err)
	}
	lower := func(l []string) []string {
		out := make([]string, len(l))
		for i, s := range l {
			out[i] = strings.ToLower(s)
		}
		return out
	}
	var out []string
	for name, r := range c.HTTP.Routers {
		var request, response, stripped []string
		authSeen := false
		for _, mwName := range r.Middlewares {
			mw := c.HTTP.Middlewares[mwName]
			switch {
			case mw.ForwardAuth != nil:
				authSeen = true
				request, response = lower(mw.ForwardAuth.AuthRequestHeaders), lower(mw.ForwardAuth.AuthResponseHeaders)
				if len(request) == 0 {
					request = nil // Traefik then sends every header
				}
			case mw.Headers != nil && authSeen:
				for k, v := range mw.Headers.CustomRequestHeaders {
					if v == "" {
						stripped = append(stripped, strings.ToLower(k))
					}
				}
			}
		}
		for _, a := range append([]string{"authorization"}, h.accept...) {
			if request != nil && !slices.Contains(request, a) {
				out = append(out, fmt.Sprintf("router %s: authRequestHeaders lacks %s: a capability there never reaches extauthz", name, a))
			}
			if !slices.Contains(response, a) && !slices.Contains(stripped, a) {
				out = append(out, fmt.Sprintf("router %s: %s is neither in authResponseHeaders nor stripped after forwardAuth: a capability there would reach the upstream", name, a))
			}
		}
		for _, inj := range h.inject {
			if !slices.Contains(response, inj) {
				out = append(out, fmt.Sprintf("router %s: authResponseHeaders lacks %s: an allow's credential there is dropped", name, inj))
			}
			if slices.Contains(stripped, inj) {
				out = append(out, fmt.Sprintf("router %s: a middleware after forwardAuth clears %s, where the allow set the credential", name, inj))
			}
		}
	}
	return out
}
