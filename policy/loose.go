package policy

import (
	"bytes"
	"net/netip"
	"strings"
)

// This file holds the comparisons behind the backend exclusions. They must
// catch every path that some upstream router could send to a provider route
// or to a session-ingest route, so they compare loosely: a superset of what
// any of those routers would match. (The positive route matches elsewhere
// compare exactly.)

// sameServer reports whether two origins may reach the same upstream server:
// the same effective port (the scheme's default filled in) and the same host
// once a trailing dot is dropped and an IPv4-mapped IPv6 address is unmapped.
// A browser calls such origins different; a resolver and a TCP socket do not.
// Used only to widen a deny.
func sameServer(a, b origin) bool {
	return a.effectivePort() == b.effectivePort() && a.host.sameAddress(b.host)
}

func (o origin) effectivePort() uint16 {
	switch {
	case o.port != 0:
		return o.port
	case o.https:
		return 443
	}
	return 80
}

func (h host) sameAddress(o host) bool {
	a, aok := h.addr()
	b, bok := o.addr()
	if aok || bok {
		return aok && bok && a == b
	}
	return equalFoldASCII(strings.TrimSuffix(h.name, "."), strings.TrimSuffix(o.name, "."))
}

// addr returns the host as an IP address (IPv4-mapped IPv6 unmapped), if it
// is one. A name that parses as an IP is a canonical dotted quad.
func (h host) addr() (netip.Addr, bool) {
	if h.ip6.IsValid() {
		return h.ip6.Unmap(), true
	}
	if endsInNumber(h.name) {
		ip, err := netip.ParseAddr(h.name)
		return ip, err == nil
	}
	return netip.Addr{}, false
}

// loosePath appends to dst the form of path the exclusions compare: fully
// percent-decoded (path passed checkPath, so that ends within
// maxDecodeRounds and adds no '/'), ASCII lower-cased, and the four
// non-ASCII letters that Unicode-aware case-insensitive comparisons equate
// with ASCII letters (Go's strings.EqualFold, Java's equalsIgnoreCase, PCRE
// in UTF mode) replaced by them: U+017F 'ſ' and U+212A (Kelvin sign) by 's'
// and 'k', U+0130 and U+0131 (dotted and dotless I) by 'i'. ok is false if
// path does not decode, which checkPath excludes (fail closed anyway).
func loosePath(dst []byte, path string) (b []byte, ok bool) {
	b = append(dst[:0], path...)
	for range maxDecodeRounds {
		if !containsByte(b, '%') {
			break
		}
		var err error
		if b, err = decodeOnce(b); err != nil {
			return nil, false
		}
	}
	if containsByte(b, '%') {
		return nil, false
	}
	w := 0
	for r := 0; r < len(b); r++ {
		c := b[r]
		switch {
		case 'A' <= c && c <= 'Z':
			c += 'a' - 'A'
		case c == 0xc5 && r+1 < len(b) && b[r+1] == 0xbf: // ſ
			c, r = 's', r+1
		case c == 0xc4 && r+1 < len(b) && (b[r+1] == 0xb0 || b[r+1] == 0xb1): // İ ı
			c, r = 'i', r+1
		case c == 0xe2 && r+2 < len(b) && b[r+1] == 0x84 && b[r+2] == 0xaa: // Kelvin sign
			c, r = 'k', r+2
		}
		b[w] = c
		w++
	}
	return b[:w], true
}

// looseNameEnd reports whether rest (what follows an excluded name matched
// in a loose path) leaves the name standing on its own: the path or the
// segment ends, or a format suffix starts. Besides '/', a decoded '?', '#'
// or ';' ends the segment: an upstream that decodes before splitting off
// the query or the path parameters would end it there. A '.' starts a
// format suffix ("openrouter.json", "export.", "ingest.v2"): many routers
// map name.json to name.
func looseNameEnd(rest []byte) bool {
	if len(rest) == 0 {
		return true
	}
	switch rest[0] {
	case '/', '?', '#', ';', '.':
		return true
	}
	return false
}

// looseAtOrBelow reports whether lpath is base+suffix or below it, the last
// segment of base+suffix also matching with a format suffix (looseNameEnd);
// all three are loose forms. Every caller's base+suffix ends in an excluded
// name.
func looseAtOrBelow(lpath, base []byte, suffix string) bool {
	if !bytes.HasPrefix(lpath, base) {
		return false
	}
	rest := lpath[len(base):]
	if len(rest) < len(suffix) || string(rest[:len(suffix)]) != suffix {
		return false
	}
	return looseNameEnd(rest[len(suffix):])
}

// Provider prefix derivations (see underProvider).
const (
	provSelf     = iota // base ends in /api/openrouter or /api/gateway
	provUnderAPI        // base ends in /api
	provDefault         // anything else
)

func providerKind(base string) int {
	switch {
	case strings.HasSuffix(base, "/api/openrouter"), strings.HasSuffix(base, "/api/gateway"):
		return provSelf
	case strings.HasSuffix(base, "/api"):
		return provUnderAPI
	}
	return provDefault
}

func looseProviderKind(lbase []byte) int {
	switch {
	case hasSuffixString(lbase, "/api/openrouter"), hasSuffixString(lbase, "/api/gateway"):
		return provSelf
	case hasSuffixString(lbase, "/api"):
		return provUnderAPI
	}
	return provDefault
}

func hasSuffixString(b []byte, suffix string) bool {
	return len(b) >= len(suffix) && string(b[len(b)-len(suffix):]) == suffix
}

func looseUnderProviderKind(lpath, lbase []byte, kind int) bool {
	switch kind {
	case provSelf:
		return looseAtOrBelow(lpath, lbase, "")
	case provUnderAPI:
		return looseAtOrBelow(lpath, lbase, "/openrouter") || looseAtOrBelow(lpath, lbase, "/gateway")
	}
	return looseAtOrBelow(lpath, lbase, "/api/openrouter") || looseAtOrBelow(lpath, lbase, "/api/gateway")
}

// looseProviderShaped reports whether lpath is at or below a provider prefix
// of base, its last segment also with a format suffix, derived both from base as given (the exact rule) and from its
// loose form (as a case-insensitive router would see it): for base "/API"
// the exact rule gives /API/api/openrouter, the loose one /api/openrouter.
// buf is scratch space for the loose base.
func looseProviderShaped(lpath []byte, base string, buf []byte) bool {
	lbase, ok := loosePath(buf, base)
	if !ok {
		return true // fail closed; targets passed checkPath
	}
	exact, loose := providerKind(base), looseProviderKind(lbase)
	return looseUnderProviderKind(lpath, lbase, exact) ||
		(loose != exact && looseUnderProviderKind(lpath, lbase, loose))
}

// looseSessionShaped reports whether lpath is at or below
// base+/api/session/{any one segment}/(export|import|ingest), the action
// also with a format suffix, base given raw. buf is scratch space for the
// loose base.
func looseSessionShaped(lpath []byte, base string, buf []byte) bool {
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
		if looseAtOrBelow(rest, nil, action) {
			return true
		}
	}
	return false
}
