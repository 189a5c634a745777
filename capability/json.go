package capability

import (
	"bytes"
	"fmt"
	"io"
	"math"
	"strconv"
	"sync"

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

// decoder is a pooled jsontext.Decoder with its reader: Open is on the hot
// path.
type decoder struct {
	jsontext.Decoder
	r bytes.Reader
}

var decoders = sync.Pool{New: func() any { return new(decoder) }}

func (d *decoder) release() {
	d.r.Reset(nil)
	d.Reset(&d.r, decodeOpts)
	decoders.Put(d)
}

// decodeOpts: duplicate names are detected by decodeClaims itself (after
// unescaping, like jsontext), which saves jsontext's per-object name set.
// Invalid UTF-8 stays an error (the default).
var decodeOpts = jsontext.AllowDuplicateNames(true)

// decodeClaims decodes the claims JSON strictly, with the issuer's JavaScript
// semantics, and checks every claim rule that does not depend on the clock.
//
// jsontext rejects invalid UTF-8 and lone surrogate escapes; decodeClaims
// rejects duplicate names (compared after unescaping). Errors never quote the
// input.
func decodeClaims(b []byte) (Claims, error) {
	var c Claims
	dd := decoders.Get().(*decoder)
	defer dd.release()
	dd.r.Reset(b)
	dd.Reset(&dd.r, decodeOpts)
	d := &dd.Decoder
	if err := readDelim(d, '{'); err != nil {
		return c, err
	}
	var seen uint
	for d.PeekKind() != '}' {
		name, err := readName(d, claimNames)
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
		name, err := readName(d, targetNames)
		if err != nil {
			return t, err
		}
		var bit uint
		switch name {
		case "backendBaseUrl":
			bit = 1
			t.BackendBaseURL, err = readString(d, "targets.backendBaseUrl")
		case "providerBaseUrl":
			bit = 2
			t.ProviderBaseURL, err = readString(d, "targets.providerBaseUrl")
		case "sessionIngestBaseUrl":
			bit = 4
			t.SessionIngestBaseURL, err = readString(d, "targets.sessionIngestBaseUrl")
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

// Member names, as constants so that matching a name does not allocate.
var (
	claimNames = []string{"version", "purpose", "userId", "cloudAgentSessionId", "kiloSessionId",
		"outboundContainerId", "userToken", "providerToken", "targets", "issuedAt", "expiresAt"}
	targetNames = []string{"backendBaseUrl", "providerBaseUrl", "sessionIngestBaseUrl"}
)

// readName reads an object member name and returns the entry of names it
// equals exactly once unescaped, or "" for a name that is not in names.
func readName(d *jsontext.Decoder, names []string) (string, error) {
	if d.PeekKind() != '"' {
		return "", syntaxError(d)
	}
	v, err := d.ReadValue() // jsontext has validated the string, UTF-8 included
	if err != nil {
		return "", syntaxError(d)
	}
	raw := v[1 : len(v)-1]
	if bytes.IndexByte(raw, '\\') >= 0 {
		var name string
		if err := json.Unmarshal(v, &name); err != nil {
			return "", syntaxError(d)
		}
		raw = []byte(name)
	}
	for _, n := range names {
		if string(raw) == n {
			return n, nil
		}
	}
	return "", nil
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
