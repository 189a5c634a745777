package capability

import (
	"errors"
	"fmt"
	"slices"

	"github.com/extauthz/extauthz/internal/strictjson"
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

// DecodeSubject decodes a subject document: the JSON object that
// `extauthz issue` reads and the API's issue endpoint receives, with the claim
// names of the kka1 format (userId, cloudAgentSessionId, kiloSessionId,
// outboundContainerId, userToken, optional providerToken, targets with
// backendBaseUrl, providerBaseUrl, sessionIngestBaseUrl) and nothing else.
//
// It reads with the same strict reader as the claims (internal/strictjson):
// names match exactly once \u escapes are decoded; unknown and duplicate
// members are rejected at every level, and so are invalid UTF-8, trailing
// data, a null or any other non-string where a string is required
// (providerToken may be absent, never null), and a targets that is not an
// object. Each such error is a *[SubjectError].
//
// It checks the shape, not the claim rules: a missing member decodes to ""
// and Seal rejects it. The one exception is an empty providerToken, which
// Subject cannot tell from an absent one: DecodeSubject rejects it with a
// plain ErrInvalid error (not a *SubjectError), and only once the whole
// document has decoded.
//
// Every error wraps ErrInvalid and never contains a value from data.
func DecodeSubject(data []byte) (Subject, error) {
	return DecodeSubjectWith(data)
}

// ExtraMember is a member that a document carries beside the subject's (the
// issue API's ttlSeconds). Read reads its value with rd; an error from rd
// makes the document malformed (a *SubjectError).
type ExtraMember struct {
	Name string
	Read func(rd *strictjson.Reader, p strictjson.Pointer) error
}

// DecodeSubjectWith is DecodeSubject for a document that may also carry the
// extra members, each at most once.
func DecodeSubjectWith(data []byte, extra ...ExtraMember) (Subject, error) {
	var s Subject
	seen, err := decodeDocument(data, subjectNames, extra, func(rd *strictjson.Reader, i int, p strictjson.Pointer) error {
		_, err := readSubjectMember(rd, &s, firstSubjectClaim+i, p)
		return err
	})
	if err != nil {
		return Subject{}, err
	}
	f := s.stringFields()
	if k, ok := emptyOptional((seen&(1<<len(subjectNames)-1))<<firstSubjectClaim, &f); ok {
		return s, fmt.Errorf("%w: %s is empty (omit it when there is none)", ErrInvalid, members[k].name)
	}
	return s, nil
}

// decodeDocument reads an issuing document (a subject document of either
// kind): one object of the members names, read by read(i), and extra, each
// at most once. It returns the set of names seen (bit i for names[i]). A
// malformed document is a *SubjectError.
func decodeDocument(data []byte, names []string, extra []ExtraMember, read func(rd *strictjson.Reader, i int, p strictjson.Pointer) error) (uint64, error) {
	all := names
	if len(extra) > 0 {
		all = append(slices.Clip(names), make([]string, len(extra))...)
		for i, e := range extra {
			all[len(names)+i] = e.Name
		}
	}
	var seen uint64
	err := strictjson.Decode(data, "subject", func(rd *strictjson.Reader) error {
		var err error
		seen, err = rd.Object("", all, func(i int, p strictjson.Pointer) error {
			if i >= len(names) {
				return extra[i-len(names)].Read(rd, p)
			}
			return read(rd, i, p)
		})
		return err
	})
	if _, ok := errors.AsType[*strictjson.Error](err); ok {
		return 0, &SubjectError{msg: err.Error()}
	}
	return seen, err
}
