package authz

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/extauthz/extauthz/capability"
	"github.com/extauthz/extauthz/policy"
	"github.com/extauthz/extauthz/revocation"
)

// Protocol names, one per adapter endpoint: the protocol of decision logs
// and metrics, and of the binary's spans. The HTTP listener's endpoints
// carry theirs in their Endpoint (endpoints.go).
const (
	ProtocolGRPC    = "grpc"
	ProtocolForward = "http-forward"
	ProtocolEnvoy   = "http-envoy"
	ProtocolIssue   = "api-issue"
	ProtocolRedeem  = "api-redeem"
	ProtocolRevoke  = "api-revoke"
)

// Input is one authorization question, already extracted from the proxy's
// protocol. Nothing in it is decoded or normalised.
type Input struct {
	// Protocol names the adapter that asked ("grpc", "http-forward", …); it is
	// used for logs and metrics only.
	Protocol string
	// Complete says the proxy sent every request attribute the decision
	// needs, each once or in agreement. It is false for a TCP check (no HTTP
	// attributes) and when a forwarded attribute is missing or ambiguous.
	Complete  bool
	Method    string
	Scheme    string
	Authority string
	Path      string // raw path with query
	// Authorization and Capability hold every value received for the
	// authorization header and the dedicated capability header.
	Authorization []string
	Capability    []string
	// CapabilityHeader is the dedicated header's name (lower case): a
	// profile capability found there counts as presented in that header,
	// which its profile must accept. "" for the capability API, whose body
	// is no presentation.
	CapabilityHeader string
	// Named holds every value of each header of profiles.headers, index
	// for index: the named headers a loaded profile accepts its capability
	// in.
	Named [][]string
	// profiles is the set of profiles the adapter read Named for; nil: the
	// set in force, with no named header read.
	profiles *profileState
	// CallerID is the identity of the asking container, from a trusted source;
	// "" means unknown.
	CallerID string
}

// Decision is the outcome of Decide. The zero value is not an allow.
type Decision struct {
	Reason Reason // ReasonNone when allowed
	Route  policy.Route
	// Non-secret facts from the capability, set once it opened.
	UserID              string
	CloudAgentSessionID string
	KiloSessionID       string
	OutboundContainerID string
	// Profile names the route profile of a profile capability, once it
	// opened.
	Profile string
	// profileLabel is Profile once found among the profiles in force: the
	// metrics' profile label, bounded by what the operator loads.
	profileLabel string

	credential string
	// inject is what a profile allow sets and removes upstream; its header
	// is "" for a kka1 decision.
	inject injection
	// challenge replaces the reason's WWW-Authenticate: a missing
	// capability where git needs a Basic challenge (basicChallenge).
	challenge string
}

// Allowed reports whether the request may go upstream.
func (d Decision) Allowed() bool { return d.Reason == ReasonNone && d.credential != "" }

// wwwAuthenticate is the challenge of a deny, "" for none.
func (d *Decision) wwwAuthenticate() string {
	if d.challenge != "" && d.Reason == ReasonMissingCapability {
		return d.challenge
	}
	return d.Reason.WWWAuthenticate()
}

// Credential is the real token to send upstream as a bearer. It is "" unless
// the decision allows. Callers must never log it.
func (d Decision) Credential() string {
	if !d.Allowed() {
		return ""
	}
	return d.credential
}

// Authorizer is the protocol-independent decision core.
type Authorizer struct {
	codec   *capability.Codec
	policy  *policy.Policy
	targets *preparedTargets
	log     zerolog.Logger
	metrics *Metrics
	now     func() time.Time
	revoked Revocations // nil: nothing is ever revoked
	allows  allowLog
	// fingerprint caches the sealing key's fingerprint for spans
	// (keyFingerprint).
	fingerprint atomic.Pointer[ringFingerprint]
	// profiles is the set of route profiles in force (profiles.go); nil
	// until SetProfiles.
	profiles atomic.Pointer[profileState]
}

// Config configures an Authorizer.
type Config struct {
	Codec  *capability.Codec
	Policy *policy.Policy // nil: the default policy
	Logger zerolog.Logger
	// Metrics may be nil.
	Metrics *Metrics
	// Now is used to measure decision latency; nil means time.Now.
	Now func() time.Time
	// Revocations may be nil: nothing is revoked.
	Revocations Revocations
	// LogAllows says which allows get a decision line (every deny gets
	// one); the zero value logs them all.
	LogAllows LogAllows
}

// Revocations says whether an opened capability has been revoked
// (revocation.ErrRevoked) or cannot be checked now
// (revocation.ErrUnavailable). Check runs on every decision: it must be an
// in-memory lookup (*revocation.Set is one).
type Revocations interface {
	Check(revocation.Subject) error
}

// NewAuthorizer returns a decision core.
func NewAuthorizer(cfg Config) (*Authorizer, error) {
	if cfg.Codec == nil {
		return nil, errors.New("authz: no capability codec configured")
	}
	p := cfg.Policy
	if p == nil {
		var err error
		if p, err = policy.New(); err != nil {
			return nil, err
		}
	}
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	if cfg.LogAllows < LogAllowsAll || cfg.LogAllows > LogAllowsNone {
		return nil, fmt.Errorf("authz: unknown %v", cfg.LogAllows)
	}
	a := &Authorizer{codec: cfg.Codec, policy: p, targets: newPreparedTargets(p), log: cfg.Logger, metrics: cfg.Metrics, now: now,
		revoked: cfg.Revocations}
	a.allows.mode = cfg.LogAllows
	return a, nil
}

// Decide answers one authorization question and hands it to the observer
// (observe.go): the decision line, the metrics, and the attributes of the
// span in ctx, if it carries one that records.
func (a *Authorizer) Decide(ctx context.Context, in Input) Decision {
	var d Decision
	a.decideInto(ctx, &in, &d)
	return d
}

// decideInto is Decide writing into d, which must be the zero Decision:
// the gRPC adapter's way, whose stack it spares a copy (decide).
func (a *Authorizer) decideInto(ctx context.Context, in *Input, d *Decision) {
	start := a.now()
	a.decide(in, d)
	if !d.Allowed() {
		d.Reason = d.Reason.asDeny()
		d.credential, d.inject = "", injection{}
	}
	elapsed := a.now().Sub(start)
	a.observe(ctx, in, d, elapsed)
}

// decide runs the checks of docs/decisions.md section 5, in order, and
// writes the outcome into d.
//
// It and the functions it calls write the decision into d rather than
// return it: a Decision is a few hundred bytes, and every copy of it on the
// way up was stack that each Check's goroutine may have to grow (the
// profile path's frames were 9 KiB, now under 5; BENCHMARKS.md, "Profile
// capabilities over gRPC").
func (a *Authorizer) decide(in *Input, d *Decision) {
	if !in.Complete {
		d.Reason = ReasonInvalidUpstreamURL
		return
	}
	st := in.profiles
	if st == nil {
		st = a.currentProfiles()
	}
	p, preason := findProfileCapability(in.Authorization, st.headers, in.Named)
	token, reason := selectCapability(in.Authorization, in.Capability)
	if preason == ReasonInvalidCapability || reason == ReasonInvalidCapability {
		d.Reason = ReasonInvalidCapability
		return
	}
	if reason == ReasonNone && capability.KindOf(token) == capability.KindProfile {
		// A profile capability in the dedicated header: presented there.
		if preason == ReasonNone && p.token != token {
			d.Reason = ReasonInvalidCapability
			return
		}
		p.token, preason, reason = token, ReasonNone, ReasonMissingCapability
		if place := (policy.Presentation{Kind: policy.PresentHeader, Header: in.CapabilityHeader}); in.CapabilityHeader != "" && !slices.Contains(p.places, place) {
			p.places = append(p.places, place)
		}
	}
	switch {
	case preason == ReasonNone && reason == ReasonNone:
		// A kka1 and a profile capability: two capabilities.
		d.Reason = ReasonInvalidCapability
	case preason == ReasonNone:
		a.decideProfile(in, st, &p, d)
	case reason != ReasonNone:
		d.Reason, d.challenge = reason, basicChallenge(st.list, policy.Request{Scheme: in.Scheme, Authority: in.Authority})
	default:
		a.decideKKA1(in, token, d)
	}
}

// decideKKA1 decides on the kka1 capability token (docs/decisions.md
// section 5, steps 3 to 6).
func (a *Authorizer) decideKKA1(in *Input, token string, d *Decision) {
	claims, err := a.codec.Open(token)
	if err != nil {
		d.Reason = ReasonOf(err)
		return
	}
	d.UserID, d.CloudAgentSessionID, d.KiloSessionID, d.OutboundContainerID = claims.UserID, claims.CloudAgentSessionID, claims.KiloSessionID, claims.OutboundContainerID
	if r := a.revocation(token, &claims); r != ReasonNone {
		d.Reason = r
		return
	}
	if in.CallerID == "" || in.CallerID != claims.OutboundContainerID {
		d.Reason = ReasonContainerMismatch
		return
	}
	route, err := a.policy.ClassifyPrepared(policy.Request{Scheme: in.Scheme, Authority: in.Authority, Path: in.Path}, a.targets.get(claims.Targets), claims.KiloSessionID)
	if err != nil {
		d.Reason = classifyReason(err)
		return
	}
	d.Route = route
	switch route.Credential {
	case policy.CredentialProvider:
		d.credential = claims.ProviderToken
		if d.credential == "" {
			d.credential = claims.UserToken
		}
	case policy.CredentialUser:
		d.credential = claims.UserToken
	}
	if !validCredential(d.credential) {
		// Empty is unreachable with a valid capability. A control character
		// (CR, LF, NUL…) would inject a header upstream or make the proxy
		// reject the mutation: the capability carries an unusable token.
		d.credential = ""
		d.Reason = ReasonInvalidCapability
	}
}

// classifyReason is the deny reason of a route classification error:
// invalid_upstream_url, else upstream_not_allowed.
func classifyReason(err error) Reason {
	if r := ReasonOf(err); r == ReasonInvalidUpstreamURL {
		return r
	}
	return ReasonUpstreamNotAllowed
}

// revocation is the revocation check of docs/decisions.md section 5, step
// 4: after the capability opens, before the caller and the route.
func (a *Authorizer) revocation(token string, c *capability.Claims) Reason {
	if a.revoked == nil {
		return ReasonNone
	}
	return ReasonOf(a.revoked.Check(revocation.Subject{
		Token: token, UserID: c.UserID, CloudAgentSessionID: c.CloudAgentSessionID,
		KiloSessionID: c.KiloSessionID, OutboundContainerID: c.OutboundContainerID, IssuedAt: c.IssuedAt,
	}))
}

// validCredential reports whether a credential can travel as a header field
// value after "Bearer ": non-empty, no control character other than HTAB.
func validCredential(c string) bool {
	if c == "" {
		return false
	}
	for i := 0; i < len(c); i++ {
		if b := c[i]; (b < 0x20 && b != '\t') || b == 0x7f {
			return false
		}
	}
	return true
}

// selectCapability finds the one capability a request presents. Values are
// every occurrence of each header (comma-joined duplicates are split). It is
// strict: two different capabilities anywhere is invalid_capability. A bearer
// that is not a kka1 capability is ignored.
func selectCapability(authorization, dedicated []string) (string, Reason) {
	d, okD := agree(listForm, nil, dedicated)
	b, okB := agree(listForm, bearerCapability, authorization)
	switch {
	case !okD || !okB || (d != "" && b != "" && d != b):
		return "", ReasonInvalidCapability
	case d == "" && b == "":
		return "", ReasonMissingCapability
	case d != "":
		return d, ReasonNone
	default:
		return b, ReasonNone
	}
}

// bearerCapability returns the capability in an authorization value of the
// form "Bearer kka1.…" (scheme case-insensitive, prefix case-sensitive).
func bearerCapability(v string) (string, bool) {
	tok, ok := authParam(v, "bearer")
	if !ok || !strings.HasPrefix(tok, capability.Prefix) {
		return "", false
	}
	return tok, true
}
