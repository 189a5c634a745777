package capability

import (
	"fmt"
	"sync"
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
	// Where each string member goes, by member index.
	dst := c.stringFields()
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
	}
	if k, ok := emptyOptional(seen, &dst); ok {
		return c, fmt.Errorf("%w: %s is empty", ErrInvalid, members[k].name)
	}
	if err := c.validate(); err != nil {
		return c, err
	}
	return c, nil
}

// claimsDecoder is decodeClaims' reader: in[pos:] is what is left to read.
// String values are unescaped one after another into arena; spans[k] is
// where the value of member k lies there, for each bit k of pending.
type claimsDecoder struct {
	in      []byte
	pos     int
	arena   []byte
	spans   [numMembers][2]int
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
func (d *claimsDecoder) claims(c *Claims, dst *[numMembers]*string) (seen, targets uint64, err error) {
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
		switch members[i].kind {
		case kindVersion, kindTime:
			var n int64
			n, err = d.int(i)
			c.setIntField(i, n)
		case kindTargets:
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
func (d *claimsDecoder) targets(dst *[numMembers]*string) (seen uint64, err error) {
	more, err := d.enter(targetsPointer)
	guess := 0
	for more {
		var i int
		if i, err = d.name(targetsPointer, targetNames, quotedTargetNames, guess); err != nil {
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
func (d *claimsDecoder) string(k int, dst *[numMembers]*string) error {
	if d.pos < len(d.in) && d.in[d.pos] != '"' {
		return d.wrongKind(pointer(k), "a string")
	}
	lo := len(d.arena)
	var err error
	if d.arena, err = d.unquote(d.arena); err != nil {
		return err
	}
	v := d.arena[lo:]
	switch members[k].kind {
	case kindPurpose:
		if string(v) == Purpose {
			*dst[k], d.arena = Purpose, d.arena[:lo]
			return nil
		}
	case kindURL:
		if u, ok := knownURL(v); ok {
			*dst[k], d.arena = u, d.arena[:lo]
			return nil
		}
	}
	d.spans[k] = [2]int{lo, len(d.arena)}
	d.pending |= 1 << k
	return nil
}
