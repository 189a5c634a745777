package capability

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"
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
	// DefaultLifetime is how long a capability lives when its issuer asks
	// for no particular lifetime: the longest allowed (docs/decisions.md,
	// section 3). Seal(s, 0), the issue API and `extauthz issue` use it.
	DefaultLifetime = MaxLifetime
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

// Sentinel errors. Every error from Open and Seal wraps exactly one of them,
// with non-secret context only.
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
	Targets             Targets
}

// Targets are the three base URLs a capability is for. The claims require
// each to be an absolute URL; what each allows is the route policy's to say
// (policy.Targets, which authz converts these to: the fields are the same).
type Targets struct {
	BackendBaseURL       string
	ProviderBaseURL      string
	SessionIngestBaseURL string
}

// Claims are the decrypted contents of a capability.
type Claims struct {
	Subject
	Version   int    // always 1
	Purpose   string // always "kilo_api_session"
	IssuedAt  int64  // milliseconds since the Unix epoch
	ExpiresAt int64  // milliseconds since the Unix epoch
}

// validate checks every claim rule that does not depend on the clock: the
// rule of each member's kind (members), then the lifetime. No value enters
// an error.
func (c *Claims) validate() error {
	if c.Version != Version {
		return fmt.Errorf("%w: version is not 1", ErrInvalid)
	}
	if c.Purpose != Purpose {
		return fmt.Errorf("%w: purpose is not %s", ErrInvalid, Purpose)
	}
	f := c.stringFields()
	for _, k := range stringMembers {
		if err := checkString(k, *f[k]); err != nil {
			return err
		}
	}
	// Only Claims can tell "absent" from "empty"; the decoders reject an
	// optional member present but empty (emptyOptional).
	for _, k := range optionalMembers {
		if *f[k] != "" && !utf8.ValidString(*f[k]) {
			return fmt.Errorf("%w: %s is not valid UTF-8", ErrInvalid, memberName(k))
		}
	}
	for _, k := range urlMembers {
		if err := checkURL(k, *f[k]); err != nil {
			return err
		}
	}
	for _, k := range timeMembers {
		if v := c.intField(k); v < 0 || v > maxSafeInteger {
			return fmt.Errorf("%w: %s out of range", ErrInvalid, memberName(k))
		}
	}
	switch {
	case c.ExpiresAt <= c.IssuedAt:
		return fmt.Errorf("%w: expiresAt is not after issuedAt", ErrInvalid)
	case c.ExpiresAt-c.IssuedAt > MaxLifetime.Milliseconds():
		return fmt.Errorf("%w: lifetime exceeds %s", ErrInvalid, MaxLifetime)
	}
	return nil
}

// emptyOptional returns an optional member that seen (bit k for top-level
// member k) has but whose value in f is empty: the specification allows an
// optional member to be absent, never empty.
func emptyOptional(seen uint64, f *[numMembers]*string) (k int, ok bool) {
	for _, k := range optionalMembers {
		if seen&(1<<k) != 0 && *f[k] == "" {
			return k, true
		}
	}
	return 0, false
}

// memberName names member k in errors: targets.backendBaseUrl for a target.
func memberName(k int) string {
	if k >= numClaims {
		return members[claimTargets].name + "." + members[k].name
	}
	return members[k].name
}

// checkString enforces "non-empty string" on member k. The value never
// enters the error.
func checkString(k int, v string) error {
	if v == "" {
		return fmt.Errorf("%w: %s is empty", ErrInvalid, memberName(k))
	}
	if !utf8.ValidString(v) {
		return fmt.Errorf("%w: %s is not valid UTF-8", ErrInvalid, memberName(k))
	}
	return nil
}

// checkURL accepts for member k what the issuer's `new URL(x)` accepts for a
// base URL: an absolute URL with a scheme and a host. The route policy is
// stricter and fails closed at request time.
func checkURL(k int, v string) error {
	if _, ok := knownURL(v); ok {
		return nil
	}
	if err := checkString(k, v); err != nil {
		return err
	}
	u, err := url.Parse(v)
	if err != nil || u.Scheme == "" || u.Host == "" || u.Opaque != "" {
		return fmt.Errorf("%w: %s is not an absolute URL", ErrInvalid, memberName(k))
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
	c := Claims{Subject: s}
	return string(c.render("capability.Subject", firstSubjectClaim, endSubjectClaims, redactedText))
}

// GoString is String: %#v must not reveal tokens either.
func (s Subject) GoString() string { return s.String() }

// Format makes every fmt verb (%v, %+v, %#v, %s, %d, …) use the redacted
// rendering.
func (s Subject) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(s.String())) }

// MarshalJSON renders the subject with its tokens redacted, so that no JSON
// encoder (a logger's Interface field, for instance) can leak them.
func (s Subject) MarshalJSON() ([]byte, error) {
	c := Claims{Subject: s}
	return c.render("", firstSubjectClaim, endSubjectClaims, redactedJSON), nil
}

// String renders the claims without their tokens.
func (c Claims) String() string {
	return string(c.render("capability.Claims", 0, numClaims, redactedText))
}

// GoString is String: %#v must not reveal tokens either.
func (c Claims) GoString() string { return c.String() }

// Format makes every fmt verb use the redacted rendering.
func (c Claims) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(c.String())) }

// MarshalJSON renders the claims in their wire shape with userToken and
// providerToken replaced by "[redacted]". Seal does not use it.
func (c Claims) MarshalJSON() ([]byte, error) {
	return c.render("", 0, numClaims, redactedJSON), nil
}

// IssuedTime returns issuedAt as a time.Time.
func (c Claims) IssuedTime() time.Time { return time.UnixMilli(c.IssuedAt) }

// ExpiryTime returns expiresAt as a time.Time.
func (c Claims) ExpiryTime() time.Time { return time.UnixMilli(c.ExpiresAt) }
