package authz

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/extauthz/extauthz/capability"
	"github.com/extauthz/extauthz/policy"
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

// TestIssueTargetRule: issuing checks each of the three targets against the
// Authorizer's route policy (the one place it is checked; Codec.Seal knows
// no policy), after the claim rules, and a policy that allows more issues
// more.
func TestIssueTargetRule(t *testing.T) {
	devPolicy, err := policy.New("dev.test")
	if err != nil {
		t.Fatal(err)
	}
	withDev, err := NewAuthorizer(Config{Codec: newCodec(t, testClock, testKey), Policy: devPolicy, Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	byDefault := newTestCore(t, nil, nil)
	targets := map[string]func(*capability.Targets) *string{
		"backend":        func(t *capability.Targets) *string { return &t.BackendBaseURL },
		"provider":       func(t *capability.Targets) *string { return &t.ProviderBaseURL },
		"session ingest": func(t *capability.Targets) *string { return &t.SessionIngestBaseURL },
	}
	for name, target := range targets {
		t.Run(name, func(t *testing.T) {
			s := testSubject()
			*target(&s.Targets) = "http://dev.test/api" // an absolute URL, plain http to a public host
			if _, err := byDefault.IssueSubject(s, time.Hour); !errors.Is(err, policy.ErrInvalidTargets) || ReasonOf(err) != ReasonInvalidTargets {
				t.Errorf("default policy: IssueSubject = %v; want invalid_targets", err)
			}
			secret := s
			*target(&secret.Targets) = "http://" + secretUserToken + ".example"
			if _, err := byDefault.IssueSubject(secret, time.Hour); err == nil || strings.Contains(fmt.Sprintf("%v %+v", err, err), secretUserToken) {
				t.Errorf("a refused target's error quotes it, or no error: %v", err)
			}
			if _, err := withDev.IssueSubject(s, time.Hour); err != nil {
				t.Errorf("policy allowing dev.test: IssueSubject = %v; want a capability", err)
			}
			s.UserID = "" // a claim rule broken too: it decides first
			if _, err := byDefault.IssueSubject(s, time.Hour); ReasonOf(err) != ReasonInvalidCapability {
				t.Errorf("empty userId and a refused target: IssueSubject = %v; want invalid_capability", err)
			}
		})
	}
	// The codec alone seals what the claims allow: the policy is not its
	// to apply.
	s := testSubject()
	s.Targets.BackendBaseURL = "http://dev.test/api"
	if _, err := newCodec(t, testClock, testKey).Seal(s, time.Hour); err != nil {
		t.Errorf("Codec.Seal(targets the policy refuses) = %v; want a capability (the policy is authz's)", err)
	}
}
