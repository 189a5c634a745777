package policy

import (
	"net/netip"
	"strings"
)

// host is a parsed authority host. Exactly one of name and ip6 is set.
type host struct {
	// name is a DNS name or a canonical IPv4 dotted quad, as received (not
	// lower-cased, to avoid an allocation); compare with equalFoldASCII.
	name string
	// ip6 is a bracketed IPv6 literal, without zone.
	ip6 netip.Addr
}

func (h host) equal(o host) bool {
	if h.ip6.IsValid() || o.ip6.IsValid() {
		return h.ip6 == o.ip6
	}
	return equalFoldASCII(h.name, o.name)
}

// origin is a URL origin normalised the way a WHATWG URL parser does it:
// scheme and host compared case-insensitively, the default port dropped.
type origin struct {
	https bool   // scheme is https (else http)
	host  host   // host
	port  uint16 // 0 means the scheme's default port
}

func (o origin) equal(p origin) bool {
	return o.https == p.https && o.port == p.port && o.host.equal(p.host)
}

// parsedURL is a request or target URL that passed the shape checks.
type parsedURL struct {
	origin
	path     string // raw path, before any '?'
	hasQuery bool   // a '?' was present (even with an empty query)
}

// parseScheme accepts "https" and "http" in any letter case.
func parseScheme(s string) (https bool, err error) {
	switch {
	case equalFoldASCII(s, "https"):
		return true, nil
	case equalFoldASCII(s, "http"):
		return false, nil
	}
	return false, errScheme
}

// parseAuthority parses host[:port] per the request-shape rule.
func parseAuthority(a string, https bool) (origin, error) {
	o := origin{https: https}
	if a == "" {
		return o, errEmptyHost
	}
	// Name the two classic smuggling forms precisely; the grammar below
	// refuses them anyway.
	if strings.IndexByte(a, '@') >= 0 {
		return o, errUserinfo
	}
	if strings.IndexByte(a, '%') >= 0 {
		return o, errHostPercent
	}
	var hostPart, portPart string
	hasPort := false
	if a[0] == '[' {
		end := strings.IndexByte(a, ']')
		if end < 0 {
			return o, errIPv6
		}
		h, err := parseIPv6(a[1:end])
		if err != nil {
			return o, err
		}
		o.host = h
		rest := a[end+1:]
		if rest != "" {
			if rest[0] != ':' {
				return o, errAuthorityChar
			}
			hasPort, portPart = true, rest[1:]
		}
	} else {
		hostPart = a
		if i := strings.IndexByte(a, ':'); i >= 0 {
			hostPart, portPart, hasPort = a[:i], a[i+1:], true
		}
		h, err := parseHostName(hostPart)
		if err != nil {
			return o, err
		}
		o.host = h
	}
	if hasPort {
		p, err := parsePort(portPart)
		if err != nil {
			return o, err
		}
		if (https && p == 443) || (!https && p == 80) {
			p = 0
		}
		o.port = p
	}
	return o, nil
}

// parseIPv6 parses the text between brackets. Zones are refused (they would
// need '%'); so are IPv4 addresses in brackets.
func parseIPv6(s string) (host, error) {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(isHex(c) || c == ':' || c == '.') {
			return host{}, errIPv6
		}
	}
	ip, err := netip.ParseAddr(s)
	if err != nil || !ip.Is6() || ip.Zone() != "" {
		return host{}, errIPv6
	}
	return host{ip6: ip}, nil
}

// parseHostName accepts an ASCII host name (letters, digits, '-', '_', '.')
// or a canonical IPv4 dotted quad. A name whose last label looks like a
// number is an IPv4 address to a WHATWG parser (127.1, 0x7f.1, 2130706433,
// 1.2.3.4.), so it must then be a canonical dotted quad.
func parseHostName(s string) (host, error) {
	if s == "" {
		return host{}, errEmptyHost
	}
	labelStart := 0
	for i := 0; i <= len(s); i++ {
		if i == len(s) || s[i] == '.' {
			if i == labelStart && !(i == len(s) && i > 0) {
				// Empty label: only a single trailing dot is allowed.
				return host{}, errHostLabel
			}
			labelStart = i + 1
			continue
		}
		c := s[i]
		if !(isAlnum(c) || c == '-' || c == '_') {
			return host{}, errAuthorityChar
		}
	}
	if s == "." {
		return host{}, errHostLabel
	}
	if endsInNumber(s) {
		if !isCanonicalIPv4(s) {
			return host{}, errIPv4
		}
	}
	return host{name: s}, nil
}

// endsInNumber reports whether the last label (ignoring one trailing dot) is
// all digits or a 0x hex number, the WHATWG "ends in a number" test.
func endsInNumber(s string) bool {
	s = strings.TrimSuffix(s, ".")
	last := s[strings.LastIndexByte(s, '.')+1:]
	if last == "" {
		return false
	}
	if len(last) >= 2 && last[0] == '0' && (last[1] == 'x' || last[1] == 'X') {
		for i := 2; i < len(last); i++ {
			if !isHex(last[i]) {
				return false
			}
		}
		return true
	}
	for i := 0; i < len(last); i++ {
		if !isDigit(last[i]) {
			return false
		}
	}
	return true
}

// isCanonicalIPv4 reports whether s is exactly four decimal parts 0-255
// without leading zeros.
func isCanonicalIPv4(s string) bool {
	parts := 0
	for len(s) > 0 {
		i := strings.IndexByte(s, '.')
		var p string
		if i < 0 {
			p, s = s, ""
		} else {
			p, s = s[:i], s[i+1:]
			if s == "" {
				return false // trailing dot
			}
		}
		if p == "" || len(p) > 3 || (len(p) > 1 && p[0] == '0') {
			return false
		}
		v := 0
		for j := 0; j < len(p); j++ {
			if !isDigit(p[j]) {
				return false
			}
			v = v*10 + int(p[j]-'0')
		}
		if v > 255 {
			return false
		}
		parts++
	}
	return parts == 4
}

// parsePort accepts 1-65535 in canonical decimal form.
func parsePort(s string) (uint16, error) {
	if s == "" || len(s) > 5 || s[0] == '0' {
		return 0, errPort
	}
	v := 0
	for i := 0; i < len(s); i++ {
		if !isDigit(s[i]) {
			return 0, errPort
		}
		v = v*10 + int(s[i]-'0')
	}
	if v > 65535 {
		return 0, errPort
	}
	return uint16(v), nil
}

// splitAbsolute splits an absolute URL into scheme, authority and the rest
// (path with query). It refuses fragments and anything but "scheme://".
func splitAbsolute(raw string) (scheme, authority, rest string, err error) {
	i := strings.IndexByte(raw, ':')
	if i <= 0 || !strings.HasPrefix(raw[i:], "://") {
		return "", "", "", errNotAbsolute
	}
	scheme, raw = raw[:i], raw[i+3:]
	end := len(raw)
	for j := 0; j < len(raw); j++ {
		if c := raw[j]; c == '/' || c == '?' || c == '#' || c == '\\' {
			end = j
			break
		}
	}
	authority, rest = raw[:end], raw[end:]
	if strings.IndexByte(rest, '#') >= 0 {
		return "", "", "", errFragment
	}
	if rest != "" && rest[0] == '\\' {
		return "", "", "", errBackslash
	}
	return scheme, authority, rest, nil
}

// parseParts checks scheme, authority and path-with-query of a URL.
// It does not apply the plain-http rule (that depends on the Policy).
func parseParts(scheme, authority, pathQuery string) (parsedURL, error) {
	var u parsedURL
	https, err := parseScheme(scheme)
	if err != nil {
		return u, err
	}
	u.origin, err = parseAuthority(authority, https)
	if err != nil {
		return u, err
	}
	path := pathQuery
	if i := strings.IndexByte(pathQuery, '?'); i >= 0 {
		path = pathQuery[:i]
		u.hasQuery = true
		if err := checkQuery(pathQuery[i+1:]); err != nil {
			return u, err
		}
	}
	if err := checkPath(path); err != nil {
		return u, err
	}
	u.path = path
	return u, nil
}

// ParseURL splits a full absolute URL (for the redeem API) into a Request,
// checking the request shape and path safety. An empty path becomes "/" as a
// browser would send it. The plain-http development rule is applied later, by
// Classify. Errors wrap ErrInvalidUpstreamURL.
func ParseURL(raw string) (Request, error) {
	scheme, authority, rest, err := splitAbsolute(raw)
	if err != nil {
		return Request{}, err
	}
	if rest == "" || rest[0] == '?' {
		rest = "/" + rest
	}
	if _, err := parseParts(scheme, authority, rest); err != nil {
		return Request{}, err
	}
	return Request{Scheme: strings.ToLower(scheme), Authority: authority, Path: rest}, nil
}

// parseTarget parses a target base URL: like a request, but with no query,
// and an empty path allowed. The returned path is the base path (trailing
// slashes removed, so "/" becomes "").
func parseTarget(raw string) (parsedURL, error) {
	scheme, authority, rest, err := splitAbsolute(raw)
	if err != nil {
		return parsedURL{}, err
	}
	if strings.IndexByte(rest, '?') >= 0 {
		return parsedURL{}, errTargetQuery
	}
	if rest == "" {
		rest = "/"
	}
	u, err := parseParts(scheme, authority, rest)
	if err != nil {
		return u, err
	}
	u.path = strings.TrimRight(u.path, "/")
	return u, nil
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }
func isAlpha(c byte) bool { return 'a' <= c|0x20 && c|0x20 <= 'z' }
func isAlnum(c byte) bool { return isDigit(c) || isAlpha(c) }
func isHex(c byte) bool   { return isDigit(c) || ('a' <= c|0x20 && c|0x20 <= 'f') }

func unhex(c byte) byte {
	if isDigit(c) {
		return c - '0'
	}
	return c | 0x20 - 'a' + 10
}

func lowerASCII(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + ('a' - 'A')
	}
	return c
}

// equalFoldASCII is strings.EqualFold restricted to ASCII letters (Unicode
// folding would equate 'K' and the Kelvin sign).
func equalFoldASCII(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		if lowerASCII(a[i]) != lowerASCII(b[i]) {
			return false
		}
	}
	return true
}
