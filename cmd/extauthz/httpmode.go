package main

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"

	"github.com/extauthz/extauthz/authz"
)

// checkHTTPConfig validates the HTTP authorization mode at start-up, so that
// a bad --http-container-id-header or an unreadable or empty --api-token-file
// stops `serve` (and fails `check-config`) instead of disabling the API
// silently. newApp calls it.
func (a *app) checkHTTPConfig() error {
	_, err := a.newHTTPHandler()
	return err
}

// httpHandler serves the HTTP authorization endpoints on --http-addr.
// checkHTTPConfig has already validated the configuration; should the token
// file become unreadable in between, every request is refused (fail closed).
func (a *app) httpHandler() http.Handler {
	h, err := a.newHTTPHandler()
	if err != nil {
		a.log.Error().Err(err).Msg("HTTP authorization endpoints unavailable")
		return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Cache-Control", "no-store")
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte(`{"error":"capability_configuration_error"}`))
		})
	}
	return h
}

func (a *app) newHTTPHandler() (http.Handler, error) {
	token, err := readAPIToken(a.opts.apiTokenFile)
	if err != nil {
		return nil, err
	}
	h, err := authz.NewHTTPHandler(a.core, authz.HTTPOptions{
		IdentityHeader:   a.opts.httpContainerIDHeader,
		CapabilityHeader: a.opts.capHdr,
		UpstreamScheme:   a.opts.upstreamScheme,
		APIToken:         token,
	})
	if err != nil {
		return nil, fmt.Errorf("HTTP authorization mode: %w", err)
	}
	return h, nil
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
