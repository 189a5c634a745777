package authz

import (
	"errors"
	"fmt"
	"runtime/debug"
	"strings"
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

	credential string
}

// Allowed reports whether the request may go upstream.
func (d Decision) Allowed() bool { return d.Reason == ReasonNone && d.credential != "" }

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
	return &Authorizer{codec: cfg.Codec, policy: p, targets: newPreparedTargets(p), log: cfg.Logger, metrics: cfg.Metrics, now: now,
		revoked: cfg.Revocations}, nil
}

// Decide answers one authorization question, logs one line and records the
// metrics for it.
func (a *Authorizer) Decide(in Input) Decision {
	start := a.now()
	d := a.decide(in)
	if !d.Allowed() {
		d.Reason = d.Reason.asDeny()
		d.credential = ""
	}
	elapsed := a.now().Sub(start)
	a.record(in, d, elapsed)
	return d
}

func (a *Authorizer) decide(in Input) Decision {
	if !in.Complete {
		return Decision{Reason: ReasonInvalidUpstreamURL}
	}
	token, reason := selectCapability(in.Authorization, in.Capability)
	if reason != ReasonNone {
		return Decision{Reason: reason}
	}
	claims, err := a.codec.Open(token)
	if err != nil {
		return Decision{Reason: ReasonOf(err)}
	}
	d := Decision{
		UserID:              claims.UserID,
		CloudAgentSessionID: claims.CloudAgentSessionID,
		KiloSessionID:       claims.KiloSessionID,
		OutboundContainerID: claims.OutboundContainerID,
	}
	if r := a.revocation(token, &claims); r != ReasonNone {
		d.Reason = r
		return d
	}
	if in.CallerID == "" || in.CallerID != claims.OutboundContainerID {
		d.Reason = ReasonContainerMismatch
		return d
	}
	route, err := a.policy.ClassifyPrepared(policy.Request{Scheme: in.Scheme, Authority: in.Authority, Path: in.Path}, a.targets.get(claims.Targets), claims.KiloSessionID)
	if err != nil {
		d.Reason = ReasonOf(err)
		if d.Reason != ReasonInvalidUpstreamURL && d.Reason != ReasonUpstreamNotAllowed {
			d.Reason = ReasonUpstreamNotAllowed
		}
		return d
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
	return d
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
	const scheme = "bearer"
	if len(v) <= len(scheme) || !strings.EqualFold(v[:len(scheme)], scheme) || (v[len(scheme)] != ' ' && v[len(scheme)] != '\t') {
		return "", false
	}
	tok := strings.TrimSpace(v[len(scheme):])
	if !strings.HasPrefix(tok, capability.Prefix) {
		return "", false
	}
	return tok, true
}

// maxLoggedField bounds each request attribute logged for one decision.
const maxLoggedField = 256

// redacted replaces a logged request attribute that contains a capability.
const redacted = "[redacted]"

// logField is a request attribute as logged: redacted when it contains a
// capability (a client put one in its URL), and bounded in length.
func logField(v string, limit int) string {
	if strings.Contains(v, capability.Prefix) {
		return redacted
	}
	if len(v) > limit {
		return v[:limit] + "…"
	}
	return v
}

// recordPanic logs and counts a panic recovered by an adapter, which then
// denies with capability_configuration_error. The panic value is not
// logged (it might quote an input); its type and the stack are.
func (a *Authorizer) recordPanic(protocol string, p any) {
	if a == nil {
		return
	}
	a.metrics.observe("deny", ReasonConfigurationError, "", 0)
	a.log.Error().Str("protocol", protocol).Str("panic", fmt.Sprintf("%T", p)).
		Str("stack", string(debug.Stack())).Str("reason", string(ReasonConfigurationError)).
		Msg("panic while deciding; denied")
}

func (a *Authorizer) record(in Input, d Decision, elapsed time.Duration) {
	result := "allow"
	if !d.Allowed() {
		result = "deny"
	}
	a.metrics.observe(result, d.Reason, d.Route.Class, elapsed)

	ev := a.log.Info()
	if !ev.Enabled() {
		return
	}
	path := in.Path
	if i := strings.IndexByte(path, '?'); i >= 0 {
		path = path[:i]
	}
	ev = ev.Str("decision", result).
		Str("protocol", in.Protocol).
		Str("method", logField(in.Method, maxLoggedField)).
		Str("host", logField(in.Authority, maxLoggedField)).
		Str("path", logField(path, maxLoggedField)).
		Dur("duration", elapsed).
		Str("container_id", logField(in.CallerID, maxLoggedField))
	if d.Reason != ReasonNone {
		ev = ev.Str("reason", string(d.Reason))
	}
	if d.Route.Class != "" {
		ev = ev.Str("route_class", string(d.Route.Class))
	}
	if a.log.GetLevel() <= zerolog.DebugLevel && d.UserID != "" {
		ev = ev.Str("user_id", d.UserID).
			Str("cloud_agent_session_id", d.CloudAgentSessionID).
			Str("kilo_session_id", d.KiloSessionID).
			Str("bound_container_id", d.OutboundContainerID)
	}
	ev.Msg("decision")
}
