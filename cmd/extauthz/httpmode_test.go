package main

import (
	"net/http"
	"net/http/httptest"
	"testing"

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
