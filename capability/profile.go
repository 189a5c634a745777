package capability

import (
	"encoding/base64"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"
	"unicode/utf8"

	"github.com/go-json-experiment/json/jsontext"

	"github.com/extauthz/extauthz/internal/strictjson"
)

// This file is the second capability kind, for route profiles
// (docs/profile-capability.md): the same key ring, cipher and layout as
// kka1, its own prefix, and the prefix bound as additional authenticated
// data, so that no ciphertext of one kind ever opens as the other.

// Wire constants of the profile capability format.
const (
	// ProfilePrefix starts every profile capability; "1" is its version.
	ProfilePrefix = "eac1."
	// ProfileVersion is the claims' version.
	ProfileVersion = 1
	// Bounds on the claims' maps and values.
	maxMapMembers    = 32
	maxIDLen         = 1024
	maxCredentialLen = 16 << 10
)

// profileAAD is the additional authenticated data of every profile
// capability: its prefix, which carries the version.
var profileAAD = []byte(ProfilePrefix)

// ProfileSubject is what a profile capability is issued for.
type ProfileSubject struct {
	// Profile names the route profile whose routes the capability opens.
	Profile string
	// OutboundContainerID is the container the capability is bound to.
	OutboundContainerID string
	// Subject holds string ids (user, session, tenant, …) for audit and
	// revocation.
	Subject map[string]string
	// Vars bind the {var} segments of the profile's routes.
	Vars map[string]string
	// Credentials maps each credential slot to its secret.
	Credentials map[string]string
}

// ProfileClaims are an opened profile capability.
type ProfileClaims struct {
	ProfileSubject
	Version   int
	IssuedAt  int64 // milliseconds since the Unix epoch
	ExpiresAt int64
}

// validMapKey reports whether s may name a subject id, a variable or a
// slot: a letter, then up to 62 letters, digits, '_' and '-' (ASCII). A
// loop, not a regexp: it runs for every key of every profile capability
// opened.
func validMapKey(s string) bool {
	if len(s) == 0 || len(s) > 63 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		letter := (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
		if !letter && (i == 0 || !((c >= '0' && c <= '9') || c == '_' || c == '-')) {
			return false
		}
	}
	return true
}

// ValidMapKey reports whether s may name a member of a profile capability's
// subject, vars or credentials: 1 to 63 letters, digits, '-' and '_',
// starting with a letter (so never '=': revocation writes a subject id as
// key=value).
func ValidMapKey(s string) bool { return validMapKey(s) }

// validate applies the claim rules of docs/profile-capability.md.
func (c *ProfileClaims) validate() error {
	switch {
	case c.Version != ProfileVersion:
		return fmt.Errorf("%w: unsupported version", ErrInvalid)
	case !validMapKey(c.Profile):
		return fmt.Errorf("%w: profile: want a name of letters, digits, '-' and '_'", ErrInvalid)
	case c.OutboundContainerID == "" || len(c.OutboundContainerID) > maxIDLen || !utf8.ValidString(c.OutboundContainerID):
		return fmt.Errorf("%w: outboundContainerId: want a non-empty string", ErrInvalid)
	case len(c.Credentials) == 0:
		return fmt.Errorf("%w: credentials: want at least one slot", ErrInvalid)
	case c.IssuedAt < 0 || c.ExpiresAt <= c.IssuedAt || c.ExpiresAt > maxSafeInteger:
		return fmt.Errorf("%w: want 0 <= issuedAt < expiresAt", ErrInvalid)
	case c.ExpiresAt-c.IssuedAt > MaxLifetime.Milliseconds():
		return fmt.Errorf("%w: lifetime over %s", ErrInvalid, MaxLifetime)
	}
	for _, m := range []struct {
		name   string
		values map[string]string
		max    int
	}{{"subject", c.Subject, maxIDLen}, {"vars", c.Vars, maxIDLen}, {"credentials", c.Credentials, maxCredentialLen}} {
		if len(m.values) > maxMapMembers {
			return fmt.Errorf("%w: %s: more than %d members", ErrInvalid, m.name, maxMapMembers)
		}
		for k, v := range m.values {
			if !validMapKey(k) || v == "" || len(v) > m.max || !utf8.ValidString(v) {
				return fmt.Errorf("%w: %s: want names of letters, digits, '-' and '_' and non-empty values of at most %d bytes", ErrInvalid, m.name, m.max)
			}
		}
	}
	return nil
}

// profileMembers are the claims' member names, in their written order.
var profileMembers = []string{"version", "profile", "outboundContainerId", "subject", "vars", "credentials", "issuedAt", "expiresAt"}

// marshal writes the claims as JSON, members in profileMembers' order and
// map members sorted, so that the same claims always give the same bytes.
func (c *ProfileClaims) marshal() ([]byte, error) {
	b := []byte(`{"version":`)
	b = fmt.Appendf(b, "%d", c.Version)
	var err error
	str := func(name, v string) {
		if err == nil {
			b = append(b, `,"`+name+`":`...)
			b, err = jsontext.AppendQuote(b, v)
		}
	}
	obj := func(name string, m map[string]string) {
		b = append(b, `,"`+name+`":{`...)
		for i, k := range slices.Sorted(maps.Keys(m)) {
			if i > 0 {
				b = append(b, ',')
			}
			if err == nil {
				b, err = jsontext.AppendQuote(b, k)
			}
			b = append(b, ':')
			if err == nil {
				b, err = jsontext.AppendQuote(b, m[k])
			}
		}
		b = append(b, '}')
	}
	str("profile", c.Profile)
	str("outboundContainerId", c.OutboundContainerID)
	obj("subject", c.Subject)
	obj("vars", c.Vars)
	obj("credentials", c.Credentials)
	b = fmt.Appendf(b, `,"issuedAt":%d,"expiresAt":%d}`, c.IssuedAt, c.ExpiresAt)
	if err != nil {
		return nil, fmt.Errorf("%w: a claim is not valid UTF-8", ErrInvalid)
	}
	return b, nil
}

// decodeProfileClaims reads claims JSON as strictly as kka1's: exactly the
// members of profileMembers, exact types, no repeated name, nothing after.
func decodeProfileClaims(data []byte) (ProfileClaims, error) {
	var c ProfileClaims
	var seen uint64
	err := strictjson.Decode(data, "claims", func(rd *strictjson.Reader) error {
		var err error
		seen, err = rd.Object("", profileMembers, func(i int, p strictjson.Pointer) error {
			var err error
			var n int64
			switch profileMembers[i] {
			case "version":
				n, err = rd.Int(p)
				c.Version = int(n)
			case "issuedAt":
				c.IssuedAt, err = rd.Int(p)
			case "expiresAt":
				c.ExpiresAt, err = rd.Int(p)
			default:
				err = readProfileSubjectMember(rd, &c.ProfileSubject, profileMembers[i], p)
			}
			return err
		})
		return err
	})
	if err != nil {
		return ProfileClaims{}, fmt.Errorf("%w: claims: %v", ErrInvalid, err)
	}
	if seen != 1<<len(profileMembers)-1 {
		return ProfileClaims{}, fmt.Errorf("%w: claims: a member is missing", ErrInvalid)
	}
	if err := c.validate(); err != nil {
		return ProfileClaims{}, err
	}
	return c, nil
}

// readProfileSubjectMember reads the member name of a ProfileSubject, in
// the claims or in a profile subject document.
func readProfileSubjectMember(rd *strictjson.Reader, s *ProfileSubject, name string, p strictjson.Pointer) (err error) {
	switch name {
	case "profile":
		s.Profile, err = rd.String(p)
	case "outboundContainerId":
		s.OutboundContainerID, err = rd.String(p)
	case "subject":
		s.Subject, err = rd.StringMap(p, maxMapMembers, validMapKey)
	case "vars":
		s.Vars, err = rd.StringMap(p, maxMapMembers, validMapKey)
	case "credentials":
		s.Credentials, err = rd.StringMap(p, maxMapMembers, validMapKey)
	}
	return err
}

// profileSubjectNames are the members of a profile subject document.
var profileSubjectNames = []string{"profile", "outboundContainerId", "subject", "vars", "credentials"}

// DecodeProfileSubject decodes a profile subject document: the issue API's
// body for a profile capability, with the claims' members profile,
// outboundContainerId, subject, vars and credentials
// (docs/profile-capability.md), read as strictly as the claims, and the
// extra members (the API's ttlSeconds). A member may be absent: it decodes
// to its zero value, and issuing refuses what the profile needs. A
// malformed document is a *SubjectError; no error quotes a name or a value
// from data.
func DecodeProfileSubject(data []byte, extra ...ExtraMember) (ProfileSubject, error) {
	var s ProfileSubject
	_, err := decodeDocument(data, profileSubjectNames, extra, func(rd *strictjson.Reader, i int, p strictjson.Pointer) error {
		return readProfileSubjectMember(rd, &s, profileSubjectNames[i], p)
	})
	if err != nil {
		return ProfileSubject{}, err
	}
	return s, nil
}

// SealProfile issues a profile capability for s, valid from now for ttl (0
// means DefaultLifetime). Whether the profile exists and s fits it (its
// slots and variables, its maximum lifetime) is for the issuer to check
// (authz), since this package knows no profile.
func (c *Codec) SealProfile(s ProfileSubject, ttl time.Duration) (string, error) {
	r, iat, exp, err := c.issueWindow(ttl)
	if err != nil {
		return "", err
	}
	claims := ProfileClaims{ProfileSubject: s, Version: ProfileVersion, IssuedAt: iat, ExpiresAt: exp}
	if err := claims.validate(); err != nil {
		return "", err
	}
	plain, err := claims.marshal()
	if err != nil {
		return "", err
	}
	return sealPlain(r, ProfilePrefix, plain, profileAAD)
}

// sealToken lays out prefix<iv>:<tag>:<ct> from the AEAD's output
// (ciphertext then tag).
func sealToken(prefix string, sealed []byte, iv *[ivSize]byte) (string, error) {
	ct, tag := sealed[:len(sealed)-tagSize], sealed[len(sealed)-tagSize:]
	enc := base64.StdEncoding
	out := make([]byte, 0, len(prefix)+enc.EncodedLen(ivSize)+enc.EncodedLen(tagSize)+enc.EncodedLen(len(ct))+2)
	out = append(out, prefix...)
	out = enc.AppendEncode(out, iv[:])
	out = append(out, ':')
	out = enc.AppendEncode(out, tag)
	out = append(out, ':')
	out = enc.AppendEncode(out, ct)
	if len(out) > MaxTokenLen {
		return "", fmt.Errorf("%w: capability would exceed %d bytes", ErrInvalid, MaxTokenLen)
	}
	return string(out), nil
}

// OpenProfile checks a profile capability's format, decrypts it with the
// first key that authenticates it (its prefix bound as additional data),
// decodes and checks its claims, then checks its time window. Errors wrap
// ErrInvalid, ErrExpired or ErrConfig.
//
// With a cache (WithCache), the claims of a capability opened before with
// the current key ring come from it, their time window checked again; their
// maps are then shared with every other holder of those claims, so a caller
// must only read them.
func (c *Codec) OpenProfile(token string) (ProfileClaims, error) {
	r, err := c.keys()
	if err != nil {
		return ProfileClaims{}, err
	}
	return openCached(c.profileCache, r, token, c.profileWindow, func() (ProfileClaims, error) { return c.openProfile(r, token) })
}

// profileWindow checks opened profile claims' time window.
func (c *Codec) profileWindow(p ProfileClaims) error { return c.checkTimes(p.IssuedAt, p.ExpiresAt) }

// openProfile is OpenProfile without the cache.
func (c *Codec) openProfile(r *KeyRing, token string) (ProfileClaims, error) {
	var iv [ivSize]byte
	sealed, err := parseToken(&iv, nil, token, ProfilePrefix)
	if err != nil {
		return ProfileClaims{}, err
	}
	var plain []byte
	for _, aead := range r.aeads {
		if p, err := aead.Open(nil, iv[:], sealed, profileAAD); err == nil {
			plain = p
			break
		}
	}
	if plain == nil {
		return ProfileClaims{}, fmt.Errorf("%w: does not authenticate with any configured key", ErrInvalid)
	}
	defer clear(plain)
	claims, err := decodeProfileClaims(plain)
	if err != nil {
		return ProfileClaims{}, err
	}
	if err := c.profileWindow(claims); err != nil {
		return ProfileClaims{}, err
	}
	return claims, nil
}

// Kind is which format a capability string is in, by its prefix.
type Kind uint8

// Capability kinds.
const (
	KindUnknown Kind = iota
	KindKKA1
	KindProfile
)

// KindOf reports a capability's kind by its prefix (after surrounding white
// space), without checking anything else.
func KindOf(token string) Kind {
	for len(token) > 0 && (token[0] == ' ' || token[0] == '\t' || token[0] == '\n' || token[0] == '\r') {
		token = token[1:]
	}
	switch {
	case len(token) >= len(Prefix) && token[:len(Prefix)] == Prefix:
		return KindKKA1
	case len(token) >= len(ProfilePrefix) && token[:len(ProfilePrefix)] == ProfilePrefix:
		return KindProfile
	}
	return KindUnknown
}

// redactedProfile is how ProfileClaims render: ids, never a credential.
func (c ProfileClaims) String() string {
	return fmt.Sprintf("{profile:%s outboundContainerId:%s subject:%v vars:%v credentials:%v issuedAt:%d expiresAt:%d}",
		c.Profile, c.OutboundContainerID, c.Subject, c.Vars, slices.Sorted(maps.Keys(c.Credentials)), c.IssuedAt, c.ExpiresAt)
}

// GoString is String: %#v shows no credential either.
func (c ProfileClaims) GoString() string { return c.String() }

// Format makes every verb print String.
func (c ProfileClaims) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(c.String())) }

// String of a ProfileSubject shows no credential.
func (s ProfileSubject) String() string { return ProfileClaims{ProfileSubject: s}.String() }

// GoString is String.
func (s ProfileSubject) GoString() string { return s.String() }

// Format makes every verb print String.
func (s ProfileSubject) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(s.String())) }

// MarshalJSON refuses: a subject holds credentials and is never rendered.
func (s ProfileSubject) MarshalJSON() ([]byte, error) {
	return nil, errors.New("capability: a profile subject holds credentials and is not rendered as JSON")
}

// MarshalJSON refuses, as ProfileSubject's does.
func (c ProfileClaims) MarshalJSON() ([]byte, error) { return c.ProfileSubject.MarshalJSON() }
