package capability

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/bits"
	"strconv"
	"strings"
	"sync"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/extauthz/extauthz/internal/strictjson"
)

// decodeClaims decodes the claims JSON, then checks every claim rule that
// does not depend on the clock. Every error wraps ErrInvalid and never
// quotes the input.
//
// It reads the one shape the claims have in a single pass, instead of
// through internal/strictjson's generic reader: Open runs it on every
// capability it has not seen, and it is most of that cost. It accepts
// exactly the documents the generic reader accepts (docs/decisions.md,
// section 2: one object, exact and unrepeated names after \u escapes are
// decoded, exact types, valid UTF-8 and no lone surrogate escapes, integers
// as JavaScript reads them, nothing after the object) and decodes them to
// the same claims. decodeClaimsReference, in a test file, is the generic
// reader's version; FuzzDecodeClaimsDiff compares the two.
//
// Every string it keeps is copied into one allocation, except purpose and
// target URLs seen before, which are shared (knownURL): the claims never
// alias b, which Open reuses.
func decodeClaims(b []byte) (Claims, error) {
	d := decoders.Get().(*claimsDecoder)
	c, err := d.decode(b)
	d.release()
	return c, err
}

// decode is decodeClaims with d's arena; the caller wipes d (wipe) after.
func (d *claimsDecoder) decode(b []byte) (Claims, error) {
	var c Claims
	d.in = b
	// Where each string member goes, by member index (targets' members
	// after the top-level ones).
	dst := [numClaims + numTargets]*string{
		claimPurpose:               &c.Purpose,
		firstSubjectClaim:          &c.UserID,
		firstSubjectClaim + 1:      &c.CloudAgentSessionID,
		firstSubjectClaim + 2:      &c.KiloSessionID,
		firstSubjectClaim + 3:      &c.OutboundContainerID,
		firstSubjectClaim + 4:      &c.UserToken,
		claimProviderToken:         &c.ProviderToken,
		numClaims + targetBackend:  &c.Targets.BackendBaseURL,
		numClaims + targetProvider: &c.Targets.ProviderBaseURL,
		numClaims + targetIngest:   &c.Targets.SessionIngestBaseURL,
	}
	seen, targets, err := d.claims(&c, &dst)
	if d.pending != 0 {
		s := string(d.arena)
		for k, p := range dst {
			if d.pending&(1<<k) != 0 {
				*p = s[d.spans[k][0]:d.spans[k][1]]
			}
		}
	}
	switch {
	case err != nil:
		return c, fmt.Errorf("%w: claims: %v", ErrInvalid, err)
	case seen&requiredClaims != requiredClaims || targets != 1<<numTargets-1:
		return c, fmt.Errorf("%w: a required claim is missing", ErrInvalid)
	case seen&(1<<claimProviderToken) != 0 && c.ProviderToken == "":
		return c, fmt.Errorf("%w: providerToken is empty", ErrInvalid)
	}
	if err := c.validate(); err != nil {
		return c, err
	}
	return c, nil
}

// Target member indexes, in the order of targetNames.
const (
	targetBackend = iota
	targetProvider
	targetIngest
	numTargets
)

// claimTargets is the index of the targets member in claimNames.
const claimTargets = claimIssuedAt - 1

// claimsDecoder is decodeClaims' reader: in[pos:] is what is left to read.
// String values are unescaped one after another into arena; spans[k] is
// where the value of member k lies there, for each bit k of pending.
type claimsDecoder struct {
	in      []byte
	pos     int
	arena   []byte
	spans   [numClaims + numTargets][2]int
	pending uint32
}

// decoders keeps claimsDecoders, and so their arenas, for decodeClaims to
// reuse (open uses the one in its openBuffer).
var decoders = sync.Pool{New: func() any { return new(claimsDecoder) }}

// wipe clears d's arena, which held tokens, and forgets the input.
func (d *claimsDecoder) wipe() {
	clear(d.arena)
	*d = claimsDecoder{arena: d.arena[:0]}
}

// release wipes d and returns it to decoders unless a large capability made
// its arena large.
func (d *claimsDecoder) release() {
	d.wipe()
	if cap(d.arena) <= maxPooledBuffer {
		decoders.Put(d)
	}
}

// claims reads the top-level object and the end of the input. It sets the
// integer members of c and, for each string member, either *dst[k] (a
// shared string) or spans[k] and pending; it returns the members seen at
// each level.
func (d *claimsDecoder) claims(c *Claims, dst *[numClaims + numTargets]*string) (seen, targets uint64, err error) {
	more, err := d.enter("")
	guess := 0
	for more {
		var i int
		if i, err = d.name("", claimNames, quotedClaimNames, guess); err != nil {
			return seen, targets, err
		}
		guess = i + 1
		if seen&(1<<i) != 0 {
			return seen, targets, jsonErrorf("at %s: duplicate field", pointer(i))
		}
		seen |= 1 << i
		switch i {
		case claimVersion:
			var n int64
			n, err = d.int(i)
			c.Version = int(n)
		case claimIssuedAt:
			c.IssuedAt, err = d.int(i)
		case claimExpiresAt:
			c.ExpiresAt, err = d.int(i)
		case claimTargets:
			targets, err = d.targets(dst)
		default:
			err = d.string(i, dst)
		}
		if err != nil {
			return seen, targets, err
		}
		if more, err = d.next(); err != nil {
			return seen, targets, err
		}
	}
	if err != nil {
		return seen, targets, err
	}
	d.space()
	if d.pos != len(d.in) {
		return seen, targets, jsonErrorf("invalid JSON at byte %d: data after the claims object", d.pos)
	}
	return seen, targets, nil
}

// targets reads the targets object.
func (d *claimsDecoder) targets(dst *[numClaims + numTargets]*string) (seen uint64, err error) {
	more, err := d.enter("/targets")
	guess := 0
	for more {
		var i int
		if i, err = d.name("/targets", targetNames, quotedTargetNames, guess); err != nil {
			return seen, err
		}
		guess = i + 1
		if seen&(1<<i) != 0 {
			return seen, jsonErrorf("at %s: duplicate field", pointer(numClaims+i))
		}
		seen |= 1 << i
		if err = d.string(numClaims+i, dst); err != nil {
			return seen, err
		}
		if more, err = d.next(); err != nil {
			return seen, err
		}
	}
	return seen, err
}

// enter reads the '{' that starts the object at the pointer at and
// reports whether a member follows; if not, it has read the '}' too.
func (d *claimsDecoder) enter(at string) (more bool, err error) {
	d.space()
	if d.pos >= len(d.in) {
		return false, d.truncated()
	}
	if d.in[d.pos] != '{' {
		return false, d.wrongKind(at, "an object")
	}
	d.pos++
	d.space()
	if d.pos < len(d.in) && d.in[d.pos] == '}' {
		d.pos++
		return false, nil
	}
	return true, nil
}

// next reads what follows a member's value: ',' (it reports true) or the
// '}' that ends the object.
func (d *claimsDecoder) next() (more bool, err error) {
	d.space()
	if d.pos >= len(d.in) {
		return false, d.truncated()
	}
	switch d.in[d.pos] {
	case ',':
		d.pos++
		d.space()
		return true, nil
	case '}':
		d.pos++
		return false, nil
	}
	return false, d.syntax()
}

// name reads a member name and the ':' after it, and returns the name's
// index in names (quoted holds them as written by quote). It tries guess
// first: issuers write the members in one order, and guess is the index
// after the previous member's. An unknown name is an error that gives its
// offset only.
func (d *claimsDecoder) name(parent string, names, quoted []string, guess int) (int, error) {
	start := d.pos
	// The guessed name, written plainly and followed at once by ':', is
	// read in one comparison.
	if guess < len(quoted) {
		if q := quoted[guess]; len(d.in)-start >= len(q) && string(d.in[start:start+len(q)]) == q {
			d.pos += len(q)
			d.space()
			return guess, nil
		}
	}
	var raw []byte
	// A name without escapes or non-ASCII bytes is compared where it lies.
	if end := plainRun(d.in, start+1); start < len(d.in) && d.in[start] == '"' && end < len(d.in) && d.in[end] == '"' {
		raw, d.pos = d.in[start+1:end], end+1
	} else {
		var buf [32]byte
		var err error
		if raw, err = d.unquote(buf[:0]); err != nil {
			return 0, err
		}
	}
	i := guess
	if i >= len(names) || string(raw) != names[i] {
		for i = 0; i < len(names) && string(raw) != names[i]; i++ {
		}
	}
	if i == len(names) {
		return 0, unknownName(parent, raw, start, names)
	}
	d.space()
	if d.pos >= len(d.in) {
		return 0, d.truncated()
	}
	if d.in[d.pos] != ':' {
		return 0, d.syntax()
	}
	d.pos++
	d.space()
	return i, nil
}

// quotedClaimNames and quotedTargetNames are claimNames and targetNames
// as a plain JSON name and its ':'.
var quotedClaimNames, quotedTargetNames = quote(claimNames), quote(targetNames)

func quote(names []string) []string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = `"` + n + `":`
	}
	return q
}

// string reads the string value of member k into the arena, or shares a
// known string for it.
func (d *claimsDecoder) string(k int, dst *[numClaims + numTargets]*string) error {
	if d.pos < len(d.in) && d.in[d.pos] != '"' {
		return d.wrongKind(pointer(k), "a string")
	}
	lo := len(d.arena)
	var err error
	if d.arena, err = d.unquote(d.arena); err != nil {
		return err
	}
	v := d.arena[lo:]
	if k == claimPurpose && string(v) == Purpose {
		*dst[k], d.arena = Purpose, d.arena[:lo]
		return nil
	}
	if k >= numClaims {
		if u, ok := knownURL(v); ok {
			*dst[k], d.arena = u, d.arena[:lo]
			return nil
		}
	}
	d.spans[k] = [2]int{lo, len(d.arena)}
	d.pending |= 1 << k
	return nil
}

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
		switch d.in[d.pos] {
		case ' ', '\t', '\n', '\r':
			d.pos++
		default:
			return
		}
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

// pointer is the JSON Pointer of member k, for errors.
func pointer(k int) string {
	if k >= numClaims {
		return "/targets/" + targetNames[k-numClaims]
	}
	return "/" + claimNames[k]
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
