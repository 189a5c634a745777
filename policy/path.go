package policy

import "unicode/utf8"

// maxDecodeRounds is how many times checkPath percent-decodes a path.
const maxDecodeRounds = 4

// pathChar marks the bytes RFC 3986 allows unencoded in a path (pchar plus
// '/'), minus ';', which the policy refuses. '%' is handled separately.
var pathChar = func() (t [256]bool) {
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
	}
	for c := 'A'; c <= 'Z'; c++ {
		t[c] = true
	}
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for _, c := range "-._~!$&'()*+,=:@/" {
		t[c] = true
	}
	return t
}()

// queryBad marks bytes refused in a query: control characters, space, DEL,
// non-ASCII, and the characters a WHATWG serialiser always percent-encodes in
// a query ('"', '#', '<', '>'), so no real client sends them raw.
var queryBad = func() (t [256]bool) {
	for c := 0; c < 0x21; c++ {
		t[c] = true
	}
	for c := 0x7f; c < 0x100; c++ {
		t[c] = true
	}
	for _, c := range "\"#<>" {
		t[c] = true
	}
	return t
}()

// isUnreserved reports whether c is an RFC 3986 unreserved character.
func isUnreserved(c byte) bool {
	return isAlnum(c) || c == '-' || c == '.' || c == '_' || c == '~'
}

func isControl(c byte) bool { return c < 0x20 || c == 0x7f }

// checkQuery applies the query rule: any percent-encoding is allowed, but no
// byte in queryBad.
func checkQuery(q string) error {
	for i := 0; i < len(q); i++ {
		if queryBad[q[i]] {
			return errQueryChar
		}
	}
	return nil
}

// checkPath applies the path-safety rule to a raw path (no query).
func checkPath(p string) error {
	if p == "" || p[0] != '/' {
		return errPathStart
	}
	hasPct := false
	for i := 0; i < len(p); i++ {
		c := p[i]
		if pathChar[c] {
			if c == '/' && i+1 < len(p) && p[i+1] == '/' {
				return errEmptySegment
			}
			continue
		}
		switch {
		case c == '%':
			hasPct = true // escapes are checked by checkRound
		case c == ';':
			return errSemicolon
		case c == ' ':
			return errSpace
		case isControl(c):
			return errControl
		case c == '\\':
			return errBackslash
		default:
			return errPathChar
		}
	}
	if err := checkRound(p); err != nil {
		return err
	}
	if !hasPct {
		return nil
	}
	// Decode in place, on the stack for ordinary paths.
	var stack [512]byte
	var buf []byte
	if len(p) <= len(stack) {
		buf = append(stack[:0], p...)
	} else {
		buf = []byte(p)
	}
	for range maxDecodeRounds {
		var err error
		if buf, err = decodeOnce(buf); err != nil {
			return err
		}
		if !utf8.Valid(buf) {
			return errInvalidUTF8
		}
		if err := checkRound(buf); err != nil {
			return err
		}
		if !containsByte(buf, '%') {
			return nil
		}
	}
	return errTooManyEncodings
}

// checkRound applies the checks made before every decoding round (and after
// the last): no backslash, no control character, every escape well formed and
// neither an encoded separator (%2f, %5c) nor an encoded unreserved character,
// and no dot segment (literal or with %2e).
func checkRound[S string | []byte](s S) error {
	segStart := 0
	for i := 0; i <= len(s); i++ {
		if i == len(s) || s[i] == '/' {
			if isDotSegment(s[segStart:i]) {
				return errDotSegment
			}
			segStart = i + 1
			continue
		}
		c := s[i]
		switch {
		case c == '\\':
			return errBackslash
		case isControl(c):
			return errControl
		case c == '%':
			if i+2 >= len(s) || !isHex(s[i+1]) || !isHex(s[i+2]) {
				return errMalformedEscape
			}
			v := unhex(s[i+1])<<4 | unhex(s[i+2])
			if v == '/' || v == '\\' {
				return errEncodedSeparator
			}
			if v != '.' && isUnreserved(v) {
				// '.' is left to isDotSegment / errEncodedUnreserved below so
				// that "/%2e%2e/" reports a dot segment.
				return errEncodedUnreserved
			}
		}
	}
	// An encoded '.' that is not part of a dot segment is still an encoded
	// unreserved character.
	for i := 0; i+2 < len(s); i++ {
		if s[i] == '%' && s[i+1] == '2' && (s[i+2] == 'e' || s[i+2] == 'E') {
			return errEncodedUnreserved
		}
	}
	return nil
}

// isDotSegment reports whether seg consists only of dots, literal or encoded
// as %2e. That covers "." and ".." and also "..." and longer runs, which some
// servers (notably on Windows) treat like "..".
func isDotSegment[S string | []byte](seg S) bool {
	if len(seg) == 0 {
		return false
	}
	for i := 0; i < len(seg); {
		switch {
		case seg[i] == '.':
			i++
		case seg[i] == '%' && i+2 < len(seg) && seg[i+1] == '2' && (seg[i+2] == 'e' || seg[i+2] == 'E'):
			i += 3
		default:
			return false
		}
	}
	return true
}

// decodeOnce percent-decodes b in place. The caller has checked (checkRound)
// that every escape is well formed.
func decodeOnce(b []byte) ([]byte, error) {
	w := 0
	for r := 0; r < len(b); r++ {
		c := b[r]
		if c == '%' {
			if r+2 >= len(b) || !isHex(b[r+1]) || !isHex(b[r+2]) {
				return nil, errMalformedEscape
			}
			c = unhex(b[r+1])<<4 | unhex(b[r+2])
			r += 2
		}
		b[w] = c
		w++
	}
	return b[:w], nil
}

func containsByte(b []byte, c byte) bool {
	for _, x := range b {
		if x == c {
			return true
		}
	}
	return false
}
