package capability

import (
	"bytes"
	"fmt"
	"io"
	"math"
	"strconv"

	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"

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
	wireSubject `json:",inline"`
	IssuedAt    int64 `json:"issuedAt"`
	ExpiresAt   int64 `json:"expiresAt"`
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
	b, err := json.Marshal(v, json.Deterministic(true))
	if err != nil {
		return nil, fmt.Errorf("%w: claims do not encode as JSON", ErrInvalid)
	}
	return b, nil
}

// Bits of the claims seen by decodeClaims.
const (
	seenVersion = 1 << iota
	seenPurpose
	seenUserID
	seenCloudAgentSessionID
	seenKiloSessionID
	seenOutboundContainerID
	seenUserToken
	seenProviderToken
	seenTargets
	seenIssuedAt
	seenExpiresAt

	seenRequired = seenVersion | seenPurpose | seenUserID | seenCloudAgentSessionID |
		seenKiloSessionID | seenOutboundContainerID | seenUserToken | seenTargets |
		seenIssuedAt | seenExpiresAt
)

// decodeClaims decodes the claims JSON strictly, with the issuer's JavaScript
// semantics, and checks every claim rule that does not depend on the clock.
//
// jsontext rejects duplicate names (after unescaping), invalid UTF-8 and lone
// surrogate escapes. Errors never quote the input.
func decodeClaims(b []byte) (Claims, error) {
	var c Claims
	d := jsontext.NewDecoder(bytes.NewReader(b))
	if err := readDelim(d, '{'); err != nil {
		return c, err
	}
	var seen uint
	for d.PeekKind() != '}' {
		name, err := readName(d)
		if err != nil {
			return c, err
		}
		var bit uint
		switch name {
		case "version":
			bit = seenVersion
			var n int64
			n, err = readInt(d, name)
			c.Version = int(n)
		case "purpose":
			bit = seenPurpose
			c.Purpose, err = readString(d, name)
		case "userId":
			bit = seenUserID
			c.UserID, err = readString(d, name)
		case "cloudAgentSessionId":
			bit = seenCloudAgentSessionID
			c.CloudAgentSessionID, err = readString(d, name)
		case "kiloSessionId":
			bit = seenKiloSessionID
			c.KiloSessionID, err = readString(d, name)
		case "outboundContainerId":
			bit = seenOutboundContainerID
			c.OutboundContainerID, err = readString(d, name)
		case "userToken":
			bit = seenUserToken
			c.UserToken, err = readString(d, name)
		case "providerToken":
			bit = seenProviderToken
			c.ProviderToken, err = readString(d, name)
		case "targets":
			bit = seenTargets
			c.Targets, err = readTargets(d)
		case "issuedAt":
			bit = seenIssuedAt
			c.IssuedAt, err = readInt(d, name)
		case "expiresAt":
			bit = seenExpiresAt
			c.ExpiresAt, err = readInt(d, name)
		default:
			// The name is attacker-influenced: keep it out of the error.
			return c, fmt.Errorf("%w: unknown claim", ErrInvalid)
		}
		if err != nil {
			return c, err
		}
		if seen&bit != 0 {
			return c, fmt.Errorf("%w: duplicate claim %s", ErrInvalid, name)
		}
		seen |= bit
	}
	if err := readDelim(d, '}'); err != nil {
		return c, err
	}
	if _, err := d.ReadToken(); err != io.EOF {
		return c, fmt.Errorf("%w: data after the claims object", ErrInvalid)
	}
	if seen&seenRequired != seenRequired {
		return c, fmt.Errorf("%w: a required claim is missing", ErrInvalid)
	}
	if err := c.validate(); err != nil {
		return c, err
	}
	return c, nil
}

// readTargets reads the targets object: exactly its three URLs.
func readTargets(d *jsontext.Decoder) (policy.Targets, error) {
	var t policy.Targets
	if d.PeekKind() != '{' {
		return t, fmt.Errorf("%w: targets is not an object", ErrInvalid)
	}
	if err := readDelim(d, '{'); err != nil {
		return t, err
	}
	var seen uint
	for d.PeekKind() != '}' {
		name, err := readName(d)
		if err != nil {
			return t, err
		}
		var bit uint
		switch name {
		case "backendBaseUrl":
			bit = 1
			t.BackendBaseURL, err = readString(d, "targets."+name)
		case "providerBaseUrl":
			bit = 2
			t.ProviderBaseURL, err = readString(d, "targets."+name)
		case "sessionIngestBaseUrl":
			bit = 4
			t.SessionIngestBaseURL, err = readString(d, "targets."+name)
		default:
			return t, fmt.Errorf("%w: unknown key in targets", ErrInvalid)
		}
		if err != nil {
			return t, err
		}
		if seen&bit != 0 {
			return t, fmt.Errorf("%w: duplicate key targets.%s", ErrInvalid, name)
		}
		seen |= bit
	}
	if err := readDelim(d, '}'); err != nil {
		return t, err
	}
	if seen != 7 {
		return t, fmt.Errorf("%w: targets is missing a URL", ErrInvalid)
	}
	return t, nil
}

func syntaxError(d *jsontext.Decoder) error {
	return fmt.Errorf("%w: malformed claims JSON near offset %d", ErrInvalid, d.InputOffset())
}

// readDelim reads an object delimiter ('{' or '}').
func readDelim(d *jsontext.Decoder, k jsontext.Kind) error {
	tok, err := d.ReadToken()
	if err != nil || tok.Kind() != k {
		return syntaxError(d)
	}
	return nil
}

// readName reads an object member name.
func readName(d *jsontext.Decoder) (string, error) {
	if d.PeekKind() != '"' {
		return "", syntaxError(d)
	}
	tok, err := d.ReadToken()
	if err != nil {
		return "", syntaxError(d)
	}
	return tok.String(), nil
}

// readString reads a JSON string value; null or any other type is invalid,
// and so is the empty string.
func readString(d *jsontext.Decoder, name string) (string, error) {
	if d.PeekKind() != '"' {
		return "", fmt.Errorf("%w: %s is not a string", ErrInvalid, name)
	}
	tok, err := d.ReadToken()
	if err != nil {
		return "", syntaxError(d)
	}
	s := tok.String()
	if s == "" {
		return "", fmt.Errorf("%w: %s is empty", ErrInvalid, name)
	}
	return s, nil
}

// readInt reads a JSON number that JavaScript considers a safe integer: its
// value (as a float64, the way JSON.parse reads it) is whole and within
// ±(2^53-1). So 1, 1.0 and 1e0 are all 1.
func readInt(d *jsontext.Decoder, name string) (int64, error) {
	if d.PeekKind() != '0' {
		return 0, fmt.Errorf("%w: %s is not a number", ErrInvalid, name)
	}
	v, err := d.ReadValue()
	if err != nil {
		return 0, syntaxError(d)
	}
	f, err := strconv.ParseFloat(string(v), 64)
	if err != nil || f != math.Trunc(f) || math.Abs(f) > maxSafeInteger {
		return 0, fmt.Errorf("%w: %s is not a safe integer", ErrInvalid, name)
	}
	return int64(f), nil
}
