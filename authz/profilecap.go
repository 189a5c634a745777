package authz

import (
	"github.com/extauthz/extauthz/policy"
	"github.com/extauthz/extauthz/revocation"
)

// This file decides on a profile capability (docs/profiles.md,
// docs/profile-capability.md): the second kind beside kka1, with the same
// steps in the same order (docs/decisions.md section 5) — open, revocation,
// caller, route — and the presentation rules of its profile (present.go).

// decideProfile decides on the profile capability p found in a request
// that carries no other capability, with the profiles st the request was
// read for, into d (as decide does).
func (a *Authorizer) decideProfile(in *Input, st *profileState, p *presented, d *Decision) {
	claims, err := a.codec.OpenProfile(p.token)
	if err != nil {
		d.Reason = ReasonOf(err)
		return
	}
	d.Profile, d.OutboundContainerID = claims.Profile, claims.OutboundContainerID
	pr, ok := st.set.Profile(claims.Profile)
	if ok {
		d.profileLabel = pr.Name()
	}
	if !ok || !acceptedEverywhere(pr, *p) {
		// A profile this server does not have, or the capability where its
		// profile does not take it: a place the allow would not clear.
		d.Reason = ReasonInvalidCapability
		return
	}
	if a.revoked != nil {
		d.Reason = ReasonOf(a.revoked.Check(revocation.Subject{Token: p.token, OutboundContainerID: claims.OutboundContainerID,
			Subjects: claims.Subject, IssuedAt: claims.IssuedAt}))
		if d.Reason != ReasonNone {
			return
		}
	}
	if in.CallerID == "" || in.CallerID != claims.OutboundContainerID {
		d.Reason = ReasonContainerMismatch
		return
	}
	route, err := pr.Classify(policy.Request{Scheme: in.Scheme, Authority: in.Authority, Path: in.Path, Method: in.Method}, nil, varsOf(claims.Vars))
	if err != nil {
		d.Reason = classifyReason(err)
		return
	}
	d.Route = route
	secret := claims.Credentials[route.Slot]
	if !validCredential(secret) {
		// A slot the issuer left out, or a secret that cannot travel as a
		// header value: the capability carries an unusable credential.
		d.Reason = ReasonInvalidCapability
		return
	}
	d.credential = secret
	h := route.Inject.HeaderName()
	d.inject = injection{header: h, remove: st.removes[removeKey{claims.Profile, h}]}
	d.inject.prefix, d.inject.value = injectedValue(route.Inject, secret)
}

// varsOf lists a capability's variables for the route matcher.
func varsOf(m map[string]string) []policy.Var {
	if len(m) == 0 {
		return nil
	}
	out := make([]policy.Var, 0, len(m))
	for k, v := range m {
		out = append(out, policy.Var{Name: k, Value: v})
	}
	return out
}
