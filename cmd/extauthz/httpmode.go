package main

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"

	"github.com/extauthz/extauthz/authz"
)

// newHTTPHandler builds the HTTP authorization endpoints for --http-addr.
// newApp calls it once, so that a bad --http-container-id-header or an
// unreadable or empty --api-token-file stops `serve` (and fails
// `check-config`) instead of disabling the API silently.
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
