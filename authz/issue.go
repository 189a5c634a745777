package authz

import (
	"fmt"
	"time"

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
