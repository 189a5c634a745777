package authz

import (
	"encoding/json"
	"errors"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/extauthz/extauthz/capability"
	"github.com/extauthz/extauthz/internal/testutil/testsupport"
	"github.com/extauthz/extauthz/profiles"
	"github.com/extauthz/extauthz/revocation"
)

// issuedSecret is the credential the issuing tests plant.
const issuedSecret = "ghs-SENTINEL-profile-credential-7f3a"

// loadIssueProfiles loads testsupport.IssueProfiles (github, duo) and
// profiles/kilo.yaml.
func loadIssueProfiles(t testing.TB) *profiles.Set {
	t.Helper()
	dir := t.TempDir()
	kilo, err := os.ReadFile(filepath.Join("..", "profiles", "kilo.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string][]byte{"a.yaml": []byte(testsupport.IssueProfiles), "kilo.yaml": kilo} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	set, err := profiles.Load(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	return set
}

// githubSubject is a profile subject that fits the github profile.
func githubSubject() capability.ProfileSubject {
	return capability.ProfileSubject{
		Profile:             "github",
		OutboundContainerID: "ctr-1",
		Subject:             map[string]string{"userId": "u-1", "tenantId": "t-9"},
		Vars:                map[string]string{"owner": "acme", "repo": "widgets.git"},
		Credentials:         map[string]string{"token": issuedSecret},
	}
}

// profileIssueBody is githubSubject as an issue body, edited by edit.
func profileIssueBody(edit func(m map[string]any)) string {
	s := githubSubject()
	m := map[string]any{"profile": s.Profile, "outboundContainerId": s.OutboundContainerID,
		"subject": s.Subject, "vars": s.Vars, "credentials": s.Credentials}
	if edit != nil {
		edit(m)
	}
	b, _ := json.Marshal(m)
	return string(b)
}

// newProfileIssuer is a decision core over codec with the issuing tests'
// profiles in force, logging to log (may be nil), and its API.
func newProfileIssuer(t testing.TB, codec *capability.Codec, log *testsupport.LockedBuffer) (*Authorizer, http.Handler) {
	t.Helper()
	core := newTestCore(t, codec, log)
	core.SetProfiles(loadIssueProfiles(t))
	h, err := NewAPIHandler(core, APIOptions{Token: testAPIToken})
	if err != nil {
		t.Fatal(err)
	}
	return core, h
}

// TestIssueProfileAPI: a profile body gets an eac1 capability that opens
// to the subject sent, with the lifetime asked for or the profile's
// default.
func TestIssueProfileAPI(t *testing.T) {
	codec := newCodec(t, testClock, testKey)
	_, h := newProfileIssuer(t, codec, nil)
	duo := func(m map[string]any) {
		m["profile"], m["vars"] = "duo", map[string]string{}
		m["credentials"] = map[string]string{"key-a": "a-" + issuedSecret, "key-b": "b\t" + issuedSecret}
	}
	for _, tc := range []struct {
		name string
		body string
		ttl  time.Duration
	}{
		{"the profile's maxLifetime by default", profileIssueBody(nil), time.Hour},
		{"ttlSeconds", profileIssueBody(func(m map[string]any) { m["ttlSeconds"] = 600 }), 10 * time.Minute},
		{"ttlSeconds at the profile's maximum", profileIssueBody(func(m map[string]any) { m["ttlSeconds"] = 3600 }), time.Hour},
		{"two slots, no variable, 4h by default", profileIssueBody(duo), capability.DefaultLifetime},
		{"no vars member for a profile without variables", profileIssueBody(func(m map[string]any) { duo(m); delete(m, "vars") }), capability.DefaultLifetime},
		{"no subject member", profileIssueBody(func(m map[string]any) { delete(m, "subject") }), time.Hour},
		{"profile member last, escaped", `{"outboundContainerId":"ctr-1","vars":{"owner":"acme","repo":"widgets.git"},` +
			`"credentials":{"token":"` + issuedSecret + `"},"\u0070rofile":"github"}`, time.Hour},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := doHTTP(t, h, nil, issueReq(tc.body))
			var got map[string]string
			if w.Code != http.StatusOK || json.Unmarshal(w.Body.Bytes(), &got) != nil || len(got) != 1 {
				t.Fatalf("issue = %d %s; want 200 {\"capability\":…}", w.Code, w.Body)
			}
			if capability.KindOf(got["capability"]) != capability.KindProfile {
				t.Fatalf("issued %.5s…; want an eac1 capability", got["capability"])
			}
			claims, err := codec.OpenProfile(got["capability"])
			if err != nil {
				t.Fatalf("issued capability does not open: %v", err)
			}
			var sent struct {
				Profile             string
				OutboundContainerID string `json:"outboundContainerId"`
				Subject, Vars       map[string]string
				Credentials         map[string]string
			}
			if err := json.Unmarshal([]byte(tc.body), &sent); err != nil {
				t.Fatal(err)
			}
			want := capability.ProfileSubject{Profile: sent.Profile, OutboundContainerID: sent.OutboundContainerID,
				Subject: sent.Subject, Vars: sent.Vars, Credentials: sent.Credentials}
			if !sameProfileSubject(claims.ProfileSubject, want) {
				t.Errorf("claims = %v; want %v", claims.ProfileSubject, want)
			}
			if life := time.Duration(claims.ExpiresAt-claims.IssuedAt) * time.Millisecond; life != tc.ttl || claims.IssuedAt != testNow.UnixMilli() {
				t.Errorf("lifetime = %v from %d; want %v from now", life, claims.IssuedAt, tc.ttl)
			}
		})
	}
}

// sameProfileSubject compares subjects, a nil map equal to an empty one.
func sameProfileSubject(a, b capability.ProfileSubject) bool {
	eq := func(x, y map[string]string) bool { return maps.Equal(x, y) }
	return a.Profile == b.Profile && a.OutboundContainerID == b.OutboundContainerID &&
		eq(a.Subject, b.Subject) && eq(a.Vars, b.Vars) && eq(a.Credentials, b.Credentials)
}

// TestIssueProfileRefusals: every refusal of the profile body, through the
// API, with its status and slug; nothing is issued, and neither the answer
// nor the log holds a secret.
func TestIssueProfileRefusals(t *testing.T) {
	var log testsupport.LockedBuffer
	_, h := newProfileIssuer(t, nil, &log)
	edit := func(f func(m map[string]any)) string { return profileIssueBody(f) }
	creds := func(m map[string]any) map[string]string { return m["credentials"].(map[string]string) }
	vars := func(m map[string]any) map[string]string { return m["vars"].(map[string]string) }
	for _, tc := range []struct {
		name   string
		body   string
		status int
		slug   string
	}{
		// Malformed: the strict decoder.
		{"unknown member", edit(func(m map[string]any) { m["targets"] = map[string]any{} }), 400, apiErrInvalidRequest},
		{"kka1 member beside profile", edit(func(m map[string]any) { m["userToken"] = issuedSecret }), 400, apiErrInvalidRequest},
		{"member in another case", strings.Replace(edit(nil), `"vars"`, `"Vars"`, 1), 400, apiErrInvalidRequest},
		{"duplicate member", strings.Replace(edit(nil), `{`, `{"outboundContainerId":"ctr-2",`, 1), 400, apiErrInvalidRequest},
		{"duplicate profile", strings.Replace(edit(nil), `{`, `{"profile":"duo",`, 1), 400, apiErrInvalidRequest},
		{"duplicate credential slot", strings.Replace(edit(nil), `{"token":`, `{"token":"x","token":`, 1), 400, apiErrInvalidRequest},
		{"duplicate ttlSeconds", strings.Replace(edit(nil), `{`, `{"ttlSeconds":60,"ttlSeconds":60,`, 1), 400, apiErrInvalidRequest},
		{"profile not a string", edit(func(m map[string]any) { m["profile"] = 1 }), 400, apiErrInvalidRequest},
		{"null profile", edit(func(m map[string]any) { m["profile"] = nil }), 400, apiErrInvalidRequest},
		{"subject not an object", edit(func(m map[string]any) { m["subject"] = "u-1" }), 400, apiErrInvalidRequest},
		{"subject id not a string", edit(func(m map[string]any) { m["subject"] = map[string]any{"userId": 1} }), 400, apiErrInvalidRequest},
		{"vars as an array", edit(func(m map[string]any) { m["vars"] = []string{"acme"} }), 400, apiErrInvalidRequest},
		{"null credential", edit(func(m map[string]any) { m["credentials"] = map[string]any{"token": nil} }), 400, apiErrInvalidRequest},
		{"credentials null", edit(func(m map[string]any) { m["credentials"] = nil }), 400, apiErrInvalidRequest},
		{"slot name not a name", edit(func(m map[string]any) { m["credentials"] = map[string]string{issuedSecret + " x": "token"} }), 400, apiErrInvalidRequest},
		{"ttlSeconds a string", edit(func(m map[string]any) { m["ttlSeconds"] = "60" }), 400, apiErrInvalidRequest},
		{"fractional ttlSeconds", edit(func(m map[string]any) { m["ttlSeconds"] = 1.5 }), 400, apiErrInvalidRequest},
		{"trailing data", edit(nil) + "{}", 400, apiErrInvalidRequest},
		// The profile.
		{"unknown profile", edit(func(m map[string]any) { m["profile"] = "gitlab" }), 400, string(ReasonInvalidCapability)},
		{"a secret as the profile", edit(func(m map[string]any) { m["profile"] = issuedSecret }), 400, string(ReasonInvalidCapability)},
		{"empty profile", edit(func(m map[string]any) { m["profile"] = "" }), 400, string(ReasonInvalidCapability)},
		{"the kilo profile (kka1 targets)", edit(func(m map[string]any) {
			m["profile"], m["vars"], m["credentials"] = "kilo", map[string]string{"kiloSessionId": "s-1"}, map[string]string{"user": "u", "provider": "p"}
		}), 400, string(ReasonInvalidCapability)},
		// The lifetime.
		{"ttl over the profile's maximum", edit(func(m map[string]any) { m["ttlSeconds"] = 3601 }), 400, string(ReasonInvalidCapability)},
		{"ttl over 4h", edit(func(m map[string]any) { m["ttlSeconds"] = 4*3600 + 1 }), 400, string(ReasonInvalidCapability)},
		{"zero ttl", edit(func(m map[string]any) { m["ttlSeconds"] = 0 }), 400, string(ReasonInvalidCapability)},
		{"negative ttl", edit(func(m map[string]any) { m["ttlSeconds"] = -60 }), 400, string(ReasonInvalidCapability)},
		// Slots and variables.
		{"missing slot", edit(func(m map[string]any) { m["credentials"] = map[string]string{} }), 400, string(ReasonInvalidCapability)},
		{"no credentials member", edit(func(m map[string]any) { delete(m, "credentials") }), 400, string(ReasonInvalidCapability)},
		{"extra slot", edit(func(m map[string]any) { creds(m)["other"] = "x" }), 400, string(ReasonInvalidCapability)},
		{"wrong slot", edit(func(m map[string]any) { m["credentials"] = map[string]string{"tok": issuedSecret} }), 400, string(ReasonInvalidCapability)},
		{"missing variable", edit(func(m map[string]any) { delete(vars(m), "repo") }), 400, string(ReasonInvalidCapability)},
		{"no vars member", edit(func(m map[string]any) { delete(m, "vars") }), 400, string(ReasonInvalidCapability)},
		{"extra variable", edit(func(m map[string]any) { vars(m)["branch"] = "main" }), 400, string(ReasonInvalidCapability)},
		// Values.
		{"credential with CR LF", edit(func(m map[string]any) { creds(m)["token"] = "tok\r\nx-evil: 1" }), 400, string(ReasonInvalidCapability)},
		{"credential with NUL", edit(func(m map[string]any) { creds(m)["token"] = "tok\u0000" }), 400, string(ReasonInvalidCapability)},
		{"empty credential", edit(func(m map[string]any) { creds(m)["token"] = "" }), 400, string(ReasonInvalidCapability)},
		{"empty variable", edit(func(m map[string]any) { vars(m)["repo"] = "" }), 400, string(ReasonInvalidCapability)},
		{"empty container", edit(func(m map[string]any) { m["outboundContainerId"] = "" }), 400, string(ReasonInvalidCapability)},
		{"no container", edit(func(m map[string]any) { delete(m, "outboundContainerId") }), 400, string(ReasonInvalidCapability)},
		{"empty subject id", edit(func(m map[string]any) { m["subject"] = map[string]string{"userId": ""} }), 400, string(ReasonInvalidCapability)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := doHTTP(t, h, nil, issueReq(tc.body))
			assertAPIError(t, w, tc.status, tc.slug)
			if strings.Contains(dumpResponse(w), issuedSecret) {
				t.Errorf("the answer holds a secret:\n%s", dumpResponse(w))
			}
		})
	}
	if strings.Contains(log.String(), issuedSecret) || strings.Contains(log.String(), "eac1.") || strings.Contains(log.String(), "profile capability issued") {
		t.Errorf("the log holds a secret, a capability or an issue:\n%s", log.String())
	}
	// Without profiles, no profile capability is issued; kka1 still is.
	core := newTestCore(t, nil, nil)
	noProfiles, err := NewAPIHandler(core, APIOptions{Token: testAPIToken})
	if err != nil {
		t.Fatal(err)
	}
	assertAPIError(t, doHTTP(t, noProfiles, nil, issueReq(profileIssueBody(nil))), 400, string(ReasonInvalidCapability))
	if w := doHTTP(t, noProfiles, nil, issueReq(issueBody(nil))); w.Code != 200 {
		t.Errorf("kka1 issue without profiles = %d %s", w.Code, w.Body)
	}
}

// TestIssueProfileWithoutKeys: no key is 503, as for kka1.
func TestIssueProfileWithoutKeys(t *testing.T) {
	_, h := newProfileIssuer(t, capability.NewCodec(nil), nil)
	assertAPIError(t, doHTTP(t, h, nil, issueReq(profileIssueBody(nil))), http.StatusServiceUnavailable, string(ReasonConfigurationError))
}

// TestIssueProfileErrors: IssueProfile's errors say what is wrong in terms
// of the profile, name only the profile's own slots and variables, and
// never quote a value or a name the caller sent.
func TestIssueProfileErrors(t *testing.T) {
	core, _ := newProfileIssuer(t, nil, nil)
	edit := func(f func(s *capability.ProfileSubject)) capability.ProfileSubject {
		s := githubSubject()
		f(&s)
		return s
	}
	for _, tc := range []struct {
		name string
		s    capability.ProfileSubject
		ttl  time.Duration
		want string
	}{
		{"unknown profile", edit(func(s *capability.ProfileSubject) { s.Profile = issuedSecret }), 0, "not loaded (loaded: github, duo, kilo)"},
		{"kilo", edit(func(s *capability.ProfileSubject) { s.Profile = "kilo" }), 0, "issue a kka1 capability"},
		{"lifetime", githubSubject(), 2 * time.Hour, "over profile github's maxLifetime 1h0m0s"},
		{"missing slot", edit(func(s *capability.ProfileSubject) { s.Credentials = map[string]string{issuedSecret: "x"} }), 0, "profile github needs the credential slot token"},
		{"extra slot", edit(func(s *capability.ProfileSubject) { s.Credentials[issuedSecret] = "x" }), 0, "1 credential slot that profile github does not use (it uses: token)"},
		{"missing variables", edit(func(s *capability.ProfileSubject) { s.Vars = nil }), 0, "needs the variables owner, repo"},
		{"extra variables", edit(func(s *capability.ProfileSubject) { s.Vars["a"], s.Vars[issuedSecret] = "1", "2" }), 0, "2 variables that profile github does not use (it uses: owner, repo)"},
		{"control character", edit(func(s *capability.ProfileSubject) { s.Credentials["token"] = issuedSecret + "\n" }), 0, "the credential of slot token contains a control character"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := core.IssueProfile(tc.s, tc.ttl)
			if !errors.Is(err, capability.ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("IssueProfile = %v; want an ErrInvalid saying %q", err, tc.want)
			}
			if strings.Contains(err.Error(), issuedSecret) {
				t.Errorf("the error quotes a secret: %v", err)
			}
		})
	}
	bare := newTestCore(t, nil, nil)
	if _, err := bare.IssueProfile(githubSubject(), 0); err == nil || !strings.Contains(err.Error(), "no route profiles are loaded") {
		t.Errorf("IssueProfile without profiles = %v", err)
	}
}

// TestIssueProfileLog: one line per call, issued or not, with the profile,
// the container, the subject ids and the slots, never a credential or the
// capability.
func TestIssueProfileLog(t *testing.T) {
	var log testsupport.LockedBuffer
	core, _ := newProfileIssuer(t, nil, &log)
	tok, err := core.IssueProfile(githubSubject(), 0)
	if err != nil {
		t.Fatal(err)
	}
	var line map[string]any
	if err := json.Unmarshal([]byte(log.String()), &line); err != nil {
		t.Fatalf("one JSON line: %v\n%s", err, log.String())
	}
	want := map[string]any{"level": "info", "message": "profile capability issued", "profile": "github", "outbound_container_id": "ctr-1",
		"subject": map[string]any{"userId": "u-1", "tenantId": "t-9"}, "slots": []any{"token"}, "ttl": float64(time.Hour.Milliseconds())}
	if !reflect.DeepEqual(line, want) {
		t.Errorf("log line = %v; want %v", line, want)
	}
	first := len(log.String())
	s := githubSubject()
	s.Credentials["other"] = issuedSecret
	if _, err := core.IssueProfile(s, 0); err == nil {
		t.Fatal("an extra slot was issued")
	}
	refusal := log.String()[first:]
	if !strings.Contains(refusal, `"message":"profile capability not issued"`) || !strings.Contains(refusal, `"reason":"invalid_capability"`) ||
		!strings.Contains(refusal, `"profile":"github"`) || strings.Count(refusal, "\n") != 1 {
		t.Errorf("refusal log = %s", refusal)
	}
	for _, secret := range []string{issuedSecret, tok, tok[5:25]} {
		if strings.Contains(log.String(), secret) {
			t.Errorf("the log holds a secret")
		}
	}
}

// mustSealProfile seals s with c for the revocation tests.
func mustSealProfile(t testing.TB, c *capability.Codec, s capability.ProfileSubject, ttl time.Duration) string {
	t.Helper()
	tok, err := c.SealProfile(s, ttl)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// TestIssueRedeemRevokeProfile: a profile capability issued through the
// API redeems, and is then revoked through the API by subject id, by
// capability and by container, each revoking only its own.
func TestIssueRedeemRevokeProfile(t *testing.T) {
	store := revocation.NewMemoryStore()
	// The server's clock, as the revocations' (APIHandler's), is time.Now:
	// capabilities issued now are at or before the revocations made next.
	core, err := NewAuthorizer(Config{Codec: newCodec(t, time.Now, testKey), Logger: zerolog.Nop(), Revocations: store.Set()})
	if err != nil {
		t.Fatal(err)
	}
	core.SetProfiles(loadIssueProfiles(t))
	h, err := NewAPIHandler(core, APIOptions{Token: testAPIToken, Revocations: store})
	if err != nil {
		t.Fatal(err)
	}
	issue := func(tenant, container string) string {
		t.Helper()
		w := doHTTP(t, h, nil, issueReq(profileIssueBody(func(m map[string]any) {
			m["subject"], m["outboundContainerId"] = map[string]string{"userId": "u-1", "tenantId": tenant}, container
		})))
		var got map[string]string
		if w.Code != http.StatusOK || json.Unmarshal(w.Body.Bytes(), &got) != nil {
			t.Fatalf("issue = %d %s", w.Code, w.Body)
		}
		return got["capability"]
	}
	redeem := func(tok, container string) int {
		t.Helper()
		w := doHTTP(t, h, nil, redeemRequestFor(redeemBody(tok, container, "GET", "https://github.com/acme/widgets.git/info/refs?service=git-upload-pack")))
		if w.Code == http.StatusOK && !strings.Contains(w.Body.String(), `"header":"authorization"`) {
			t.Errorf("redeem answered %s", w.Body)
		}
		return w.Code
	}
	revoke := func(body string) {
		t.Helper()
		if w := doHTTP(t, h, nil, httpRequest{method: "POST", target: RevokePath, header: apiHeader(testAPIToken), body: body}); w.Code != http.StatusOK {
			t.Fatalf("revoke %s = %d %s", body, w.Code, w.Body)
		}
	}
	a, b, c := issue("t-9", "ctr-1"), issue("t-8", "ctr-1"), issue("t-8", "ctr-2")
	for _, tc := range []struct{ tok, container string }{{a, "ctr-1"}, {b, "ctr-1"}, {c, "ctr-2"}} {
		if code := redeem(tc.tok, tc.container); code != http.StatusOK {
			t.Fatalf("redeem of an issued capability = %d; want 200", code)
		}
	}
	steps := []struct {
		revoke  string
		a, b, c int // the redeem status of each afterwards
	}{
		{`{"subject":"tenantId=t-9"}`, 401, 200, 200},
		{`{"capability":"` + b + `"}`, 401, 401, 200},
		{`{"outboundContainerId":"ctr-2"}`, 401, 401, 401},
	}
	for _, st := range steps {
		revoke(st.revoke)
		if got := [3]int{redeem(a, "ctr-1"), redeem(b, "ctr-1"), redeem(c, "ctr-2")}; got != [3]int{st.a, st.b, st.c} {
			t.Fatalf("after revoking %.40s: redeem = %v; want %v", st.revoke, got, [3]int{st.a, st.b, st.c})
		}
	}
}
