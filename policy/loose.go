package policy

import (
	"bytes"
	"net/netip"
	"strings"
)

// This file holds the catch-all's guards (see Guard): the comparisons behind
// the backend exclusions of docs/decisions.md, section 4.5. They must catch
// every path that some upstream router could send to a guarded route, so
// they compare loosely: a superset of what any of those routers would match.
// (The positive route matches in pattern.go compare exactly.)

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

// guard refuses, for the catch-all win, a path shaped like a guarded route
// (see Guard): below that route's target base path on an origin that may
// reach its server, and, for GuardEveryTarget, below the catch-all's own base
// path.
func (t *table) guard(r parsedURL, targets *[numTargets]parsedURL, win *route) error {
	var pathBuf [512]byte
	var baseBuf [256]byte
	lpath, ok := loosePath(pathBuf[:], r.path)
	if !ok {
		return win.shaped // unreachable: r.path passed checkPath
	}
	for i := range t.routes {
		g := &t.routes[i]
		if g == win || g.catchAll || g.Guard == GuardNone {
			continue
		}
		if g.Guard == GuardEveryTarget && g.looseShaped(lpath, winBase(win, targets), baseBuf[:]) {
			return g.shaped
		}
		tg := &g.origin
		if !g.fixed {
			if targets == nil {
				continue
			}
			tg = &targets[g.Target]
		}
		if sameServer(r.origin, tg.origin) && g.looseShaped(lpath, tg.path, baseBuf[:]) {
			return g.shaped
		}
	}
	return nil
}

// winBase is the base path of the catch-all win.
func winBase(win *route, targets *[numTargets]parsedURL) string {
	if win.fixed || targets == nil {
		return win.origin.path
	}
	return targets[win.Target].path
}

// looseShaped reports whether lpath (a loose form) is at or below one of the
// route's patterns resolved against base, loosely: the base path decoded and
// folded, the pattern's bracket absorbed as the base path given raw implies
// and as its loose form implies (base "/API" gives /API/api/openrouter
// exactly and /api/openrouter folded), variables and * as any non-empty
// segment, and the last literal segment (or, when the base absorbed every
// literal, the base's last segment) also matching with a format suffix (see
// looseNameEnd). buf is scratch space for the loose base.
func (r *route) looseShaped(lpath []byte, base string, buf []byte) bool {
	lbase, ok := loosePath(buf, base)
	if !ok {
		return true // fail closed; targets passed checkPath
	}
	collapsedRaw, collapsedLoose := collapsed(r, base), collapsed(r, lbase)
	for i := range r.pats {
		p := &r.pats[i]
		kRaw, kLoose := absorbed(p, base), absorbed(p, lbase)
		if (!collapsedRaw || kRaw == p.shared) && looseMatch(lpath, lbase, p.segs[kRaw:]) {
			return true
		}
		if kLoose != kRaw && (!collapsedLoose || kLoose == p.shared) && looseMatch(lpath, lbase, p.segs[kLoose:]) {
			return true
		}
	}
	return false
}

// looseMatch reports whether lpath is lbase followed by segs (a final **
// ignored) or below it, in the loose comparison of looseShaped. Pattern
// literals are lower-case ASCII or compare as their lower-case forms.
func looseMatch(lpath, lbase []byte, segs []segment) bool {
	if !bytes.HasPrefix(lpath, lbase) {
		return false
	}
	rest := lpath[len(lbase):]
	n := len(segs)
	if n > 0 && segs[n-1].kind == segRest {
		n--
	}
	if n == 0 {
		return looseNameEnd(rest)
	}
	for i, g := range segs[:n] {
		if len(rest) == 0 || rest[0] != '/' {
			return false
		}
		rest = rest[1:]
		if g.kind == segLiteral {
			if !hasPrefixFold(rest, g.text) {
				return false
			}
			rest = rest[len(g.text):]
			if i == n-1 {
				return looseNameEnd(rest)
			}
			continue
		}
		j := bytes.IndexByte(rest, '/')
		if j < 0 {
			j = len(rest)
		}
		if j == 0 {
			return false
		}
		rest = rest[j:]
	}
	return true
}

// hasPrefixFold reports whether b (lower-case) starts with lit, ASCII
// case-insensitively.
func hasPrefixFold(b []byte, lit string) bool {
	if len(b) < len(lit) {
		return false
	}
	for i := 0; i < len(lit); i++ {
		if b[i] != lowerASCII(lit[i]) {
			return false
		}
	}
	return true
}
