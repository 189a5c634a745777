package policy

import (
	"bytes"
	"strings"
)

// This file keeps the route classifier as it was before the route table
// (policy/table.go), verbatim but for its names, as the oracle of the
// differential tests in table_test.go. It goes once the table has proven
// itself.

// Provider prefix derivations (see oldUnderProvider).
const (
	oldProvSelf     = iota // base ends in /api/openrouter or /api/gateway
	oldProvUnderAPI        // base ends in /api
	oldProvDefault         // anything else
)

// oldTargets are the three parsed targets, as the old classifier took them.
type oldTargets struct {
	backend, provider, ingest parsedURL
}

// oldClassify applies the route rules, first match wins.
func oldClassify(r parsedURL, t oldTargets, kiloSessionID string) (Route, error) {
	path := r.path
	onBackend := r.origin.equal(t.backend.origin) && oldWithin(path, t.backend.path)

	if r.origin.equal(t.provider.origin) && oldWithin(path, t.provider.path) && oldUnderProvider(path, t.provider.path) {
		return Route{Class: ProviderModel, Credential: CredentialProvider}, nil
	}
	if onBackend && oldIsOrgModels(path, t.backend.path) {
		return Route{Class: OrganizationModels, Credential: CredentialProvider}, nil
	}
	if r.origin.equal(t.ingest.origin) && oldWithin(path, t.ingest.path) && oldIsOwnSessionRoute(path, t.ingest.path, kiloSessionID) {
		return Route{Class: SessionIngest, Credential: CredentialUser}, nil
	}
	if !onBackend {
		return Route{}, errNoRoute
	}
	if err := oldBackendExclusions(r, t); err != nil {
		return Route{}, err
	}
	return Route{Class: BackendAPI, Credential: CredentialUser}, nil
}

// oldBackendExclusions keeps the catch-all from serving, with the user
// credential, what some upstream router would send to a provider route or
// to another session's ingest route. It compares loose forms (see
// loosePath): decoded, case-folded, an excluded name also matching with a
// format suffix (see looseNameEnd), on any origin that may reach the same
// server as the provider or session-ingest target (see sameServer).
func oldBackendExclusions(r parsedURL, t oldTargets) error {
	var pathBuf [512]byte
	var baseBuf [256]byte
	lpath, ok := loosePath(pathBuf[:], r.path)
	if !ok {
		return oldErrProviderShaped // unreachable: r.path passed checkPath
	}
	if oldLooseProviderShaped(lpath, t.backend.path, baseBuf[:]) ||
		(sameServer(r.origin, t.provider.origin) && oldLooseProviderShaped(lpath, t.provider.path, baseBuf[:])) {
		return oldErrProviderShaped
	}
	if sameServer(r.origin, t.ingest.origin) && oldLooseSessionShaped(lpath, t.ingest.path, baseBuf[:]) {
		return oldErrIngestShaped
	}
	return nil
}

// within reports whether path equals base or is below it (whole segments).
func oldWithin(path, base string) bool {
	return len(path) >= len(base) && path[:len(base)] == base &&
		(len(path) == len(base) || path[len(base)] == '/')
}

// atOrBelow reports whether path is base+suffix or below it, matching whole
// segments, exact case.
func oldAtOrBelow(path, base, suffix string) bool {
	n := len(base) + len(suffix)
	return len(path) >= n && path[:len(base)] == base && path[len(base):n] == suffix &&
		(len(path) == n || path[n] == '/')
}

// underProvider reports whether path is at or below one of the provider
// prefixes derived from base, exact case:
//   - base itself if it ends in /api/openrouter or /api/gateway;
//   - else base+/openrouter and base+/gateway if it ends in /api;
//   - else base+/api/openrouter and base+/api/gateway.
func oldUnderProvider(path, base string) bool {
	switch oldProviderKind(base) {
	case oldProvSelf:
		return oldAtOrBelow(path, base, "")
	case oldProvUnderAPI:
		return oldAtOrBelow(path, base, "/openrouter") || oldAtOrBelow(path, base, "/gateway")
	}
	return oldAtOrBelow(path, base, "/api/openrouter") || oldAtOrBelow(path, base, "/api/gateway")
}

// isOrgModels reports whether path is {orgs}/{one non-empty segment}/models
// or below it, {orgs} being base+/organizations when base ends in /api, else
// base+/api/organizations. Exact case. An organization segment holding an
// escape that decodes (at any depth) to '?', '#' or ';' does not count: an
// upstream that decodes before splitting those off would route
// /api/organizations/x%3F/models to /api/organizations/x, with the provider
// credential. Such a request falls through to the backend catch-all.
func oldIsOrgModels(path, base string) bool {
	orgs := "/api/organizations/"
	if strings.HasSuffix(base, "/api") {
		orgs = "/organizations/"
	}
	if !strings.HasPrefix(path, base) {
		return false
	}
	rest := path[len(base):]
	if !strings.HasPrefix(rest, orgs) {
		return false
	}
	seg, rest := cutSegment(rest[len(orgs):])
	if seg == "" || hasTerminatorEscape(seg) {
		return false
	}
	return oldAtOrBelow(rest, "", "/models")
}

// isOwnSessionRoute reports whether path is exactly
// base+/api/session/{encodeURIComponent(id)}/(export|import|ingest).
func oldIsOwnSessionRoute(path, base, id string) bool {
	const session = "/api/session/"
	if !strings.HasPrefix(path, base) || !strings.HasPrefix(path[len(base):], session) {
		return false
	}
	seg, rest := cutSegment(path[len(base)+len(session):])
	switch rest {
	case "/export", "/import", "/ingest":
		return matchURIComponent(seg, id)
	}
	return false
}

// looseAtOrBelow reports whether lpath is base+suffix or below it, the last
// segment of base+suffix also matching with a format suffix (looseNameEnd);
// all three are loose forms. Every caller's base+suffix ends in an excluded
// name.
func oldLooseAtOrBelow(lpath, base []byte, suffix string) bool {
	if !bytes.HasPrefix(lpath, base) {
		return false
	}
	rest := lpath[len(base):]
	if len(rest) < len(suffix) || string(rest[:len(suffix)]) != suffix {
		return false
	}
	return looseNameEnd(rest[len(suffix):])
}

func oldProviderKind(base string) int {
	switch {
	case strings.HasSuffix(base, "/api/openrouter"), strings.HasSuffix(base, "/api/gateway"):
		return oldProvSelf
	case strings.HasSuffix(base, "/api"):
		return oldProvUnderAPI
	}
	return oldProvDefault
}

func oldLooseProviderKind(lbase []byte) int {
	switch {
	case oldHasSuffixString(lbase, "/api/openrouter"), oldHasSuffixString(lbase, "/api/gateway"):
		return oldProvSelf
	case oldHasSuffixString(lbase, "/api"):
		return oldProvUnderAPI
	}
	return oldProvDefault
}

func oldHasSuffixString(b []byte, suffix string) bool {
	return len(b) >= len(suffix) && string(b[len(b)-len(suffix):]) == suffix
}

func oldLooseUnderProviderKind(lpath, lbase []byte, kind int) bool {
	switch kind {
	case oldProvSelf:
		return oldLooseAtOrBelow(lpath, lbase, "")
	case oldProvUnderAPI:
		return oldLooseAtOrBelow(lpath, lbase, "/openrouter") || oldLooseAtOrBelow(lpath, lbase, "/gateway")
	}
	return oldLooseAtOrBelow(lpath, lbase, "/api/openrouter") || oldLooseAtOrBelow(lpath, lbase, "/api/gateway")
}

// looseProviderShaped reports whether lpath is at or below a provider prefix
// of base, its last segment also with a format suffix, derived both from base as given (the exact rule) and from its
// loose form (as a case-insensitive router would see it): for base "/API"
// the exact rule gives /API/api/openrouter, the loose one /api/openrouter.
// buf is scratch space for the loose base.
func oldLooseProviderShaped(lpath []byte, base string, buf []byte) bool {
	lbase, ok := loosePath(buf, base)
	if !ok {
		return true // fail closed; targets passed checkPath
	}
	exact, loose := oldProviderKind(base), oldLooseProviderKind(lbase)
	return oldLooseUnderProviderKind(lpath, lbase, exact) ||
		(loose != exact && oldLooseUnderProviderKind(lpath, lbase, loose))
}

// looseSessionShaped reports whether lpath is at or below
// base+/api/session/{any one segment}/(export|import|ingest), the action
// also with a format suffix, base given raw. buf is scratch space for the
// loose base.
func oldLooseSessionShaped(lpath []byte, base string, buf []byte) bool {
	lbase, ok := loosePath(buf, base)
	if !ok {
		return true
	}
	const session = "/api/session/"
	if !bytes.HasPrefix(lpath, lbase) {
		return false
	}
	rest := lpath[len(lbase):]
	if len(rest) < len(session) || string(rest[:len(session)]) != session {
		return false
	}
	rest = rest[len(session):]
	i := bytes.IndexByte(rest, '/')
	if i <= 0 {
		return false
	}
	rest = rest[i:]
	for _, action := range [...]string{"/export", "/import", "/ingest"} {
		if oldLooseAtOrBelow(rest, nil, action) {
			return true
		}
	}
	return false
}

var (
	oldErrProviderShaped = notAllowed("provider-shaped path on the backend")
	oldErrIngestShaped   = notAllowed("session-ingest-shaped path on the backend")
)
