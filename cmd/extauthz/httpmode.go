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
// endpoints and, with --api-token-file, the capability API beside them.
// newApp calls it once, so that a bad --http-container-id-header or an
// unreadable or empty --api-token-file stops `serve` (and fails
// `check-config`) instead of disabling the API silently.
func (a *app) newHTTPHandler() (http.Handler, error) {
	token, err := readAPIToken(a.opts.apiTokenFile)
	if err != nil {
		return nil, err
	}
	proxy, err := authz.NewHTTPHandler(a.core, authz.HTTPOptions{
		IdentityHeader:   a.opts.httpContainerIDHeader,
		CapabilityHeader: a.opts.capHdr,
		UpstreamScheme:   a.opts.upstreamScheme,
	})
	if err != nil {
		return nil, fmt.Errorf("HTTP authorization mode: %w", err)
	}
	if token == "" {
		return proxy, nil
	}
	api, err := authz.NewAPIHandler(a.core, authz.APIOptions{Token: token})
	if err != nil {
		return nil, fmt.Errorf("--api-token-file: %w", err)
	}
	return withAPI(proxy, api), nil
}

// withAPI serves the capability API's paths with api and every other path
// with proxy. It matches the raw request path exactly, as the handlers do:
// http.ServeMux would clean the path and redirect, and the Envoy endpoint
// must see the path as received.
func withAPI(proxy, api http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		target := r.RequestURI
		if target == "" {
			target = r.URL.RequestURI()
		}
		switch path, _, _ := strings.Cut(target, "?"); path {
		case authz.IssuePath, authz.RedeemPath:
			api.ServeHTTP(w, r)
		default:
			proxy.ServeHTTP(w, r)
		}
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
