package policy

import (
	"strings"
	"unicode/utf8"
)

// within reports whether path equals base or is below it (whole segments).
func within(path, base string) bool {
	return len(path) >= len(base) && path[:len(base)] == base &&
		(len(path) == len(base) || path[len(base)] == '/')
}

// atOrBelow reports whether path is base+suffix or below it, matching whole
// segments, exact case.
func atOrBelow(path, base, suffix string) bool {
	n := len(base) + len(suffix)
	return len(path) >= n && path[:len(base)] == base && path[len(base):n] == suffix &&
		(len(path) == n || path[n] == '/')
}

// underProvider reports whether path is at or below one of the provider
// prefixes derived from base, exact case:
//   - base itself if it ends in /api/openrouter or /api/gateway;
//   - else base+/openrouter and base+/gateway if it ends in /api;
//   - else base+/api/openrouter and base+/api/gateway.
func underProvider(path, base string) bool {
	switch providerKind(base) {
	case provSelf:
		return atOrBelow(path, base, "")
	case provUnderAPI:
		return atOrBelow(path, base, "/openrouter") || atOrBelow(path, base, "/gateway")
	}
	return atOrBelow(path, base, "/api/openrouter") || atOrBelow(path, base, "/api/gateway")
}

// isOrgModels reports whether path is {orgs}/{one non-empty segment}/models
// or below it, {orgs} being base+/organizations when base ends in /api, else
// base+/api/organizations. Exact case. An organization segment holding an
// escape that decodes (at any depth) to '?', '#' or ';' does not count: an
// upstream that decodes before splitting those off would route
// /api/organizations/x%3F/models to /api/organizations/x, with the provider
// credential. Such a request falls through to the backend catch-all.
func isOrgModels(path, base string) bool {
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
	return atOrBelow(rest, "", "/models")
}

// hasTerminatorEscape reports whether s holds %3F, %23, %3B or %25 (any
// case): an encoded '?', '#' or ';', or an encoded '%' that may hide one.
func hasTerminatorEscape(s string) bool {
	for i := 0; i+2 < len(s); i++ {
		if s[i] != '%' {
			continue
		}
		switch uint16(s[i+1])<<8 | uint16(lowerASCII(s[i+2])) {
		case '3'<<8 | 'f', '2'<<8 | '3', '3'<<8 | 'b', '2'<<8 | '5':
			return true
		}
	}
	return false
}

// cutSegment splits s at its first '/': the segment and the rest (which
// starts with '/' or is empty).
func cutSegment(s string) (seg, rest string) {
	for i := 0; i < len(s); i++ {
		if s[i] == '/' {
			return s[:i], s[i:]
		}
	}
	return s, ""
}

// isOwnSessionRoute reports whether path is exactly
// base+/api/session/{encodeURIComponent(id)}/(export|import|ingest).
func isOwnSessionRoute(path, base, id string) bool {
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

// uriComponentSafe marks the bytes JavaScript's encodeURIComponent leaves
// as they are: A-Z a-z 0-9 - _ . ! ~ * ' ( ).
var uriComponentSafe = func() (t [256]bool) {
	for c := 0; c < 256; c++ {
		t[c] = isAlnum(byte(c))
	}
	for _, c := range "-_.!~*'()" {
		t[c] = true
	}
	return t
}()

const upperHex = "0123456789ABCDEF"

// matchURIComponent reports whether seg is exactly encodeURIComponent(id):
// every other byte of the UTF-8 encoding as %XX with upper-case hex, as
// JavaScript produces it. Lower-case hex does not match (fail closed: the
// issuer's clients never produce it). An empty id or one that is not valid
// UTF-8 (encodeURIComponent would throw) matches nothing.
func matchURIComponent(seg, id string) bool {
	if id == "" || !utf8.ValidString(id) {
		return false
	}
	j := 0
	for i := 0; i < len(id); i++ {
		c := id[i]
		if uriComponentSafe[c] {
			if j >= len(seg) || seg[j] != c {
				return false
			}
			j++
			continue
		}
		if j+3 > len(seg) || seg[j] != '%' || seg[j+1] != upperHex[c>>4] || seg[j+2] != upperHex[c&15] {
			return false
		}
		j += 3
	}
	return j == len(seg)
}
