package authz

import (
	"slices"

	"github.com/extauthz/extauthz/policy"
	"github.com/extauthz/extauthz/profiles"
)

// profileState is one loaded set of route profiles as decisions use it. It
// is replaced whole on reload (SetProfiles), so that a decision reads one
// consistent set: the profile its capability names, and the headers it
// looked in.
type profileState struct {
	set  *profiles.Set // nil: no profiles
	list []*policy.Profile
	// headers are the named headers (lower case, sorted, each once) in
	// which some loaded profile accepts its capability: the adapters read
	// every value of each, and the decision finds a profile capability in
	// them (present.go).
	headers []string
	// removes holds removedBy for each profile and header its routes inject
	// into, computed once per load so that an allow allocates none.
	removes map[removeKey][]string
}

type removeKey struct{ profile, header string }

// noProfiles is the state before any SetProfiles: no profile, so every
// profile capability is denied.
var noProfiles = &profileState{}

// SetProfiles puts a loaded set of profiles in force (nil: none) for the
// decisions, issuing and the metrics that follow. A decision already
// running finishes with the set it started with.
func (a *Authorizer) SetProfiles(set *profiles.Set) {
	st := &profileState{set: set, removes: map[removeKey][]string{}}
	for _, name := range set.Names() {
		pr, _ := set.Profile(name)
		st.list = append(st.list, pr)
		for _, inj := range pr.Injections() {
			h := inj.HeaderName()
			st.removes[removeKey{name, h}] = removedBy(pr, h)
		}
		for _, place := range pr.Accept() {
			if place.Kind == policy.PresentHeader && !slices.Contains(st.headers, place.Header) {
				st.headers = append(st.headers, place.Header)
			}
		}
	}
	slices.Sort(st.headers)
	a.profiles.Store(st)
	a.metrics.setProfiles(st.list)
}

// Profiles is the set of profiles in force; nil when none is loaded.
func (a *Authorizer) Profiles() *profiles.Set { return a.currentProfiles().set }

// ProfileHeaders lists the named headers in which a loaded profile accepts
// its capability (lower case, sorted): what a proxy must pass to the HTTP
// endpoints besides authorization.
func (a *Authorizer) ProfileHeaders() []string { return slices.Clone(a.currentProfiles().headers) }

func (a *Authorizer) currentProfiles() *profileState {
	if st := a.profiles.Load(); st != nil {
		return st
	}
	return noProfiles
}
