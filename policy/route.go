package policy

import "unicode/utf8"

// within reports whether path equals base or is below it (whole segments).
func within(path, base string) bool {
	return len(path) >= len(base) && path[:len(base)] == base &&
		(len(path) == len(base) || path[len(base)] == '/')
}

// hasPrefixFold reports whether s starts with prefix, ignoring ASCII case
// when fold is set.
func hasPrefixFold(s, prefix string, fold bool) bool {
	if len(s) < len(prefix) {
		return false
	}
	if fold {
		return equalFoldASCII(s[:len(prefix)], prefix)
	}
	return s[:len(prefix)] == prefix
}

func hasSuffixFold(s, suffix string, fold bool) bool {
	if len(s) < len(suffix) {
		return false
	}
	if fold {
		return equalFoldASCII(s[len(s)-len(suffix):], suffix)
	}
	return s[len(s)-len(suffix):] == suffix
}

// atOrBelow reports whether path is base+suffix or below it, matching whole
// segments.
func atOrBelow(path, base, suffix string, fold bool) bool {
	if !hasPrefixFold(path, base, fold) {
		return false
	}
	rest := path[len(base):]
	if !hasPrefixFold(rest, suffix, fold) {
		return false
	}
	return segmentEnd(rest[len(suffix):], fold)
}

// segmentEnd reports whether rest (what follows a matched prefix) starts a
// new segment or ends the path. For the case-insensitive exclusions (loose)
// an encoded '?' or '#' counts too: an upstream that decodes the path before
// splitting off the query would route /api/gateway%3Fx as /api/gateway.
func segmentEnd(rest string, loose bool) bool {
	if rest == "" || rest[0] == '/' {
		return true
	}
	return loose && len(rest) >= 3 && rest[0] == '%' &&
		(equalFoldASCII(rest[1:3], "3f") || rest[1:3] == "23")
}

// underProvider reports whether path is at or below one of the provider
// prefixes derived from base:
//   - base itself if it ends in /api/openrouter or /api/gateway;
//   - else base+/openrouter and base+/gateway if it ends in /api;
//   - else base+/api/openrouter and base+/api/gateway.
//
// With fold set, both the derivation and the match ignore ASCII case.
func underProvider(path, base string, fold bool) bool {
	switch {
	case hasSuffixFold(base, "/api/openrouter", fold) || hasSuffixFold(base, "/api/gateway", fold):
		return atOrBelow(path, base, "", fold)
	case hasSuffixFold(base, "/api", fold):
		return atOrBelow(path, base, "/openrouter", fold) || atOrBelow(path, base, "/gateway", fold)
	default:
		return atOrBelow(path, base, "/api/openrouter", fold) || atOrBelow(path, base, "/api/gateway", fold)
	}
}

// isOrgModels reports whether path is {orgs}/{one non-empty segment}/models
// or below it, {orgs} being base+/organizations when base ends in /api, else
// base+/api/organizations. Exact case.
func isOrgModels(path, base string) bool {
	orgs := "/api/organizations/"
	if hasSuffixFold(base, "/api", false) {
		orgs = "/organizations/"
	}
	if !hasPrefixFold(path, base, false) {
		return false
	}
	rest := path[len(base):]
	if !hasPrefixFold(rest, orgs, false) {
		return false
	}
	rest = rest[len(orgs):]
	seg, rest := cutSegment(rest)
	if seg == "" {
		return false
	}
	return atOrBelow(rest, "", "/models", false)
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

// sessionRoute reports whether path is base+/api/session/{seg}/{action}
// followed by rest, action being export, import or ingest and rest ending
// the segment (see segmentEnd). With fold set, base and the literal segments
// match regardless of ASCII case.
func sessionRoute(path, base string, fold bool) (seg, rest string, ok bool) {
	const session = "/api/session/"
	if !hasPrefixFold(path, base, fold) {
		return "", "", false
	}
	rest = path[len(base):]
	if !hasPrefixFold(rest, session, fold) {
		return "", "", false
	}
	seg, rest = cutSegment(rest[len(session):])
	if seg == "" || rest == "" {
		return "", "", false
	}
	rest = rest[1:]
	for _, action := range [...]string{"export", "import", "ingest"} {
		if hasPrefixFold(rest, action, fold) && segmentEnd(rest[len(action):], fold) {
			return seg, rest[len(action):], true
		}
	}
	return "", "", false
}

// isOwnSessionRoute reports whether path is exactly
// base+/api/session/{encodeURIComponent(id)}/(export|import|ingest).
func isOwnSessionRoute(path, base, id string) bool {
	seg, rest, ok := sessionRoute(path, base, false)
	return ok && rest == "" && matchURIComponent(seg, id)
}

// isSessionShaped reports whether path is at or below
// base+/api/session/{any one segment}/(export|import|ingest), ignoring case.
func isSessionShaped(path, base string) bool {
	_, _, ok := sessionRoute(path, base, true)
	return ok
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
