package policy_test

import (
	"errors"
	"slices"
	"testing"

	"github.com/extauthz/extauthz/policy"
	"github.com/extauthz/extauthz/profiles"
)

// kiloProfile loads the shipped kilo profile.
func kiloProfile(t testing.TB) *policy.Profile {
	t.Helper()
	set, err := profiles.Load("../profiles/kilo.yaml", nil)
	if err != nil {
		t.Fatal(err)
	}
	pr, ok := set.Profile("kilo")
	if !ok {
		t.Fatal("profiles/kilo.yaml has no profile named kilo")
	}
	return pr
}

var slotOf = map[policy.Credential]string{policy.CredentialUser: "user", policy.CredentialProvider: "provider"}

// sameDecision fails unless the built-in table and the kilo profile decide
// req alike: the same class and credential, or the same reason slug.
func sameDecision(t *testing.T, pr *policy.Profile, req policy.Request, targets policy.Targets, sess string) {
	t.Helper()
	want, werr := policy.Classify(req, targets, sess)
	got, gerr := pr.Classify(req, policy.Prepare(targets), []policy.Var{{Name: "kiloSessionId", Value: sess}})
	slug := func(err error) string {
		switch {
		case err == nil:
			return ""
		case errors.Is(err, policy.ErrInvalidUpstreamURL):
			return policy.ErrInvalidUpstreamURL.Error()
		case errors.Is(err, policy.ErrUpstreamNotAllowed):
			return policy.ErrUpstreamNotAllowed.Error()
		}
		return "unexpected: " + err.Error()
	}
	if slug(gerr) != slug(werr) || got.Class != want.Class || (werr == nil && got.Slot != slotOf[want.Credential]) ||
		(werr == nil && got.Inject.Kind != policy.InjectBearer) {
		t.Fatalf("%+v under %+v, session %q: kilo profile %+v, %v; built-in table %+v, %v", req, targets, sess, got, gerr, want, werr)
	}
}

// TestKiloProfileMatchesBuiltIn runs every rule and attack case against
// every target shape through the built-in table and profiles/kilo.yaml.
func TestKiloProfileMatchesBuiltIn(t *testing.T) {
	pr := kiloProfile(t)
	if !slices.Equal(pr.Slots(), []string{"provider", "user"}) || !slices.Equal(pr.Vars(), []string{"kiloSessionId"}) || !pr.UsesTargets() {
		t.Fatalf("kilo profile: slots %v, vars %v, uses targets %v", pr.Slots(), pr.Vars(), pr.UsesTargets())
	}
	shapes, cases := policy.Corpus()
	names := make([]string, 0, len(shapes))
	for n := range shapes {
		names = append(names, n)
	}
	slices.Sort(names)
	n := 0
	for _, c := range cases {
		scheme := c.Scheme
		if scheme == "" {
			scheme = "https"
		}
		for _, shape := range names {
			for _, sess := range []string{policy.SessionID, "sess-2", c.Session} {
				sameDecision(t, pr, policy.Request{Scheme: scheme, Authority: c.Authority, Path: c.Path}, shapes[shape], sess)
				n++
			}
		}
	}
	t.Logf("%d decisions agree", n)
}

func FuzzKiloProfile(f *testing.F) {
	shapes, cases := policy.Corpus()
	names := make([]string, 0, len(shapes))
	for n := range shapes {
		names = append(names, n)
	}
	slices.Sort(names)
	for i, c := range cases {
		sel := uint8(slices.Index(names, c.Shape))
		f.Add(c.Scheme, c.Authority, c.Path, c.Session, sel, "")
		f.Add(c.Scheme, c.Authority, c.Path, c.Session, sel|0x80|uint8(i%3)<<4, "https://app.example.com/api")
	}
	pr := kiloProfile(f)
	f.Fuzz(func(t *testing.T, scheme, authority, path, sess string, sel uint8, target string) {
		if scheme == "" {
			scheme = "https"
		}
		sameDecision(t, pr, policy.Request{Scheme: scheme, Authority: authority, Path: path}, policy.FuzzTargets(sel, target), sess)
	})
}
