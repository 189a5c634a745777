package revocation

import (
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/extauthz/extauthz/capability"
)

// Sentinels that Set.Check returns; authz maps them to deny reasons.
var (
	// ErrRevoked: the capability matches a revocation.
	ErrRevoked = errors.New("revocation: capability revoked")
	// ErrUnavailable: the set is too stale to trust (fail closed).
	ErrUnavailable = errors.New("revocation: revocation set unavailable")
	// ErrInvalid: a revocation request is malformed.
	ErrInvalid = errors.New("revocation: invalid revocation")
)

// EntryLifetime is how long an entry is kept after its revocation time. A
// subject entry matches capabilities issued up to capability.ClockSkew after
// it (Set.Check), and such a capability stays valid for at most
// capability.MaxLifetime from its issuedAt: so nothing the entry matches is
// still valid once it expires. (A capability entry needs less: the
// capability was issued before it was revoked.)
const EntryLifetime = capability.MaxLifetime + capability.ClockSkew

// Kind names what an entry revokes. The names are those of the API body
// members and of the claims.
type Kind string

// Kinds.
const (
	KindCapability        Kind = "capability"
	KindKiloSession       Kind = "kiloSessionId"
	KindCloudAgentSession Kind = "cloudAgentSessionId"
	KindOutboundContainer Kind = "outboundContainerId"
	KindUser              Kind = "userId"
	maxValueLen                = 1024
	maxReasonLen               = 1024
	maxActorLen                = 256
	capabilityIDLen            = 2 * capability.IDSize // in hex
)

// KindSubject revokes every profile capability whose subject map holds one
// id: its value is "key=value", the key a profile capability's member name
// (capability.ValidMapKey), the value as the other kinds'.
const KindSubject Kind = "subject"

// Kinds lists every kind, in API order.
var Kinds = []Kind{KindCapability, KindKiloSession, KindCloudAgentSession, KindOutboundContainer, KindUser, KindSubject}

// subjectIndex is KindSubject's index in Kinds.
const subjectIndex = 5

// Entry is one revocation. Value is the capability id for KindCapability,
// else the claim value. Times are milliseconds since the Unix epoch.
type Entry struct {
	Kind      Kind   `json:"kind"`
	Value     string `json:"value"`
	RevokedAt int64  `json:"revokedAt"`
	ExpiresAt int64  `json:"expiresAt"`
	Reason    string `json:"reason,omitempty"`
	Actor     string `json:"actor,omitempty"`
}

// key orders and identifies entries: one per kind and value.
func (e Entry) key() string { return string(e.Kind) + "\x00" + e.Value }

// Subject is what Check needs from an opened capability.
type Subject struct {
	Token               string // the capability as it opened (kka1 or eac1); only its id (capability.ID) is used
	UserID              string
	CloudAgentSessionID string
	KiloSessionID       string
	OutboundContainerID string
	Subjects            map[string]string // a profile capability's subject ids
	IssuedAt            int64             // milliseconds since the Unix epoch
}

// NewEntry builds the entry that revokes value of kind at now, for the API
// and the stores. For KindCapability, value is the capability string (kka1
// or eac1) and the entry keeps only its id (capability.ID), in lower-case
// hex. For KindSubject, value is "key=value". Errors wrap ErrInvalid and
// never quote value.
func NewEntry(kind Kind, value, reason, actor string, now time.Time) (Entry, error) {
	e := Entry{Kind: kind, Reason: reason, Actor: truncate(actor, maxActorLen)}
	switch kind {
	case KindCapability:
		id, ok := capability.ID(value)
		if !ok {
			return Entry{}, fmt.Errorf("%w: capability is not a well-formed kka1 or eac1 capability", ErrInvalid)
		}
		e.Value = hex.EncodeToString(id[:])
	case KindKiloSession, KindCloudAgentSession, KindOutboundContainer, KindUser:
		if !validValue(value) || quotesCapability(value) {
			return Entry{}, fmt.Errorf("%w: %s must be a non-empty UTF-8 string of at most %d bytes", ErrInvalid, kind, maxValueLen)
		}
		e.Value = value
	case KindSubject:
		if !validSubject(value) || quotesCapability(value) {
			return Entry{}, fmt.Errorf("%w: subject must be key=value: a key of letters, digits, '-' and '_' starting with a letter (at most 63), a non-empty UTF-8 value of at most %d bytes", ErrInvalid, maxValueLen)
		}
		e.Value = value
	default:
		return Entry{}, fmt.Errorf("%w: unknown kind", ErrInvalid)
	}
	if len(reason) > maxReasonLen || !utf8.ValidString(reason) || quotesCapability(reason) {
		return Entry{}, fmt.Errorf("%w: reason must be UTF-8, at most %d bytes, and quote no capability", ErrInvalid, maxReasonLen)
	}
	e.RevokedAt = now.UnixMilli()
	e.ExpiresAt = e.RevokedAt + EntryLifetime.Milliseconds()
	return e, nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "")
}

// validValue is the rule of a session, container, user or subject id.
func validValue(v string) bool { return v != "" && len(v) <= maxValueLen && utf8.ValidString(v) }

// validSubject is the rule of a KindSubject value: key=value, the key a
// profile capability's member name (it holds no '='), the value an id.
func validSubject(v string) bool {
	key, value, ok := strings.Cut(v, "=")
	return ok && capability.ValidMapKey(key) && validValue(value)
}

// quotesCapability reports whether s holds the prefix of a capability of
// either kind: a capability pasted where an id or a reason belongs is never
// stored.
func quotesCapability(s string) bool {
	return strings.Contains(s, capability.Prefix) || strings.Contains(s, capability.ProfilePrefix)
}

// valid checks an entry read back from a store.
func (e Entry) valid() bool {
	switch e.Kind {
	case KindCapability:
		_, err := hex.DecodeString(e.Value)
		return err == nil && len(e.Value) == capabilityIDLen
	case KindKiloSession, KindCloudAgentSession, KindOutboundContainer, KindUser:
		return e.Value != "" && len(e.Value) <= maxValueLen
	case KindSubject:
		return validSubject(e.Value)
	}
	return false
}
