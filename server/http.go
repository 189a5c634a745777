package server

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/extauthz/extauthz/authz"
)

// newHTTPHandler builds what --http-addr serves: the HTTP authorization
// endpoints when --http-container-id-header names the identity header, and,
// with --api-token-file, the capability API beside them. Both are off unless
// configured: the authorization endpoints trust a header for the caller's
// identity, so no default may switch them on. New calls it once, so that a
// bad header name or an unreadable --api-token-file stops `serve` (and
// fails `check-config`) instead of disabling something silently.
func (s *Server) newHTTPHandler() (http.Handler, error) {
	c := &s.cfg
	switch {
	case c.HTTPAddr == "" && (c.APITokenFile != "" || c.HTTPIdentityHeader != ""):
		return nil, errors.New("--api-token-file and --http-container-id-header need --http-addr: the listener that serves them")
	case c.HTTPAddr == "":
		return nil, nil
	case c.HTTPIdentityHeader == "" && c.APITokenFile == "":
		return nil, errors.New("--http-addr serves nothing: set --http-container-id-header for the HTTP authorization endpoints " +
			"(the header your proxy sets to the caller's container id and strips from clients), or --api-token-file for the capability API")
	}
	var proxy http.Handler = http.NotFoundHandler()
	if c.HTTPIdentityHeader != "" {
		var err error
		if proxy, err = authz.NewHTTPHandler(s.core, authz.HTTPOptions{
			IdentityHeader:   c.HTTPIdentityHeader,
			CapabilityHeader: c.CapabilityHeader,
			UpstreamScheme:   c.UpstreamScheme,
		}); err != nil {
			return nil, fmt.Errorf("--http-container-id-header: %w", err)
		}
	}
	if c.APITokenFile == "" {
		return proxy, nil
	}
	api, err := s.apiHandler()
	if err != nil {
		return nil, err
	}
	return withAPI(proxy, api), nil
}

// apiHandler is the capability API, guarded by the token in
// --api-token-file: the file's content with surrounding white space
// trimmed. The file is reloaded like the key file; from the moment a new
// token is in force, the old one is refused, and a bad edit (an empty or
// too short token) keeps the current one.
func (s *Server) apiHandler() (http.Handler, error) {
	name := s.cfg.APITokenFile
	r, err := loadReloadable(func(c [][]byte) (*authz.APIHandler, error) {
		token, err := SecretText(name, c[0])
		if err != nil {
			return nil, fmt.Errorf("--api-token-file: %w", err)
		}
		api, err := authz.NewAPIHandler(s.core, authz.APIOptions{Token: token, Revocations: s.revocations})
		if err != nil {
			return nil, fmt.Errorf("--api-token-file %s: %w", name, err)
		}
		return api, nil
	}, watchedFile{"--api-token-file", name})
	if err != nil {
		return nil, err
	}
	api := watch(s, r, "API token reloaded", "API token reload failed; keeping the current token")
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		api.current().ServeHTTP(w, r)
	}), nil
}

// withAPI serves the capability API's endpoints with api and every other
// request with proxy, routed as the handlers route (authz.EndpointOf, on
// the raw request target).
func withAPI(proxy, api http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if ep, ok := authz.EndpointOf(r); ok && ep.API {
			api.ServeHTTP(w, r)
			return
		}
		proxy.ServeHTTP(w, r)
	})
}
