package capability

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/go-json-experiment/json/jsontext"
)

// A SubjectError reports a subject document that is not JSON of the
// subject's shape. It says where (a JSON Pointer or a byte offset) and what
// is wrong, never a value from the document. It wraps [ErrInvalid].
//
// Callers that must tell a malformed request from a subject that breaks a
// claim rule (the HTTP API answers invalid_request for the former) test for
// it with errors.As.
type SubjectError struct{ msg string }

func (e *SubjectError) Error() string { return ErrInvalid.Error() + ": " + e.msg }

// Unwrap returns ErrInvalid.
func (e *SubjectError) Unwrap() error { return ErrInvalid }

// subjectNames are the subject's member names; targetNames (json.go) those
// of its targets.
var subjectNames = []string{"userId", "cloudAgentSessionId", "kiloSessionId", "outboundContainerId",
	"userToken", "providerToken", "targets"}

// DecodeSubject decodes a subject document: the JSON object that
// `extauthz issue` reads and the API's issue endpoint receives, with the claim
// names of the kka1 format (userId, cloudAgentSessionId, kiloSessionId,
// outboundContainerId, userToken, optional providerToken, targets with
// backendBaseUrl, providerBaseUrl, sessionIngestBaseUrl) and nothing else.
//
// It is as strict as the claims decoder: names match exactly once \u escapes
// are decoded; unknown and duplicate members are rejected at every level, and
// so are invalid UTF-8, trailing data, a null or any other non-string where a
// string is required (providerToken may be absent, never null), and a
// targets that is not an object. Each such error is a *[SubjectError].
//
// It checks the shape, not the claim rules: a missing member decodes to ""
// and Seal rejects it. The one exception is an empty providerToken, which
// Subject cannot tell from an absent one: DecodeSubject rejects it with a
// plain ErrInvalid error (not a *SubjectError), and only once the whole
// document has decoded.
//
// Every error wraps ErrInvalid and never contains a value from data.
func DecodeSubject(data []byte) (Subject, error) {
	var s Subject
	dd := decoders.Get().(*decoder)
	defer dd.release()
	dd.r.Reset(data)
	dd.Reset(&dd.r, decodeOpts) // duplicates are detected below
	d := &dd.Decoder

	if err := readObjectStart(d, ""); err != nil {
		return s, err
	}
	var seen uint
	emptyProviderToken := false
	for d.PeekKind() != '}' {
		name, start, err := readMemberName(d)
		if err != nil {
			return s, err
		}
		at := "/" + name // used only once name is known to be one of ours
		var bit uint
		switch name {
		case "userId":
			bit = seenUserID
			s.UserID, err = readSubjectString(d, at)
		case "cloudAgentSessionId":
			bit = seenCloudAgentSessionID
			s.CloudAgentSessionID, err = readSubjectString(d, at)
		case "kiloSessionId":
			bit = seenKiloSessionID
			s.KiloSessionID, err = readSubjectString(d, at)
		case "outboundContainerId":
			bit = seenOutboundContainerID
			s.OutboundContainerID, err = readSubjectString(d, at)
		case "userToken":
			bit = seenUserToken
			s.UserToken, err = readSubjectString(d, at)
		case "providerToken":
			bit = seenProviderToken
			s.ProviderToken, err = readSubjectString(d, at)
			emptyProviderToken = err == nil && s.ProviderToken == ""
		case "targets":
			bit = seenTargets
			err = readSubjectTargets(d, &s)
		default:
			return s, unknownField("", name, start, subjectNames)
		}
		if err != nil {
			return s, err
		}
		if seen&bit != 0 {
			return s, subjectErrorf("at %s: duplicate field", at)
		}
		seen |= bit
	}
	if _, err := d.ReadToken(); err != nil { // the '}' just peeked
		return s, syntaxErr(err)
	}
	end := d.InputOffset()
	switch _, err := d.ReadToken(); {
	case err == nil:
		return s, subjectErrorf("invalid JSON at byte %d: data after the subject object", end)
	case err != io.EOF:
		return s, syntaxErr(err)
	}
	if emptyProviderToken {
		return s, fmt.Errorf("%w: providerToken is empty (omit it when there is none)", ErrInvalid)
	}
	return s, nil
}

// readSubjectTargets reads the targets object into s.Targets.
func readSubjectTargets(d *jsontext.Decoder, s *Subject) error {
	if err := readObjectStart(d, "/targets"); err != nil {
		return err
	}
	var seen uint
	for d.PeekKind() != '}' {
		name, start, err := readMemberName(d)
		if err != nil {
			return err
		}
		at := "/targets/" + name
		var bit uint
		switch name {
		case "backendBaseUrl":
			bit = 1
			s.Targets.BackendBaseURL, err = readSubjectString(d, at)
		case "providerBaseUrl":
			bit = 2
			s.Targets.ProviderBaseURL, err = readSubjectString(d, at)
		case "sessionIngestBaseUrl":
			bit = 4
			s.Targets.SessionIngestBaseURL, err = readSubjectString(d, at)
		default:
			return unknownField("/targets", name, start, targetNames)
		}
		if err != nil {
			return err
		}
		if seen&bit != 0 {
			return subjectErrorf("at %s: duplicate field", at)
		}
		seen |= bit
	}
	if _, err := d.ReadToken(); err != nil {
		return syntaxErr(err)
	}
	return nil
}

// readObjectStart reads the '{' of the object at pointer at.
func readObjectStart(d *jsontext.Decoder, at string) error {
	if k := d.PeekKind(); k != '{' && k != 0 {
		return subjectErrorf("at %s: got a JSON %s, want an object", where(at), kindName(k))
	}
	if _, err := d.ReadToken(); err != nil {
		return syntaxErr(err)
	}
	return nil
}

// readMemberName reads an object member name, \u escapes decoded, and the
// byte offset where it starts.
func readMemberName(d *jsontext.Decoder) (name string, start int64, err error) {
	v, err := d.ReadValue() // jsontext allows only a valid string here
	if err != nil {
		return "", 0, syntaxErr(err)
	}
	start = d.InputOffset() - int64(len(v))
	if bytes.IndexByte(v, '\\') < 0 {
		return string(v[1 : len(v)-1]), start, nil
	}
	b, err := jsontext.AppendUnquote(nil, v)
	if err != nil {
		return "", 0, subjectErrorf("invalid JSON at byte %d", start) // unreachable: v is valid
	}
	return string(b), start, nil
}

// unknownField reports an unknown member of the object at parent by its
// offset, never by its name: the name is the document's, and a token can end
// up where a name belongs (a forgotten `"providerToken":` before its value).
// A name that matches one of known but for case is shown as the known one.
func unknownField(parent, name string, start int64, known []string) error {
	in := "in the top-level object"
	if parent != "" {
		in = "in " + parent
	}
	for _, k := range known {
		if strings.EqualFold(name, k) {
			return subjectErrorf("unknown field at byte %d %s: field names are case-sensitive, did you mean %s/%s?", start, in, parent, k)
		}
	}
	return subjectErrorf("unknown field at byte %d %s (field names are case-sensitive)", start, in)
}

// readSubjectString reads a JSON string; null or any other type is an error.
// Unlike readString it accepts "": emptiness is a claim rule, Seal's.
func readSubjectString(d *jsontext.Decoder, at string) (string, error) {
	switch k := d.PeekKind(); k {
	case '"':
	case 0: // a syntax error, reported by the read below
	default:
		return "", subjectErrorf("at %s: got a JSON %s, want a string", at, kindName(k))
	}
	tok, err := d.ReadToken()
	if err != nil {
		return "", syntaxErr(err)
	}
	return tok.String(), nil
}

func subjectErrorf(format string, a ...any) error {
	return &SubjectError{msg: fmt.Sprintf(format, a...)}
}

// syntaxErr describes a jsontext read error by kind and byte offset only: its
// own text may quote the input.
func syntaxErr(err error) error {
	var sx *jsontext.SyntacticError
	switch {
	case err == io.EOF:
		return subjectErrorf("invalid JSON: the input is empty")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return subjectErrorf("invalid JSON: truncated")
	case errors.As(err, &sx):
		return subjectErrorf("invalid JSON at byte %d (check quoting, commas, escapes and UTF-8)", sx.ByteOffset)
	default:
		return subjectErrorf("invalid JSON")
	}
}

func where(at string) string {
	if at == "" {
		return "the top level"
	}
	return at
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
