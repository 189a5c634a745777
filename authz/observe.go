package authz

import (
	"context"
	"fmt"
	"runtime/debug"
	"strings"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/extauthz/extauthz/capability"
	"github.com/extauthz/extauthz/policy"
)

// This file is the one observer of decisions. Decide hands it every
// decision with the question asked and the time taken, and from that one
// observation it writes the decision line, counts the metrics and sets the
// attributes of the span in the request's context (trace.go starts the
// spans). No adapter logs, counts or annotates a decision of its own, and
// nothing reads an answer back to learn what was decided. The capability
// API's answers that are not decisions (an issue, a revocation, a refused
// admin token) reach the span through answered.

// LogAllows says which allows get a decision line. Every deny gets one,
// whatever it says.
type LogAllows int

const (
	// LogAllowsAll logs every allow: the audit trail of every credential
	// use. The default.
	LogAllowsAll LogAllows = iota
	// LogAllowsSampled logs one allow in AllowSampleRate: the first, then
	// every AllowSampleRate-th after it, counted per Authorizer. Such a
	// line carries "sample": AllowSampleRate, the allows it stands for.
	LogAllowsSampled
	// LogAllowsNone logs no allow; the metrics still count every one.
	LogAllowsNone
)

// AllowSampleRate is the 1 in N of LogAllowsSampled.
const AllowSampleRate = 100

var logAllowsNames = [...]string{LogAllowsAll: "all", LogAllowsSampled: "sampled", LogAllowsNone: "none"}

// String is the name ParseLogAllows reads.
func (l LogAllows) String() string {
	if l < 0 || int(l) >= len(logAllowsNames) {
		return fmt.Sprintf("LogAllows(%d)", int(l))
	}
	return logAllowsNames[l]
}

// ParseLogAllows reads "all", "sampled" or "none".
func ParseLogAllows(s string) (LogAllows, error) {
	for l, name := range logAllowsNames {
		if s == name {
			return LogAllows(l), nil
		}
	}
	return 0, fmt.Errorf("want all, sampled or none, got %q", s)
}

// allowLog decides, allow by allow, which get a line.
type allowLog struct {
	mode LogAllows
	seen atomic.Uint64 // allows seen, in sampled mode
}

// logs reports whether this allow gets a line, and for a sampled one the
// allows the line stands for (0 when every allow is logged).
func (l *allowLog) logs() (ok bool, stands uint64) {
	switch l.mode {
	case LogAllowsNone:
		return false, 0
	case LogAllowsSampled:
		return l.seen.Add(1)%AllowSampleRate == 1, AllowSampleRate
	}
	return true, 0
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

// observe is the observer: metrics, the decision line and the span's
// attributes for one decision.
func (a *Authorizer) observe(ctx context.Context, in *Input, d *Decision, elapsed time.Duration) {
	result := "allow"
	if !d.Allowed() {
		result = "deny"
	}
	a.metrics.observe(result, d.Reason, d.Route.Class, d.profileLabel, elapsed)
	a.logDecision(in, d, result, elapsed)
	if span := trace.SpanFromContext(ctx); span.IsRecording() {
		a.annotate(span, in, d, result)
	}
}

// annotate sets a decision's attributes on its span. It is a function of
// its own so that observe's frame stays small when nothing is traced.
func (a *Authorizer) annotate(span trace.Span, in *Input, d *Decision, result string) {
	attrs := a.spanAttrs(in.Protocol, result, d.Reason, d.Route.Class)
	if d.Profile != "" {
		attrs = append(attrs, attrProfile.String(d.Profile))
	}
	if in.CallerID != "" {
		attrs = append(attrs, attrContainerID.String(logField(in.CallerID, maxLoggedField)))
	}
	span.SetAttributes(attrs...)
}

// logDecision writes the decision line: every deny, and the allows that
// Config.LogAllows asks for.
func (a *Authorizer) logDecision(in *Input, d *Decision, result string, elapsed time.Duration) {
	var stands uint64
	if d.Allowed() {
		var ok bool
		if ok, stands = a.allows.logs(); !ok {
			return
		}
	}
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
	if d.Profile != "" {
		ev = ev.Str("profile", d.Profile)
	}
	if stands != 0 {
		ev = ev.Uint64("sample", stands)
	}
	if a.log.GetLevel() <= zerolog.DebugLevel && d.UserID != "" {
		ev = ev.Str("user_id", d.UserID).
			Str("cloud_agent_session_id", d.CloudAgentSessionID).
			Str("kilo_session_id", d.KiloSessionID).
			Str("bound_container_id", d.OutboundContainerID)
	}
	ev.Msg("decision")
}

// spanAttrs are the attributes of a decision's span (docs/operations.md,
// "Tracing"): reason and route class only when there is one.
func (a *Authorizer) spanAttrs(protocol, result string, reason Reason, class policy.RouteClass) []attribute.KeyValue {
	attrs := make([]attribute.KeyValue, 0, 6)
	attrs = append(attrs, attrProtocol.String(protocol), attrDecision.String(result))
	if reason != ReasonNone {
		attrs = append(attrs, attrReason.String(string(reason)))
	}
	if class != "" {
		attrs = append(attrs, attrRouteClass.String(string(class)))
	}
	if fp := a.keyFingerprint(); fp != "" {
		attrs = append(attrs, attrKeyFingerprint.String(fp))
	}
	return attrs
}

// answered sets the span attributes of a capability API answer that is
// not a decision (an issue, a revocation, a refusal before any decision):
// an allow for a 2xx answer, else a deny whose reason is the answer's
// error slug. The API's own log lines say the rest.
func (a *Authorizer) answered(ctx context.Context, protocol string, ans *apiAnswer) {
	span := trace.SpanFromContext(ctx)
	if !span.IsRecording() {
		return
	}
	result, reason := "allow", ReasonNone
	if ans.status != 0 && (ans.status < 200 || ans.status > 299) {
		result, reason = "deny", Reason(ans.slug)
	}
	span.SetAttributes(a.spanAttrs(protocol, result, reason, "")...)
}

// recordPanic logs and counts a panic recovered by an adapter, which then
// denies with capability_configuration_error. The panic value is not
// logged (it might quote an input); its type and the stack are.
func (a *Authorizer) recordPanic(ctx context.Context, protocol string, p any) {
	if a == nil {
		return
	}
	a.metrics.observe("deny", ReasonConfigurationError, "", "", 0)
	a.log.Error().Str("protocol", protocol).Str("panic", fmt.Sprintf("%T", p)).
		Str("stack", string(debug.Stack())).Str("reason", string(ReasonConfigurationError)).
		Msg("panic while deciding; denied")
	if span := trace.SpanFromContext(ctx); span.IsRecording() {
		span.SetAttributes(a.spanAttrs(protocol, "deny", ReasonConfigurationError, "")...)
	}
}
