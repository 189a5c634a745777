package authz

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/extauthz/extauthz/revocation"
)

// TestEndpointsDisjoint: a target matches at most one entry of the route
// table whatever its order (no exact path starts with a prefix), and names
// and routes are unique.
func TestEndpointsDisjoint(t *testing.T) {
	names, routes := map[string]bool{}, map[string]bool{}
	for _, e := range endpoints {
		if names[e.Name] || routes[e.Route] || e.Name == "" || e.Protocol == "" {
			t.Errorf("endpoint %+v: empty, or its name or route repeats", e)
		}
		names[e.Name], routes[e.Route] = true, true
		for _, p := range endpoints {
			if p.prefix && p != e && strings.HasPrefix(e.path, p.path) {
				t.Errorf("%s starts with the prefix %s: the table's order would decide", e.path, p.path)
			}
		}
		if want := e.path + map[bool]string{true: "/*"}[e.prefix]; e.Route != want {
			t.Errorf("%s: route %q; want %q", e.Name, e.Route, want)
		}
	}
}

// TestEndpointOf: the endpoint of a raw request target. An exact path
// matches the target before "?"; the prefix matches the raw target, query
// included, and the rest is the original request's target. Nothing is
// cleaned or decoded.
func TestEndpointOf(t *testing.T) {
	for _, tc := range []struct {
		target, name, rest string
	}{
		{ForwardPath, "forward-auth", ""},
		{ForwardPath + "?a=b", "forward-auth", ""},
		{ForwardPath + "/", "", ""},
		{ForwardPath + "x", "", ""},
		{"/v1/x/../authz/forward", "", ""},
		{"/V1/authz/forward", "", ""},
		{"/v1/authz/%66orward", "", ""},
		{EnvoyPathPrefix + "/api/x?q=1", "envoy http_service", "/api/x?q=1"},
		{EnvoyPathPrefix + "//api/../x", "envoy http_service", "//api/../x"},
		{EnvoyPathPrefix, "envoy http_service", ""},
		{EnvoyPathPrefix + "?x", "envoy http_service", "?x"},
		{EnvoyPathPrefix + "x", "envoy http_service", "x"},
		{EnvoyPathPrefix + IssuePath, "envoy http_service", IssuePath},
		{IssuePath, "issue", ""},
		{RedeemPath + "?x=1", "redeem", ""},
		{RevokePath, "revoke", ""},
		{RevocationsPath + "?limit=1&after=c", "revocations", ""},
		{IssuePath + "/", "", ""},
		{"/", "", ""},
		{"*", "", ""},
	} {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.RequestURI = tc.target
		id, rest := endpointOf(r)
		ep, ok := EndpointOf(r)
		if ok != (tc.name != "") || ep.Name != tc.name || rest != tc.rest || (id == epNone) == ok {
			t.Errorf("%q: endpoint %q (%v), rest %q; want %q, rest %q", tc.target, ep.Name, ok, rest, tc.name, tc.rest)
		}
	}
	// Without RequestURI (a request made in-process), the URL's raw form.
	r := httptest.NewRequest(http.MethodGet, EnvoyPathPrefix+"/a%2Fb?q", nil)
	r.RequestURI = ""
	if id, rest := endpointOf(r); id != epEnvoy || rest != "/a%2Fb?q" {
		t.Errorf("without RequestURI: endpoint %d, rest %q; want envoy, /a%%2Fb?q", id, rest)
	}
}

// TestHandlersServeTheTable: HTTPHandler serves exactly the table's
// endpoints that are not API, APIHandler exactly the API ones; each other
// target is their 404.
func TestHandlersServeTheTable(t *testing.T) {
	core := newTestCore(t, nil, nil)
	proxy, err := NewHTTPHandler(core, HTTPOptions{})
	if err != nil {
		t.Fatal(err)
	}
	api, err := NewAPIHandler(core, APIOptions{Token: testAPIToken, Revocations: revocation.NewMemoryStore()})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range endpoints {
		for _, h := range []struct {
			name   string
			h      http.Handler
			serves bool
		}{{"HTTPHandler", proxy, !e.API}, {"APIHandler", api, e.API}} {
			w := httptest.NewRecorder()
			h.h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, e.path, nil))
			notFound := w.Code == http.StatusNotFound && strings.Contains(w.Body.String(), `"not_found"`)
			if notFound == h.serves {
				t.Errorf("%s on %s (%s): %d %s; serves it: %v", h.name, e.path, e.Name, w.Code, w.Body, h.serves)
			}
		}
	}
}
