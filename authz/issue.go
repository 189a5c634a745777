package authz

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/extauthz/extauthz/capability"
	"github.com/extauthz/extauthz/policy"
)

// Issue seals a capability for a subject document (the JSON that
// capability.DecodeSubject reads), valid for ttl. It is the one issuance
// sequence, shared by the capability API and `extauthz issue`:
//
//  1. decode the document strictly (a malformed one is a
//     *capability.SubjectError);
//  2. check the lifetime (capability.CheckLifetime: 0 is not "the default",
//     callers that want the longest lifetime say so);
//  3. seal with the first key, which checks every claim rule;
//  4. check the targets against this server's route policy, so that nothing
//     is minted that Decide would refuse. This is the one place targets are
//     checked at issuance (capability knows no policy).
//
// Errors map to reasons with ReasonOf: invalid_capability, invalid_targets or
// capability_configuration_error. They never contain a value of the document.
func (a *Authorizer) Issue(doc []byte, ttl time.Duration) (string, error) {
	s, err := capability.DecodeSubject(doc)
	if err != nil {
		return "", err
	}
	return a.IssueSubject(s, ttl)
}

// IssueSubject is Issue for a subject already in hand (steps 2 to 4). It logs
// one line, issued or not, with the subject's non-secret facts.
func (a *Authorizer) IssueSubject(s capability.Subject, ttl time.Duration) (string, error) {
	tok, err := a.seal(s, ttl)
	if err != nil {
		a.log.Info().Str("reason", string(ReasonOf(err))).Str("outbound_container_id", s.OutboundContainerID).Msg("capability not issued")
		return "", err
	}
	a.log.Info().Str("user_id", s.UserID).Str("cloud_agent_session_id", s.CloudAgentSessionID).
		Str("kilo_session_id", s.KiloSessionID).Str("outbound_container_id", s.OutboundContainerID).
		Bool("has_provider_token", s.ProviderToken != "").Dur("ttl", ttl).Msg("capability issued")
	return tok, nil
}

func (a *Authorizer) seal(s capability.Subject, ttl time.Duration) (string, error) {
	if err := capability.CheckLifetime(ttl); err != nil {
		return "", err
	}
	// A token that cannot travel as a header value (CR, LF, NUL…) would be
	// refused by every later check (validCredential): refuse it now.
	if (s.UserToken != "" && !validCredential(s.UserToken)) || (s.ProviderToken != "" && !validCredential(s.ProviderToken)) {
		return "", fmt.Errorf("%w: a token contains a control character and cannot be sent as a header", capability.ErrInvalid)
	}
	tok, err := a.codec.Seal(s, ttl)
	if err != nil {
		return "", err
	}
	if err := a.policy.ValidateTargets(policy.Targets(s.Targets)); err != nil {
		return "", fmt.Errorf("capability not issued: %w", err)
	}
	return tok, nil
}

// IssueProfile seals a profile capability (eac1., docs/profile-capability.md)
// for s, valid for ttl; 0 means the profile's default lifetime, the smaller
// of capability.DefaultLifetime and the profile's maxLifetime. It is the one
// issuance sequence of profile capabilities, shared by the capability API
// and `extauthz issue --profile`, and it refuses what a decision would
// refuse, so that nothing is minted that cannot be used:
//
//  1. a profile that is not loaded (none loaded counts), or one whose
//     routes live below kka1 targets (kilo), which a profile capability
//     does not carry;
//  2. a lifetime outside 1 ms to the profile's maxLifetime;
//  3. credential slots that are not exactly the profile's (Profile.Slots),
//     and vars that are not exactly the variables its routes bind
//     (Profile.Vars): a missing one leaves a route unusable, an extra one
//     is a mistake (a misspelt name) worth hearing about;
//  4. a credential that cannot travel as a header value (validCredential);
//  5. the claim rules (capability.Codec.SealProfile).
//
// Errors wrap capability.ErrInvalid (invalid_capability) or
// capability.ErrConfig (no key). They name the loaded profiles and the
// profile's own slots and variables, never a value of s nor a name that is
// not the profile's (it may be a misplaced secret). It logs one line, issued
// or not, with the profile, the container, the subject ids and the slots.
func (a *Authorizer) IssueProfile(s capability.ProfileSubject, ttl time.Duration) (string, error) {
	pr, ttl, err := a.fitProfile(s, ttl)
	var tok string
	if err == nil {
		tok, err = a.codec.SealProfile(s, ttl)
	}
	ev := a.log.Info()
	if pr != nil {
		ev = ev.Str("profile", pr.Name())
	}
	ev = ev.Str("outbound_container_id", s.OutboundContainerID).Dict("subject", stringDict(s.Subject))
	if err != nil {
		ev.Str("reason", string(ReasonOf(err))).Str("error", err.Error()).Msg("profile capability not issued")
		return "", err
	}
	ev.Strs("slots", pr.Slots()).Dur("ttl", ttl).Msg("profile capability issued")
	return tok, nil
}

// fitProfile applies steps 1 to 4 of IssueProfile: it returns the profile
// (once found) and the lifetime to seal with.
func (a *Authorizer) fitProfile(s capability.ProfileSubject, ttl time.Duration) (*policy.Profile, time.Duration, error) {
	set := a.currentProfiles().set
	pr, ok := set.Profile(s.Profile)
	switch {
	case !ok && len(set.Names()) == 0:
		return nil, 0, fmt.Errorf("%w: no route profiles are loaded (serve --profiles-file)", capability.ErrInvalid)
	case !ok:
		return nil, 0, fmt.Errorf("%w: the profile is not loaded (loaded: %s)", capability.ErrInvalid, strings.Join(set.Names(), ", "))
	case pr.UsesTargets():
		return pr, 0, fmt.Errorf("%w: profile %s has routes below kka1 capability targets, which a profile capability does not carry: issue a kka1 capability", capability.ErrInvalid, pr.Name())
	}
	if ttl == 0 {
		ttl = min(capability.DefaultLifetime, pr.MaxLifetime())
	}
	if err := capability.CheckLifetime(ttl); err != nil {
		return pr, 0, err
	}
	if ttl > pr.MaxLifetime() {
		return pr, 0, fmt.Errorf("%w: lifetime %v is over profile %s's maxLifetime %v", capability.ErrInvalid, ttl, pr.Name(), pr.MaxLifetime())
	}
	if err := sameNames(pr, "credential slot", pr.Slots(), s.Credentials); err != nil {
		return pr, 0, err
	}
	if err := sameNames(pr, "variable", pr.Vars(), s.Vars); err != nil {
		return pr, 0, err
	}
	for _, slot := range pr.Slots() {
		// A credential that cannot travel as a header value (CR, LF, NUL…)
		// would be refused by every decision; an empty one breaks a claim
		// rule, which SealProfile reports.
		if c := s.Credentials[slot]; c != "" && !validCredential(c) {
			return pr, 0, fmt.Errorf("%w: the credential of slot %s contains a control character and cannot be sent as a header", capability.ErrInvalid, slot)
		}
	}
	return pr, ttl, nil
}

// sameNames checks that the names of got are exactly want, the profile's
// names of what: it names the missing ones (the profile's) and only counts
// the others, which come from the caller.
func sameNames(pr *policy.Profile, what string, want []string, got map[string]string) error {
	var missing []string
	for _, n := range want {
		if _, ok := got[n]; !ok {
			missing = append(missing, n)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("%w: profile %s needs the %s %s", capability.ErrInvalid, pr.Name(), plural(what, len(missing)), strings.Join(missing, ", "))
	}
	if extra := len(got) - len(want); extra > 0 {
		uses := "none"
		if len(want) > 0 {
			uses = strings.Join(want, ", ")
		}
		return fmt.Errorf("%w: %d %s that profile %s does not use (it uses: %s)", capability.ErrInvalid, extra, plural(what, extra), pr.Name(), uses)
	}
	return nil
}

func plural(what string, n int) string {
	if n == 1 {
		return what
	}
	return what + "s"
}

// stringDict renders a map of ids as a log object, its members sorted.
func stringDict(m map[string]string) *zerolog.Event {
	d := zerolog.Dict()
	for _, k := range slices.Sorted(maps.Keys(m)) {
		d = d.Str(k, m[k])
	}
	return d
}
