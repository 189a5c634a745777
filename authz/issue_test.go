package authz

import (
	"errors"
	"testing"
	"time"

	"github.com/extauthz/extauthz/capability"
)

// TestIssueLifetimeRule: Issue applies capability.CheckLifetime and nothing
// else: 0 is refused (it is not "the default"), the bounds are inclusive.
func TestIssueLifetimeRule(t *testing.T) {
	core := newTestCore(t, nil, nil)
	doc := []byte(issueBody(nil))
	for _, tc := range []struct {
		ttl  time.Duration
		want Reason
	}{
		{0, ReasonInvalidCapability},
		{-time.Second, ReasonInvalidCapability},
		{time.Millisecond - 1, ReasonInvalidCapability},
		{time.Millisecond, ReasonNone},
		{capability.MaxLifetime, ReasonNone},
		{capability.MaxLifetime + time.Millisecond, ReasonInvalidCapability},
	} {
		_, err := core.Issue(doc, tc.ttl)
		if got := ReasonOf(err); got != tc.want {
			t.Errorf("Issue(ttl %v) = %q; want %q", tc.ttl, got, tc.want)
		}
		if (capability.CheckLifetime(tc.ttl) == nil) != (tc.want == ReasonNone) {
			t.Errorf("CheckLifetime(%v) disagrees with Issue", tc.ttl)
		}
	}
	if _, err := core.Issue([]byte(`{"userId":1}`), time.Hour); !errors.As(err, new(*capability.SubjectError)) {
		t.Errorf("Issue(malformed) = %v; want a *capability.SubjectError", err)
	}
}
