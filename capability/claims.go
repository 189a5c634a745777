package capability

import (
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/extauthz/extauthz/policy"
)

// Wire constants of the kka1 format.
const (
	// Prefix starts every capability.
	Prefix = "kka1."
	// MaxTokenLen bounds a capability, prefix included, after surrounding
	// whitespace is trimmed.
	MaxTokenLen = 64 << 10
	// MaxLifetime bounds expiresAt - issuedAt.
	MaxLifetime = 4 * time.Hour
	// ClockSkew is how far in the future issuedAt may lie. It never extends
	// expiry.
	ClockSkew = 60 * time.Second
)

// Claim values fixed by the format.
const (
	// Version is the only supported claims version.
	Version = 1
	// Purpose is the only supported purpose.
	Purpose = "kilo_api_session"
)

// maxSafeInteger is JavaScript's Number.MAX_SAFE_INTEGER, 2^53-1.
const maxSafeInteger = 1<<53 - 1

// Sentinel errors. Every error from Open and Seal wraps exactly one of them
// (or policy.ErrInvalidTargets from Seal), with non-secret context only.
var (
	// ErrInvalid: the capability (or subject) is malformed, fails a claim rule,
	// does not authenticate, or was issued too far in the future.
	ErrInvalid = errors.New("invalid_capability")
	// ErrExpired: the capability is well formed but expiresAt <= now.
	ErrExpired = errors.New("expired_capability")
	// ErrConfig: no usable key is configured.
	ErrConfig = errors.New("capability_configuration_error")
)

// redacted replaces every secret in renderings of claims.
const redacted = "[redacted]"

// Subject is what a capability is issued for: who, which sandbox, and the
// real credentials it stands in for.
type Subject struct {
	UserID              string
	CloudAgentSessionID string
	KiloSessionID       string
	OutboundContainerID string
	UserToken           string // secret
	ProviderToken       string // secret, optional: "" means absent
	Targets             policy.Targets
}

// Claims are the decrypted contents of a capability.
type Claims struct {
	Subject
	Version   int    // always 1
	Purpose   string // always "kilo_api_session"
	IssuedAt  int64  // milliseconds since the Unix epoch
	ExpiresAt int64  // milliseconds since the Unix epoch
}

// validate checks the subject's rules: the same as a decoded capability's.
func (s *Subject) validate() error {
	for _, f := range [...]struct{ name, v string }{
		{"userId", s.UserID},
		{"cloudAgentSessionId", s.CloudAgentSessionID},
		{"kiloSessionId", s.KiloSessionID},
		{"outboundContainerId", s.OutboundContainerID},
		{"userToken", s.UserToken},
	} {
		if err := checkString(f.name, f.v); err != nil {
			return err
		}
	}
	// Only Claims can tell "absent" from "empty"; the decoder rejects an
	// empty providerToken before it gets here.
	if s.ProviderToken != "" && !utf8.ValidString(s.ProviderToken) {
		return fmt.Errorf("%w: providerToken is not valid UTF-8", ErrInvalid)
	}
	for _, f := range [...]struct{ name, v string }{
		{"targets.backendBaseUrl", s.Targets.BackendBaseURL},
		{"targets.providerBaseUrl", s.Targets.ProviderBaseURL},
		{"targets.sessionIngestBaseUrl", s.Targets.SessionIngestBaseURL},
	} {
		if err := checkURL(f.name, f.v); err != nil {
			return err
		}
	}
	return nil
}

// validate checks every claim rule that does not depend on the clock.
func (c *Claims) validate() error {
	if c.Version != Version {
		return fmt.Errorf("%w: version is not 1", ErrInvalid)
	}
	if c.Purpose != Purpose {
		return fmt.Errorf("%w: purpose is not %s", ErrInvalid, Purpose)
	}
	if err := c.Subject.validate(); err != nil {
		return err
	}
	switch {
	case c.IssuedAt < 0 || c.IssuedAt > maxSafeInteger:
		return fmt.Errorf("%w: issuedAt out of range", ErrInvalid)
	case c.ExpiresAt < 0 || c.ExpiresAt > maxSafeInteger:
		return fmt.Errorf("%w: expiresAt out of range", ErrInvalid)
	case c.ExpiresAt <= c.IssuedAt:
		return fmt.Errorf("%w: expiresAt is not after issuedAt", ErrInvalid)
	case c.ExpiresAt-c.IssuedAt > MaxLifetime.Milliseconds():
		return fmt.Errorf("%w: lifetime exceeds %s", ErrInvalid, MaxLifetime)
	}
	return nil
}

// checkString enforces "non-empty string". The value never enters the error.
func checkString(name, v string) error {
	if v == "" {
		return fmt.Errorf("%w: %s is empty", ErrInvalid, name)
	}
	if !utf8.ValidString(v) {
		return fmt.Errorf("%w: %s is not valid UTF-8", ErrInvalid, name)
	}
	return nil
}

// checkURL accepts what the issuer's `new URL(x)` accepts for a base URL: an
// absolute URL with a scheme and a host. The route policy is stricter and
// fails closed at request time.
func checkURL(name, v string) error {
	if _, ok := knownURL(v); ok {
		return nil
	}
	if err := checkString(name, v); err != nil {
		return err
	}
	u, err := url.Parse(v)
	if err != nil || u.Scheme == "" || u.Host == "" || u.Opaque != "" {
		return fmt.Errorf("%w: %s is not an absolute URL", ErrInvalid, name)
	}
	rememberURL(v)
	return nil
}

// knownURLs are the last few URLs checkURL accepted, so that the targets of
// one deployment, which every capability repeats, are parsed once rather
// than on each Open, and decodeClaims shares their strings instead of
// allocating them. They are public configuration, never secrets, and
// checkURL's answer depends on the string alone.
var (
	knownURLs    [8]atomic.Pointer[string]
	nextKnownURL atomic.Uint32
)

// knownURL returns the known URL equal to v.
func knownURL[T string | []byte](v T) (string, bool) {
	for i := range knownURLs {
		if u := knownURLs[i].Load(); u != nil && *u == string(v) {
			return *u, true
		}
	}
	return "", false
}

// rememberURL adds v, which checkURL accepted, to knownURLs in place of the
// oldest. It keeps a copy: v may share memory with a capability's tokens.
func rememberURL(v string) {
	u := strings.Clone(v)
	knownURLs[(nextKnownURL.Add(1)-1)%uint32(len(knownURLs))].Store(&u)
}

// String renders the subject without its tokens.
func (s Subject) String() string {
	var b strings.Builder
	b.WriteString("capability.Subject{")
	s.appendFields(&b)
	b.WriteByte('}')
	return b.String()
}

// GoString is String: %#v must not reveal tokens either.
func (s Subject) GoString() string { return s.String() }

// Format makes every fmt verb (%v, %+v, %#v, %s, %d, …) use the redacted
// rendering.
func (s Subject) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(s.String())) }

// MarshalJSON renders the subject with its tokens redacted, so that no JSON
// encoder (a logger's Interface field, for instance) can leak them.
func (s Subject) MarshalJSON() ([]byte, error) {
	return marshalRedacted(s.wire(true))
}

func (s *Subject) appendFields(b *strings.Builder) {
	fmt.Fprintf(b, "userId:%q cloudAgentSessionId:%q kiloSessionId:%q outboundContainerId:%q userToken:%s",
		s.UserID, s.CloudAgentSessionID, s.KiloSessionID, s.OutboundContainerID, redacted)
	if s.ProviderToken != "" {
		b.WriteString(" providerToken:" + redacted)
	}
	fmt.Fprintf(b, " targets:{backendBaseUrl:%q providerBaseUrl:%q sessionIngestBaseUrl:%q}",
		s.Targets.BackendBaseURL, s.Targets.ProviderBaseURL, s.Targets.SessionIngestBaseURL)
}

// String renders the claims without their tokens.
func (c Claims) String() string {
	var b strings.Builder
	b.WriteString("capability.Claims{version:")
	b.WriteString(strconv.Itoa(c.Version))
	b.WriteString(" purpose:")
	b.WriteString(strconv.Quote(c.Purpose))
	b.WriteByte(' ')
	c.Subject.appendFields(&b)
	b.WriteString(" issuedAt:")
	b.WriteString(strconv.FormatInt(c.IssuedAt, 10))
	b.WriteString(" expiresAt:")
	b.WriteString(strconv.FormatInt(c.ExpiresAt, 10))
	b.WriteByte('}')
	return b.String()
}

// GoString is String: %#v must not reveal tokens either.
func (c Claims) GoString() string { return c.String() }

// Format makes every fmt verb use the redacted rendering.
func (c Claims) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(c.String())) }

// MarshalJSON renders the claims in their wire shape with userToken and
// providerToken replaced by "[redacted]". Seal does not use it.
func (c Claims) MarshalJSON() ([]byte, error) {
	return marshalRedacted(c.wire(true))
}

// IssuedTime returns issuedAt as a time.Time.
func (c Claims) IssuedTime() time.Time { return time.UnixMilli(c.IssuedAt) }

// ExpiryTime returns expiresAt as a time.Time.
func (c Claims) ExpiryTime() time.Time { return time.UnixMilli(c.ExpiresAt) }
