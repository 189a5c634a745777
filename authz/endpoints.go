package authz

import (
	"net/http"
	"strings"
)

// This file is the HTTP listener's routing: which endpoint a request is
// for, matched on the raw request target. HTTPHandler, APIHandler,
// TraceHTTP and the binary's composition all dispatch through it; none
// matches a path of its own. It is not http.ServeMux, which cleans paths and
// redirects: the Envoy endpoint must see the original path exactly as
// received, dot segments and double slashes included, so that the policy
// can reject them.

// Paths of the HTTP listener.
const (
	// ForwardPath is the forward-auth endpoint (nginx auth_request, Traefik
	// forwardAuth, Caddy forward_auth): the original request is described by
	// X-Forwarded-* / X-Original-* headers.
	ForwardPath = "/v1/authz/forward"
	// EnvoyPathPrefix is the Envoy ext_authz http_service endpoint: Envoy
	// sends the original method, authority and headers, and the original path
	// after this prefix (http_service.path_prefix).
	EnvoyPathPrefix = "/v1/authz/envoy"
	// IssuePath and RedeemPath are the capability API, guarded by the admin
	// token.
	IssuePath  = "/v1/capabilities:issue"
	RedeemPath = "/v1/capabilities:redeem"
	// RevokePath and RevocationsPath are the revocation API, guarded by the
	// admin token like the capability API.
	RevokePath      = "/v1/capabilities:revoke"
	RevocationsPath = "/v1/revocations"
)

// Endpoint is one route of the HTTP listener.
type Endpoint struct {
	// Name names the endpoint for people (its spans are "extauthz " and
	// the name: TraceHTTP).
	Name string
	// Route is the endpoint as a route template (http.route): its path, or
	// its prefix followed by "/*".
	Route string
	// Protocol names the endpoint in decision logs and metrics.
	Protocol string
	// API says APIHandler serves it, behind the admin token, answering in
	// a JSON body; else HTTPHandler does, answering a proxy in headers.
	API bool
	// Decides says each request decides or changes something (an
	// authorization, an issue, a revocation); the revocation listing only
	// reads.
	Decides bool

	// path is matched exactly against the raw path (the target before
	// "?"); when prefix, against the start of the whole raw target, and
	// what follows is the original request's target (Envoy's
	// http_service).
	path   string
	prefix bool
}

// endpointID indexes endpoints.
type endpointID int

const (
	epNone endpointID = iota - 1 // no endpoint: 404
	epForward
	epEnvoy
	epIssue
	epRedeem
	epRevoke
	epRevocations
	numEndpoints
)

// endpoints is the HTTP listener's route table. No exact path starts
// with a prefix (TestEndpointsDisjoint), so a target matches at most one.
var endpoints = [numEndpoints]Endpoint{
	epForward:     {Name: "forward-auth", Route: ForwardPath, Protocol: ProtocolForward, Decides: true, path: ForwardPath},
	epEnvoy:       {Name: "envoy http_service", Route: EnvoyPathPrefix + "/*", Protocol: ProtocolEnvoy, Decides: true, path: EnvoyPathPrefix, prefix: true},
	epIssue:       {Name: "issue", Route: IssuePath, Protocol: ProtocolIssue, API: true, Decides: true, path: IssuePath},
	epRedeem:      {Name: "redeem", Route: RedeemPath, Protocol: ProtocolRedeem, API: true, Decides: true, path: RedeemPath},
	epRevoke:      {Name: "revoke", Route: RevokePath, Protocol: ProtocolRevoke, API: true, Decides: true, path: RevokePath},
	epRevocations: {Name: "revocations", Route: RevocationsPath, Protocol: ProtocolRevoke, API: true, path: RevocationsPath},
}

// requestTarget is the request target as received, never cleaned.
func requestTarget(r *http.Request) string {
	if r.RequestURI != "" {
		return r.RequestURI
	}
	return r.URL.RequestURI()
}

// endpointOf is the endpoint r is for (epNone for any other target) and,
// for a prefix endpoint, the raw target after the prefix.
func endpointOf(r *http.Request) (id endpointID, rest string) {
	target := requestTarget(r)
	path, _, _ := strings.Cut(target, "?")
	for i := range endpoints {
		e := &endpoints[i]
		switch {
		case e.prefix && strings.HasPrefix(target, e.path):
			return endpointID(i), target[len(e.path):]
		case !e.prefix && path == e.path:
			return endpointID(i), ""
		}
	}
	return epNone, ""
}

// EndpointOf returns the endpoint of the HTTP listener that serves r,
// matched on the raw request target as the handlers match it; false for a
// target no endpoint serves (a 404).
func EndpointOf(r *http.Request) (Endpoint, bool) {
	id, _ := endpointOf(r)
	if id == epNone {
		return Endpoint{}, false
	}
	return endpoints[id], true
}
