package authz

import (
	"encoding/base64"
	"slices"
	"testing"

	"github.com/extauthz/extauthz/capability"
	"github.com/extauthz/extauthz/policy"
)

// presentProfile compiles a profile with the given places and one route.
func presentProfile(t *testing.T, inject policy.Injection, accept ...policy.Presentation) *policy.Profile {
	t.Helper()
	pr, err := (*policy.Policy)(nil).CompileProfile(policy.ProfileSpec{Name: "p", Accept: accept, Routes: []policy.RouteEntry{
		{Class: "api", Origin: "https://api.example.com", Patterns: []string{"/**"}, Slot: "key", Inject: inject},
	}})
	if err != nil {
		t.Fatal(err)
	}
	return pr
}

func basicOf(user, password string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+password))
}

// TestFindProfileCapability: the places a profile capability may arrive in,
// and the agreement rule: the same one in several places is one; two
// different ones anywhere are invalid_capability.
func TestFindProfileCapability(t *testing.T) {
	codec := newCodec(t, testClock, testKey)
	seal := func(profile string) string {
		tok, err := codec.SealProfile(capability.ProfileSubject{Profile: profile, OutboundContainerID: "ctr-1",
			Credentials: map[string]string{"key": "sk-SENTINEL"}}, 0)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	a, b := seal("p"), seal("q")
	const kka1 = "kka1.AAAA:BBBB:CCCC"
	bearerP := policy.Presentation{Kind: policy.PresentBearer}
	basicP := policy.Presentation{Kind: policy.PresentBasic}
	apiKey := policy.Presentation{Kind: policy.PresentHeader, Header: "x-api-key"}
	for _, c := range []struct {
		name   string
		auth   []string
		hdr    map[string][]string
		token  string
		places []policy.Presentation
		reason Reason
	}{
		{"bearer", []string{"Bearer " + a}, nil, a, []policy.Presentation{bearerP}, ReasonNone},
		{"bearer, scheme in any case", []string{"bEARER  " + a}, nil, a, []policy.Presentation{bearerP}, ReasonNone},
		{"basic, any user", []string{basicOf("x-access-token", a)}, nil, a, []policy.Presentation{basicP}, ReasonNone},
		{"basic, empty user", []string{basicOf("", a)}, nil, a, []policy.Presentation{basicP}, ReasonNone},
		{"named header", nil, map[string][]string{"x-api-key": {a}}, a, []policy.Presentation{apiKey}, ReasonNone},
		{"the same in two places", []string{"Bearer " + a}, map[string][]string{"x-api-key": {a}}, a, []policy.Presentation{bearerP, apiKey}, ReasonNone},
		{"two different ones", []string{"Bearer " + a}, map[string][]string{"x-api-key": {b}}, "", nil, ReasonInvalidCapability},
		{"two different in one header", nil, map[string][]string{"x-api-key": {a, b}}, "", nil, ReasonInvalidCapability},
		{"comma-joined different", nil, map[string][]string{"x-api-key": {a + "," + b}}, "", nil, ReasonInvalidCapability},
		{"bearer and basic different", []string{"Bearer " + a, basicOf("u", b)}, nil, "", nil, ReasonInvalidCapability},
		{"none", []string{"Bearer sk-not-a-capability"}, map[string][]string{"x-api-key": {"sk-real"}}, "", nil, ReasonMissingCapability},
		{"a kka1 bearer is not one", []string{"Bearer " + kka1}, nil, "", nil, ReasonMissingCapability},
		{"basic without a colon", []string{"Basic " + base64.StdEncoding.EncodeToString([]byte(a))}, nil, "", nil, ReasonMissingCapability},
		{"basic not base64", []string{"Basic %%%"}, nil, "", nil, ReasonMissingCapability},
	} {
		t.Run(c.name, func(t *testing.T) {
			p, r := findProfileCapability(c.auth, []string{"x-api-key"}, [][]string{c.hdr["x-api-key"]})
			if r != c.reason || p.token != c.token || !slices.Equal(p.places, c.places) {
				t.Errorf("= %.12s… %v, %v; want %.12s… %v, %v", p.token, p.places, r, c.token, c.places, c.reason)
			}
		})
	}
}

// TestAcceptedEverywhere: a capability found where the profile does not
// accept it is refused, even beside an accepted place.
func TestAcceptedEverywhere(t *testing.T) {
	pr := presentProfile(t, policy.Injection{Kind: policy.InjectBearer}, policy.Presentation{Kind: policy.PresentBearer})
	bearerP := policy.Presentation{Kind: policy.PresentBearer}
	header := policy.Presentation{Kind: policy.PresentHeader, Header: "x-api-key"}
	if !acceptedEverywhere(pr, presented{token: "t", places: []policy.Presentation{bearerP}}) {
		t.Error("bearer refused by a profile that accepts it")
	}
	if acceptedEverywhere(pr, presented{token: "t", places: []policy.Presentation{bearerP, header}}) {
		t.Error("a capability also in a header the profile does not accept was accepted")
	}
}

// TestAllowFor: the injected header is set (bearer, named header, Basic with
// the fixed user) and every other place the capability may arrive in is
// removed; the injected header is never in the removal list.
func TestAllowFor(t *testing.T) {
	bearerP := policy.Presentation{Kind: policy.PresentBearer}
	basicP := policy.Presentation{Kind: policy.PresentBasic}
	apiKey := policy.Presentation{Kind: policy.PresentHeader, Header: "x-api-key"}
	other := policy.Presentation{Kind: policy.PresentHeader, Header: "x-capability"}
	for _, c := range []struct {
		name          string
		inject        policy.Injection
		accept        []policy.Presentation
		header, value string
		remove        []string
	}{
		{"bearer", policy.Injection{Kind: policy.InjectBearer}, []policy.Presentation{bearerP, other}, "authorization", "Bearer S", []string{"x-capability"}},
		{"into the header it arrives in", policy.Injection{Kind: policy.InjectHeader, Header: "x-api-key"}, []policy.Presentation{bearerP, apiKey}, "x-api-key", "S", []string{"authorization"}},
		{"basic for git", policy.Injection{Kind: policy.InjectBasic, Username: "x-access-token"}, []policy.Presentation{basicP, bearerP}, "authorization",
			"Basic " + base64.StdEncoding.EncodeToString([]byte("x-access-token:S")), nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			pr := presentProfile(t, c.inject, c.accept...)
			r, err := pr.Classify(policy.Request{Scheme: "https", Authority: "api.example.com", Path: "/x", Method: "GET"}, nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			header := r.Inject.HeaderName()
			prefix, value := injectedValue(r.Inject, "S")
			remove := removedBy(pr, header)
			if header != c.header || prefix+value != c.value || !slices.Equal(remove, c.remove) {
				t.Errorf("allow sets %s: %s%s, removes %v; want %s: %s, remove %v", header, prefix, value, remove, c.header, c.value, c.remove)
			}
		})
	}
}

// TestBasicChallenge: a request with no capability to an origin a Basic
// profile routes gets a Basic challenge; any other origin gets none.
func TestBasicChallenge(t *testing.T) {
	git := presentProfile(t, policy.Injection{Kind: policy.InjectBasic, Username: "x-access-token"},
		policy.Presentation{Kind: policy.PresentBasic})
	api := presentProfile(t, policy.Injection{Kind: policy.InjectBearer}, policy.Presentation{Kind: policy.PresentBearer})
	for authority, want := range map[string]string{
		"api.example.com":      `Basic realm="extauthz"`,
		"API.example.com:443":  `Basic realm="extauthz"`,
		"other.example.com":    "",
		"api.example.com:8443": "",
		"bad host!":            "",
	} {
		if got := basicChallenge([]*policy.Profile{api, git}, policy.Request{Scheme: "https", Authority: authority}); got != want {
			t.Errorf("challenge for %s = %q; want %q", authority, got, want)
		}
	}
	if got := basicChallenge([]*policy.Profile{api}, policy.Request{Scheme: "https", Authority: "api.example.com"}); got != "" {
		t.Errorf("a bearer-only profile challenged with %q", got)
	}
}
