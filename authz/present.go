package authz

import (
	"encoding/base64"
	"slices"
	"strings"

	"github.com/extauthz/extauthz/capability"
	"github.com/extauthz/extauthz/policy"
)

// This file holds the presentation rules of route profiles
// (docs/profiles.md, "Where the capability arrives, and what goes
// upstream"): where a sandbox may present a profile capability, what an
// allow sets and removes, and the Basic challenge git needs. They are pure
// functions of a profile and the request's headers, tested on their own;
// the decision on a profile capability (profilecap.go) calls them.

// presented is a profile capability found in a request, with every place
// it was found in.
type presented struct {
	token  string
	places []policy.Presentation
}

// findProfileCapability looks for a profile capability (eac1.) in
// authorization, as a bearer token or as a Basic password with any user
// name, and in each of the named headers, whose values named holds (every
// occurrence, index for index). Values agree as the kka1 headers do
// (agree, listForm): the same capability in several places is one
// capability; two different ones anywhere are invalid_capability. No
// profile capability is missing_capability.
func findProfileCapability(authorization []string, names []string, named [][]string) (presented, Reason) {
	var p presented
	add := func(tok string, place policy.Presentation) bool {
		if p.token != "" && p.token != tok {
			return false
		}
		p.token = tok
		if !slices.Contains(p.places, place) {
			p.places = append(p.places, place)
		}
		return true
	}
	for _, form := range [...]struct {
		place policy.Presentation
		pick  func(string) (string, bool)
	}{
		{policy.Presentation{Kind: policy.PresentBearer}, bearerProfileCapability},
		{policy.Presentation{Kind: policy.PresentBasic}, basicProfileCapability},
	} {
		tok, ok := agree(listForm, form.pick, authorization)
		if !ok || (tok != "" && !add(tok, form.place)) {
			return presented{}, ReasonInvalidCapability
		}
	}
	for i, n := range names {
		if i >= len(named) {
			break
		}
		tok, ok := agree(listForm, isProfileCapability, named[i])
		if !ok || (tok != "" && !add(tok, policy.Presentation{Kind: policy.PresentHeader, Header: n})) {
			return presented{}, ReasonInvalidCapability
		}
	}
	if p.token == "" {
		return presented{}, ReasonMissingCapability
	}
	return p, ReasonNone
}

// isProfileCapability keeps a value that is a profile capability.
func isProfileCapability(v string) (string, bool) {
	return v, capability.KindOf(v) == capability.KindProfile
}

// bearerProfileCapability returns the profile capability in "Bearer
// eac1.…" (the scheme in any case).
func bearerProfileCapability(v string) (string, bool) {
	tok, ok := authParam(v, "bearer")
	if !ok {
		return "", false
	}
	return isProfileCapability(tok)
}

// basicProfileCapability returns the profile capability that is the
// password of "Basic base64(user:password)", whatever the user name.
func basicProfileCapability(v string) (string, bool) {
	enc, ok := authParam(v, "basic")
	if !ok {
		return "", false
	}
	raw, err := base64.StdEncoding.DecodeString(enc)
	if err != nil {
		return "", false
	}
	_, password, ok := strings.Cut(string(raw), ":")
	if !ok {
		return "", false
	}
	return isProfileCapability(password)
}

// authParam returns what follows scheme (any case) and white space in an
// authorization value, trimmed: the one reading of an authorization scheme,
// kka1's bearer (bearerCapability) included.
func authParam(v, scheme string) (string, bool) {
	if len(v) <= len(scheme) || !strings.EqualFold(v[:len(scheme)], scheme) || (v[len(scheme)] != ' ' && v[len(scheme)] != '\t') {
		return "", false
	}
	return strings.TrimSpace(v[len(scheme):]), true
}

// acceptedEverywhere reports whether the profile accepts the capability in
// every place it was found: one found elsewhere too is invalid_capability,
// so that a capability cannot reach the upstream in a header the allow
// does not remove.
func acceptedEverywhere(pr *policy.Profile, p presented) bool {
	for _, place := range p.places {
		if !pr.Accepts(place) {
			return false
		}
	}
	return true
}

// injection is what an allow on a profile route does to the request: set
// header to prefix+value (the credential as the route injects it,
// replacing what the sandbox sent there) and remove every other header the
// profile's capability may arrive in (removedBy).
type injection struct {
	header, prefix, value string
	remove                []string
}

// injectedValue is the value, as a prefix and the rest, that injection
// inj sets for secret: "Bearer " and the secret, the secret alone, or
// "Basic " and base64(username:secret).
func injectedValue(inj policy.Injection, secret string) (prefix, value string) {
	switch inj.Kind {
	case policy.InjectBearer:
		return bearerPrefix, secret
	case policy.InjectBasic:
		return "Basic ", base64.StdEncoding.EncodeToString([]byte(inj.Username + ":" + secret))
	}
	return "", secret
}

// removedBy lists the headers an allow of profile pr removes when it sets
// header: every header the capability may arrive in but that one, which
// the allow overwrites. A proxy applies removals after it sets headers, so
// the set header must not be among them. The list is never nil (redeem
// answers it as a JSON array).
func removedBy(pr *policy.Profile, header string) []string {
	out := []string{}
	for _, p := range pr.Accept() {
		if h := p.HeaderName(); h != header && !slices.Contains(out, h) {
			out = append(out, h)
		}
	}
	return out
}

// basicChallenge is the WWW-Authenticate a request that presents no
// capability gets when a profile that accepts a Basic password has a route
// on the request's origin: git sends its credential only after a Basic
// challenge. "" when no such profile routes there.
func basicChallenge(profiles []*policy.Profile, req policy.Request) string {
	for _, pr := range profiles {
		if pr.Accepts(policy.Presentation{Kind: policy.PresentBasic}) && pr.ServesOrigin(req) {
			return `Basic realm="extauthz"`
		}
	}
	return ""
}
