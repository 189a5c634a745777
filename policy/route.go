package policy

import (
	"unicode/utf8"
)

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
