// Package testsupport holds what the tests of several packages share: a
// goroutine-safe log sink and a capability subject with planted secrets.
// Only tests import it.
//
// It imports capability and policy to build a capability.Subject: an arrow
// from internal/testutil up to the product packages, which is why it lives
// here, where no production package can import it.
package testsupport

import (
	"github.com/extauthz/extauthz/capability"
	"github.com/extauthz/extauthz/internal/testutil/proc"
)

// Secrets planted in test subjects: no log line, metadata value, deny or
// error may ever contain one of them.
const (
	UserToken     = "SECRET-user-token-7f3a"
	ProviderToken = "SECRET-provider-token-91c2"
)

// Subject is a subject bound to container, with the planted tokens, the
// user "user-1", the cloud agent session "cas-1" and the session "sess-1".
func Subject(container string, targets capability.Targets) capability.Subject {
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
