package capability

// The lexical half of decodeClaims: strings, numbers, white space and the
// errors that describe them by offset and member name, never by value.

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/bits"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/extauthz/extauthz/internal/strictjson"
)

// unquote reads a JSON string and appends its value to buf. It refuses
// what jsontext refuses: control characters, invalid UTF-8, unknown
// escapes and surrogate escapes that do not pair.
func (d *claimsDecoder) unquote(buf []byte) ([]byte, error) {
	in, i := d.in, d.pos
	if i >= len(in) {
		return buf, d.truncated()
	}
	if in[i] != '"' {
		return buf, d.syntax()
	}
	i++
	from := i // the start of the bytes not yet copied to buf
	for {
		i = plainRun(in, i)
		if i >= len(in) {
			d.pos = i
			return buf, d.truncated()
		}
		switch c := in[i]; {
		case c == '"':
			buf = append(buf, in[from:i]...)
			d.pos = i + 1
			return buf, nil
		case c == '\\':
			buf = append(buf, in[from:i]...)
			if i+1 >= len(in) {
				d.pos = i
				return buf, d.truncated()
			}
			switch e := in[i+1]; e {
			case '"', '\\', '/':
				buf = append(buf, e)
			case 'b':
				buf = append(buf, '\b')
			case 'f':
				buf = append(buf, '\f')
			case 'n':
				buf = append(buf, '\n')
			case 'r':
				buf = append(buf, '\r')
			case 't':
				buf = append(buf, '\t')
			case 'u':
				r, ok := hex4(in, i+2)
				if ok && utf16.IsSurrogate(r) {
					// The pair's second half must follow at once.
					var r2 rune
					if r2, ok = hex4(in, i+8); ok && in[i+6] == '\\' && in[i+7] == 'u' {
						r = utf16.DecodeRune(r, r2)
						ok = r != utf8.RuneError
						i += 6
					} else {
						ok = false
					}
				}
				if !ok {
					d.pos = i
					return buf, d.syntax()
				}
				buf = utf8.AppendRune(buf, r)
				i += 4
			default:
				d.pos = i
				return buf, d.syntax()
			}
			i += 2
			from = i
		case c < ' ':
			d.pos = i
			return buf, d.syntax()
		default: // a multi-byte sequence
			r, n := utf8.DecodeRune(in[i:])
			if r == utf8.RuneError && n == 1 {
				d.pos = i
				return buf, jsonErrorf("invalid JSON at byte %d: invalid UTF-8", i)
			}
			i += n
		}
	}
}

// plainRun returns the index of the first byte from in[i] on that a JSON
// string does not hold as it is (see plainByte), or len(in). It tests eight
// bytes at a time: a byte below ' ' borrows in the first subtraction, a '"'
// or '\\' becomes zero after the XOR and borrows in its subtraction, and a
// byte from 0x80 up has its high bit set already. A borrow can only mark
// bytes after the one that caused it, so the lowest mark is exact.
func plainRun(in []byte, i int) int {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	for ; i >= 0 && i+8 <= len(in); i += 8 {
		x := binary.LittleEndian.Uint64(in[i:])
		q, bs := x^('"'*ones), x^('\\'*ones)
		if m := ((x - ' '*ones) | (q - ones) | (bs - ones) | x) & highs; m != 0 {
			return i + bits.TrailingZeros64(m)/8
		}
	}
	for i < len(in) && plainByte[in[i]] {
		i++
	}
	return i
}

// plainByte marks the bytes a JSON string holds as they are: printable
// ASCII but for '"' and '\\'.
var plainByte = func() (t [256]bool) {
	for c := ' '; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// hex4 reads the four hex digits at in[i:].
func hex4(in []byte, i int) (rune, bool) {
	if i < 0 || i+4 > len(in) {
		return 0, false
	}
	var r rune
	for _, c := range in[i : i+4] {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c -= 'a' - 10
		case 'A' <= c && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}

// int reads a number that JavaScript reads as a safe integer (see
// strictjson.Reader.Int, the rule's home): its value as a float64 is whole
// and within ±MaxSafeInteger. A plain integer of up to 15 digits is exact
// as a float64 and safe, so it skips strconv.
func (d *claimsDecoder) int(k int) (int64, error) {
	in, i := d.in, d.pos
	start := i
	if i < len(in) && in[i] != '-' && (in[i] < '0' || in[i] > '9') {
		return 0, d.wrongKind(pointer(k), "a number")
	}
	neg := i < len(in) && in[i] == '-'
	if neg {
		i++
	}
	digits := i
	switch {
	case i >= len(in):
		d.pos = i
		return 0, d.truncated()
	case in[i] == '0':
		i++
	case '1' <= in[i] && in[i] <= '9':
		for i < len(in) && '0' <= in[i] && in[i] <= '9' {
			i++
		}
	default:
		d.pos = i
		return 0, d.syntax()
	}
	simple := i - digits
	if i < len(in) && in[i] == '.' {
		simple = 0
		if i = skipDigits(in, i+1); i < 0 {
			return 0, d.numberError(start)
		}
	}
	if i < len(in) && (in[i] == 'e' || in[i] == 'E') {
		simple = 0
		i++
		if i < len(in) && (in[i] == '+' || in[i] == '-') {
			i++
		}
		if i = skipDigits(in, i); i < 0 {
			return 0, d.numberError(start)
		}
	}
	d.pos = i
	if simple > 0 && simple <= 15 {
		var n int64
		for _, c := range in[digits:i] {
			n = n*10 + int64(c-'0')
		}
		if neg {
			n = -n
		}
		return n, nil
	}
	f, err := strconv.ParseFloat(string(in[start:i]), 64)
	if err != nil || f != math.Trunc(f) || math.Abs(f) > strictjson.MaxSafeInteger {
		return 0, jsonErrorf("at %s: not a safe integer", pointer(k))
	}
	return int64(f), nil
}

// skipDigits returns the end of the one or more digits at in[i:], or -1.
func skipDigits(in []byte, i int) int {
	j := i
	for j < len(in) && '0' <= in[j] && in[j] <= '9' {
		j++
	}
	if j == i {
		return -1
	}
	return j
}

// numberError reports a number cut short or followed by a wrong character.
func (d *claimsDecoder) numberError(start int) error {
	d.pos = start
	return jsonErrorf("invalid JSON at byte %d: malformed number", start)
}

// space skips JSON white space.
func (d *claimsDecoder) space() {
	for d.pos < len(d.in) {
		if c := d.in[d.pos]; c > ' ' || (c != ' ' && c != '\t' && c != '\n' && c != '\r') {
			return
		}
		d.pos++
	}
}

// wrongKind reports a value that is not of the kind want, at the pointer
// at ("" for the top level), by the kind its first byte announces.
func (d *claimsDecoder) wrongKind(at, want string) error {
	if d.pos >= len(d.in) {
		return d.truncated()
	}
	kind := ""
	switch d.in[d.pos] {
	case 'n':
		kind = "null"
	case 't', 'f':
		kind = "boolean"
	case '"':
		kind = "string"
	case '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
		kind = "number"
	case '{':
		kind = "object"
	case '[':
		kind = "array"
	default:
		return d.syntax()
	}
	if at == "" {
		at = "the top level"
	}
	return jsonErrorf("at %s: got a JSON %s, want %s", at, kind, want)
}

func (d *claimsDecoder) syntax() error {
	return jsonErrorf("invalid JSON at byte %d (check quoting, commas, escapes and UTF-8)", d.pos)
}

func (d *claimsDecoder) truncated() error {
	if len(d.in) == 0 {
		return jsonErrorf("invalid JSON: the input is empty")
	}
	return jsonErrorf("invalid JSON: truncated")
}

// jsonErrorf makes a decoding error. Its arguments are offsets and known
// names only, never input.
func jsonErrorf(format string, a ...any) error {
	return fmt.Errorf(format, a...)
}

// unknownName reports an unknown member of the object at parent by its
// offset, never by its name: a token can end up where a name belongs (a
// forgotten `"providerToken":` before its value). A name that matches a
// known one but for case is shown as the known one. (It words the error as
// strictjson does.)
func unknownName(parent string, name []byte, start int, known []string) error {
	in := "in the top-level object"
	if parent != "" {
		in = "in " + parent
	}
	for _, k := range known {
		if strings.EqualFold(string(name), k) {
			return jsonErrorf("unknown field at byte %d %s: field names are case-sensitive, did you mean %s/%s?", start, in, parent, k)
		}
	}
	return jsonErrorf("unknown field at byte %d %s (field names are case-sensitive)", start, in)
}
