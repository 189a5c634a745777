package capability

import (
	"fmt"
	"strconv"

	"github.com/go-json-experiment/json/jsontext"

	"github.com/extauthz/extauthz/internal/strictjson"
)

// rendering is how appendMembers writes claims.
type rendering uint8

const (
	// plainJSON is the plaintext Seal encrypts: JSON with the tokens.
	plainJSON rendering = iota
	// redactedJSON is MarshalJSON's: JSON with every secret "[redacted]",
	// and invalid UTF-8 replaced rather than refused (a rendering for logs
	// must not fail).
	redactedJSON
	// redactedText is String's: name:value pairs separated by spaces,
	// strings quoted as Go quotes them, every secret [redacted].
	redactedText
)

// appendMembers appends the object of members lo to hi-1 of the table, with
// the values c and its string fields f hold, as r renders it. An optional
// member that is empty is absent. Only plainJSON fails, on a string that is
// not valid UTF-8.
func appendMembers(b []byte, c *Claims, f *[numMembers]*string, lo, hi int, r rendering) (_ []byte, err error) {
	b = append(b, '{')
	first := true
	for k := lo; k < hi; k++ {
		m := &members[k]
		if m.kind == kindOptionalSecret && *f[k] == "" {
			continue
		}
		switch {
		case first:
			first = false
		case r == redactedText:
			b = append(b, ' ')
		default:
			b = append(b, ',')
		}
		if r == redactedText {
			b = append(b, m.name...)
		} else {
			b = append(append(append(b, '"'), m.name...), '"')
		}
		b = append(b, ':')
		switch m.kind {
		case kindVersion, kindTime:
			b = strconv.AppendInt(b, c.intField(k), 10)
		case kindTargets:
			if b, err = appendMembers(b, c, f, numClaims, numMembers, r); err != nil {
				return b, err
			}
		case kindSecret, kindOptionalSecret:
			switch r {
			case plainJSON:
				if b, err = jsontext.AppendQuote(b, *f[k]); err != nil {
					return b, err
				}
			case redactedJSON:
				b = append(append(append(b, '"'), redacted...), '"')
			default:
				b = append(b, redacted...)
			}
		default:
			switch r {
			case redactedText:
				b = strconv.AppendQuote(b, *f[k])
			default:
				b, err = jsontext.AppendQuote(b, *f[k]) // invalid UTF-8 becomes U+FFFD
				if err != nil && r == plainJSON {
					return b, err
				}
			}
		}
	}
	return append(b, '}'), nil
}

// marshal encodes the claims as Seal encrypts them; on failure the error
// carries no input.
func (c *Claims) marshal() ([]byte, error) {
	f := c.stringFields()
	size := jsonOverhead
	for _, p := range f {
		if p != nil {
			size += len(*p)
		}
	}
	b, err := appendMembers(make([]byte, 0, size), c, &f, 0, numClaims, plainJSON)
	if err != nil {
		return nil, fmt.Errorf("%w: claims do not encode as JSON", ErrInvalid)
	}
	return b, nil
}

// jsonOverhead is the length of the claims' JSON without its string
// values: each member's quoted name, ':' and separator, a string's quotes or
// an integer's digits (at most 16 for a safe integer), and the braces.
var jsonOverhead = func() int {
	n := 2 * 2 // the braces of the claims and of targets
	for _, m := range members {
		n += len(m.name) + len(`"":,`)
		if m.kind == kindVersion || m.kind == kindTime {
			n += len("9007199254740991")
		} else {
			n += len(`""`)
		}
	}
	return n
}()

// render renders the claims' members lo to hi-1 after prefix, redacted (r is
// redactedJSON or redactedText, which never fail).
func (c *Claims) render(prefix string, lo, hi int, r rendering) []byte {
	f := c.stringFields()
	b, _ := appendMembers([]byte(prefix), c, &f, lo, hi, r)
	return b
}

// targetsPointer is the JSON Pointer of the targets object.
var targetsPointer = pointer(claimTargets)

// readSubjectMember reads the value of the subject member k into s. For
// targets it returns the set of target members seen; a missing one reads as
// "" (Seal and decodeClaims refuse it).
func readSubjectMember(rd *strictjson.Reader, s *Subject, k int, p strictjson.Pointer) (targets uint64, err error) {
	if members[k].kind != kindTargets {
		*s.stringFields()[k], err = rd.String(p)
		return 0, err
	}
	return rd.Object(targetsPointer, targetNames, func(i int, p strictjson.Pointer) error {
		var err error
		*s.stringFields()[numClaims+i], err = rd.String(p)
		return err
	})
}
