package main

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"

	"github.com/extauthz/extauthz/authz"
)

// newHTTPHandler builds what --http-addr serves: the HTTP authorization
// endpoints when --http-container-id-header names the identity header, and,
// with --api-token-file, the capability API beside them. Both are off unless
// configured: the authorization endpoints trust a header for the caller's
// identity, so no default may switch them on. newApp calls it once, so that
// a bad header name or an unreadable --api-token-file stops `serve` (and
// fails `check-config`) instead of disabling something silently.
func (a *app) newHTTPHandler() (http.Handler, error) {
	token, err := readAPIToken(a.opts.apiTokenFile)
	switch {
	case err != nil:
		return nil, err
	case a.opts.httpAddr == "" && (token != "" || a.opts.httpContainerIDHeader != ""):
		return nil, errors.New("--api-token-file and --http-container-id-header need --http-addr: the listener that serves them")
	case a.opts.httpAddr == "":
		return nil, nil
	}
	if a.opts.httpContainerIDHeader == "" && token == "" {
		return nil, errors.New("--http-addr serves nothing: set --http-container-id-header for the HTTP authorization endpoints " +
			"(the header your proxy sets to the caller's container id and strips from clients), or --api-token-file for the capability API")
	}
	var proxy http.Handler = http.NotFoundHandler()
	if a.opts.httpContainerIDHeader != "" {
		if proxy, err = authz.NewHTTPHandler(a.core, authz.HTTPOptions{
			IdentityHeader:   a.opts.httpContainerIDHeader,
			CapabilityHeader: a.opts.capHdr,
			UpstreamScheme:   a.opts.upstreamScheme,
		}); err != nil {
			return nil, fmt.Errorf("--http-container-id-header: %w", err)
		}
	}
	if token == "" {
		return proxy, nil
	}
	api, err := authz.NewAPIHandler(a.core, authz.APIOptions{Token: token, Revocations: a.revocations})
	if err != nil {
		return nil, fmt.Errorf("--api-token-file: %w", err)
	}
	return withAPI(proxy, api), nil
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

// readAPIToken reads the admin token of the issue/redeem API: the file's
// content with surrounding whitespace trimmed. No file means no API. Errors
// name the file, never its content.
func readAPIToken(name string) (string, error) {
	if name == "" {
		return "", nil
	}
	data, err := os.ReadFile(name)
	if err != nil {
		return "", fmt.Errorf("--api-token-file: %w", err)
	}
	tok := strings.TrimSpace(string(data))
	if tok == "" {
		return "", errors.New("--api-token-file: " + name + " is empty")
	}
	return tok, nil
}
