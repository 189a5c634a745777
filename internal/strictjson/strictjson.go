// Package strictjson is the one strict JSON reader of the module: claims,
// subject documents and API bodies are all read with it, so that they obey
// one set of rules (docs/decisions.md, section 2):
//
//   - exactly one value, nothing after it but white space;
//   - valid UTF-8, no lone surrogate escapes;
//   - in an object, each member name matches a known name exactly, after \u
//     escapes are decoded; an unknown name and a repeated name are errors;
//   - exact types: null is not a string, "1" is not a number;
//   - an integer is a number whose value is whole and within JavaScript's
//     safe integers (1, 1.0 and 1e0 are all 1), as the issuer's JSON.parse
//     reads it.
//
// Every error is an *Error, whose text says where (a JSON Pointer or a byte
// offset) and what is wrong, never a value or a name from the input: a
// secret can end up anywhere in a malformed document.
package strictjson

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"sync"

	"github.com/go-json-experiment/json/jsontext"
)

// MaxSafeInteger is JavaScript's Number.MAX_SAFE_INTEGER, 2^53-1.
const MaxSafeInteger = 1<<53 - 1

// Error is a decoding error; it carries no value from the input.
type Error struct{ msg string }

func (e *Error) Error() string { return e.msg }

func errorf(format string, a ...any) error {
	return &Error{msg: fmt.Sprintf(format, a...)}
}

// Pointer is the JSON Pointer of a member, built only when an error names
// it: reading a member does not allocate.
type Pointer struct{ parent, name string }

func (p Pointer) String() string {
	if p.parent == "" && p.name == "" {
		return "the top level"
	}
	return p.parent + "/" + p.name
}

// Reader reads one document. It is pooled: Decode hands it out and takes it
// back.
type Reader struct {
	d        jsontext.Decoder
	r        bytes.Reader
	lastName string // the last unknown member name, for unknownName
}

var readers = sync.Pool{New: func() any { return new(Reader) }}

// Duplicate names are detected by Object itself, after unescaping (like
// jsontext), which saves jsontext's per-object name set. Invalid UTF-8 stays
// an error (the default).
var options = jsontext.AllowDuplicateNames(true)

// Decode reads data, the document named what ("subject", "claims", …), as
// exactly one JSON object with read, then requires the end of the input.
func Decode(data []byte, what string, read func(*Reader) error) error {
	rd := readers.Get().(*Reader)
	defer func() {
		rd.r.Reset(nil)
		rd.d.Reset(&rd.r, options)
		rd.lastName = ""
		readers.Put(rd)
	}()
	rd.r.Reset(data)
	rd.d.Reset(&rd.r, options)
	if err := read(rd); err != nil {
		return err
	}
	end := rd.d.InputOffset()
	switch _, err := rd.d.ReadToken(); {
	case err == nil:
		return errorf("invalid JSON at byte %d: data after the %s object", end, what)
	case err != io.EOF:
		return syntaxError(err)
	}
	return nil
}

// Object reads the object at the pointer at ("" for the top level). For
// each member it finds the index i of the member's name in names and calls
// member(i, pointer), which must read the value. It returns the set of names
// seen, bit i for names[i] (names holds at most 64).
func (rd *Reader) Object(at string, names []string, member func(i int, p Pointer) error) (seen uint64, err error) {
	d := &rd.d
	if k := d.PeekKind(); k != '{' && k != 0 { // 0: a syntax error, reported below
		return 0, rd.wrongKind(Pointer{name: strings.TrimPrefix(at, "/")}, k, "an object")
	}
	if _, err := d.ReadToken(); err != nil {
		return 0, syntaxError(err)
	}
	for d.PeekKind() != '}' {
		i, start, err := rd.name(names)
		if err != nil {
			return 0, err
		}
		if i < 0 {
			return 0, unknownName(at, rd.lastName, start, names)
		}
		p := Pointer{parent: at, name: names[i]}
		if err := member(i, p); err != nil {
			return 0, err
		}
		if seen&(1<<i) != 0 {
			return 0, errorf("at %s: duplicate field", p)
		}
		seen |= 1 << i
	}
	if _, err := d.ReadToken(); err != nil { // the '}' just peeked
		return 0, syntaxError(err)
	}
	return seen, nil
}

// name reads a member name and returns its index in names, or -1 (then the
// decoded name is in lastName, for the case hint of unknownName only), and
// the byte offset where it starts.
func (rd *Reader) name(names []string) (int, int64, error) {
	v, err := rd.d.ReadValue() // jsontext allows only a valid string here
	if err != nil {
		return 0, 0, syntaxError(err)
	}
	start := rd.d.InputOffset() - int64(len(v))
	raw := v[1 : len(v)-1]
	if bytes.IndexByte(raw, '\\') >= 0 {
		if raw, err = jsontext.AppendUnquote(nil, v); err != nil {
			return 0, 0, errorf("invalid JSON at byte %d", start) // unreachable: v is valid
		}
	}
	for i, n := range names {
		if string(raw) == n {
			return i, start, nil
		}
	}
	rd.lastName = string(raw)
	return -1, start, nil
}

// unknownName reports an unknown member of the object at parent by its
// offset, never by its name: a token can end up where a name belongs (a
// forgotten `"providerToken":` before its value). A name that matches a
// known one but for case is shown as the known one.
func unknownName(parent, name string, start int64, known []string) error {
	in := "in the top-level object"
	if parent != "" {
		in = "in " + parent
	}
	for _, k := range known {
		if strings.EqualFold(name, k) {
			return errorf("unknown field at byte %d %s: field names are case-sensitive, did you mean %s/%s?", start, in, parent, k)
		}
	}
	return errorf("unknown field at byte %d %s (field names are case-sensitive)", start, in)
}

// String reads a JSON string, "" included; any other kind is an error.
func (rd *Reader) String(p Pointer) (string, error) {
	switch k := rd.d.PeekKind(); k {
	case '"':
	case 0: // a syntax error, reported by the read below
	default:
		return "", rd.wrongKind(p, k, "a string")
	}
	tok, err := rd.d.ReadToken()
	if err != nil {
		return "", syntaxError(err)
	}
	return tok.String(), nil
}

// Int reads a number that JavaScript reads as a safe integer: its value (as
// a float64, the way JSON.parse reads it) is whole and within
// ±MaxSafeInteger.
func (rd *Reader) Int(p Pointer) (int64, error) {
	switch k := rd.d.PeekKind(); k {
	case '0':
	case 0:
	default:
		return 0, rd.wrongKind(p, k, "a number")
	}
	v, err := rd.d.ReadValue()
	if err != nil {
		return 0, syntaxError(err)
	}
	f, err := strconv.ParseFloat(string(v), 64)
	if err != nil || f != math.Trunc(f) || math.Abs(f) > MaxSafeInteger {
		return 0, errorf("at %s: not a safe integer", p)
	}
	return int64(f), nil
}

// wrongKind reports a value of kind k where want belongs. PeekKind judges by
// the first byte alone ("not json" peeks as null), so the value is read
// first: a syntax error in it is the error to report.
func (rd *Reader) wrongKind(p Pointer, k jsontext.Kind, want string) error {
	if _, err := rd.d.ReadValue(); err != nil {
		return syntaxError(err)
	}
	return errorf("at %s: got a JSON %s, want %s", p, kindName(k), want)
}

// syntaxError describes a jsontext read error by kind and byte offset only:
// its own text may quote the input.
func syntaxError(err error) error {
	var sx *jsontext.SyntacticError
	switch {
	case err == io.EOF:
		return errorf("invalid JSON: the input is empty")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return errorf("invalid JSON: truncated")
	case errors.As(err, &sx):
		return errorf("invalid JSON at byte %d (check quoting, commas, escapes and UTF-8)", sx.ByteOffset)
	default:
		return errorf("invalid JSON")
	}
}

// kindName names a JSON kind the way a person would.
func kindName(k jsontext.Kind) string {
	switch k {
	case 'n':
		return "null"
	case 't', 'f':
		return "boolean"
	case '"':
		return "string"
	case '0':
		return "number"
	case '{':
		return "object"
	case '[':
		return "array"
	default:
		return "value"
	}
}

// StringMap reads an object whose members are all strings into a map: at
// most max members, each name accepted by validName, none repeated. Errors
// point at byte offsets and never quote a name or a value.
func (rd *Reader) StringMap(p Pointer, max int, validName func(string) bool) (map[string]string, error) {
	d := &rd.d
	if k := d.PeekKind(); k != '{' && k != 0 {
		return nil, rd.wrongKind(p, k, "an object")
	}
	if _, err := d.ReadToken(); err != nil {
		return nil, syntaxError(err)
	}
	m := map[string]string{}
	for d.PeekKind() != '}' {
		start := d.InputOffset()
		tok, err := d.ReadToken() // jsontext allows only a string here
		if err != nil {
			return nil, syntaxError(err)
		}
		name := tok.String()
		switch _, dup := m[name]; {
		case !validName(name):
			return nil, errorf("at %s: the member name at byte %d is not allowed", p, start)
		case dup:
			return nil, errorf("at %s: duplicate member at byte %d", p, start)
		case len(m) == max:
			return nil, errorf("at %s: more than %d members", p, max)
		}
		v, err := rd.String(Pointer{parent: p.String(), name: "*"}) // a name may be a misplaced secret
		if err != nil {
			return nil, err
		}
		m[name] = v
	}
	if _, err := d.ReadToken(); err != nil { // the '}' just peeked
		return nil, syntaxError(err)
	}
	return m, nil
}

// Root is the pointer of the top-level object's member name.
func Root(name string) Pointer { return Pointer{name: name} }

// HasMember reports whether data is a JSON object with a top-level member
// called name (after \u escapes are decoded), for a caller that picks a
// decoder by it. It reads no further than it must and checks nothing else:
// the document is then decoded strictly.
func HasMember(data []byte, name string) bool {
	d := jsontext.NewDecoder(bytes.NewReader(data), options)
	if tok, err := d.ReadToken(); err != nil || tok.Kind() != '{' {
		return false
	}
	for d.PeekKind() == '"' {
		tok, err := d.ReadToken()
		if err != nil {
			return false
		}
		if tok.String() == name {
			return true
		}
		if d.SkipValue() != nil {
			return false
		}
	}
	return false
}
