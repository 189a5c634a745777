package capability

import (
	"fmt"

	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"

	"github.com/extauthz/extauthz/internal/strictjson"
	"github.com/extauthz/extauthz/policy"
)

// wireSubject and wireClaims are the JSON shape of the claims.
type wireSubject struct {
	UserID              string         `json:"userId"`
	CloudAgentSessionID string         `json:"cloudAgentSessionId"`
	KiloSessionID       string         `json:"kiloSessionId"`
	OutboundContainerID string         `json:"outboundContainerId"`
	UserToken           string         `json:"userToken"`
	ProviderToken       string         `json:"providerToken,omitempty"`
	Targets             policy.Targets `json:"targets"`
}

type wireClaims struct {
	Version     int    `json:"version"`
	Purpose     string `json:"purpose"`
	wireSubject        // embedded: its members are inlined
	IssuedAt    int64  `json:"issuedAt"`
	ExpiresAt   int64  `json:"expiresAt"`
}

func (s *Subject) wire(redact bool) wireSubject {
	w := wireSubject{
		UserID:              s.UserID,
		CloudAgentSessionID: s.CloudAgentSessionID,
		KiloSessionID:       s.KiloSessionID,
		OutboundContainerID: s.OutboundContainerID,
		UserToken:           s.UserToken,
		ProviderToken:       s.ProviderToken,
		Targets:             s.Targets,
	}
	if redact {
		w.UserToken = redacted
		if w.ProviderToken != "" {
			w.ProviderToken = redacted
		}
	}
	return w
}

// marshalRedacted encodes a redacted rendering. It never fails on invalid
// UTF-8 (it substitutes U+FFFD): a rendering for logs must not fail.
func marshalRedacted(v any) ([]byte, error) {
	return json.Marshal(v, jsontext.AllowInvalidUTF8(true))
}

func (c *Claims) wire(redact bool) wireClaims {
	return wireClaims{
		Version:     c.Version,
		Purpose:     c.Purpose,
		wireSubject: c.Subject.wire(redact),
		IssuedAt:    c.IssuedAt,
		ExpiresAt:   c.ExpiresAt,
	}
}

// marshal encodes v; on failure the error carries no input.
func marshal(v any) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("%w: claims do not encode as JSON", ErrInvalid)
	}
	return b, nil
}

// Claim names, in the order of the bits strictjson.Reader.Object reports.
var claimNames = []string{"version", "purpose", "userId", "cloudAgentSessionId", "kiloSessionId",
	"outboundContainerId", "userToken", "providerToken", "targets", "issuedAt", "expiresAt"}

const (
	claimVersion = iota
	claimPurpose
	firstSubjectClaim // the subject's members, read by readSubjectMember
	_
	_
	_
	_
	claimProviderToken
	_
	claimIssuedAt
	claimExpiresAt

	numClaims = claimExpiresAt + 1
	// every claim but providerToken is required
	requiredClaims = (1<<numClaims - 1) &^ (1 << claimProviderToken)
)

// Subject member names; targetNames are those of its targets.
var (
	subjectNames = claimNames[firstSubjectClaim:claimIssuedAt]
	targetNames  = []string{"backendBaseUrl", "providerBaseUrl", "sessionIngestBaseUrl"}
)

// readSubjectMember reads the value of the subject member name into s. For
// targets it returns the set of target members seen; a missing one reads as
// "" (Seal and decodeClaims refuse it).
func readSubjectMember(rd *strictjson.Reader, s *Subject, name string, p strictjson.Pointer) (targets uint64, err error) {
	switch name {
	case "userId":
		s.UserID, err = rd.String(p)
	case "cloudAgentSessionId":
		s.CloudAgentSessionID, err = rd.String(p)
	case "kiloSessionId":
		s.KiloSessionID, err = rd.String(p)
	case "outboundContainerId":
		s.OutboundContainerID, err = rd.String(p)
	case "userToken":
		s.UserToken, err = rd.String(p)
	case "providerToken":
		s.ProviderToken, err = rd.String(p)
	case "targets":
		t := &s.Targets
		targets, err = rd.Object("/targets", targetNames, func(i int, p strictjson.Pointer) error {
			var err error
			switch i {
			case 0:
				t.BackendBaseURL, err = rd.String(p)
			case 1:
				t.ProviderBaseURL, err = rd.String(p)
			default:
				t.SessionIngestBaseURL, err = rd.String(p)
			}
			return err
		})
	}
	return targets, err
}
