// Package testsupport holds what the tests of several packages share: a
// goroutine-safe log sink, a capability subject with planted secrets, and
// planted trace contexts.
// Only tests import it.
//
// It imports capability and policy to build a capability.Subject: an arrow
// from internal/testutil up to the product packages, which is why it lives
// here, where no production package can import it.
package testsupport

import (
	"github.com/extauthz/extauthz/capability"
	"github.com/extauthz/extauthz/internal/testutil/proc"
	"github.com/extauthz/extauthz/policy"
)

// Secrets planted in test subjects: no log line, metadata value, deny or
// error may ever contain one of them.
const (
	UserToken     = "SECRET-user-token-7f3a"
	ProviderToken = "SECRET-provider-token-91c2"
)

// Trace contexts the tracing tests plant in requests: a W3C parent
// (TraceParent, sampled) and a B3 one.
const (
	W3CTraceID  = "4bf92f3577b34da6a3ce929d0e0e4736"
	W3CSpanID   = "00f067aa0ba902b7"
	B3TraceID   = "80f198ee56343ba864fe8b2a57d3eff7"
	B3SpanID    = "e457b5a2e4d86bd1"
	TraceParent = "00-" + W3CTraceID + "-" + W3CSpanID + "-01"
)

// Subject is a subject bound to container, with the planted tokens, the
// user "user-1", the cloud agent session "cas-1" and the session "sess-1".
func Subject(container string, targets policy.Targets) capability.Subject {
	return capability.Subject{
		UserID:              "user-1",
		CloudAgentSessionID: "cas-1",
		KiloSessionID:       "sess-1",
		OutboundContainerID: container,
		UserToken:           UserToken,
		ProviderToken:       ProviderToken,
		Targets:             targets,
	}
}

// LockedBuffer is a goroutine-safe io.Writer that collects log lines or a
// process's output for assertions. The zero value is ready to use.
type LockedBuffer = proc.Output
