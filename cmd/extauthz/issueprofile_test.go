package main

import (
	"encoding/base64"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/extauthz/extauthz/capability"
	"github.com/extauthz/extauthz/internal/testutil/testsupport"
)

const cliProfileSecret = "ghs-SENTINEL-cli-profile-secret-91c2"

// sealProfileFor seals a profile capability with key.
func sealProfileFor(t *testing.T, key []byte) string {
	t.Helper()
	tok, err := capability.NewCodec(mustRing(t, key)).SealProfile(capability.ProfileSubject{Profile: "github", OutboundContainerID: "ctr-1",
		Credentials: map[string]string{"token": cliProfileSecret}}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// TestIssueProfileCommand: `issue --profile` prints an eac1 capability
// that opens to what the flags say, with the secret from a file or stdin.
func TestIssueProfileCommand(t *testing.T) {
	key := capNewKey(t)
	keyFile, profilesFile := capKeyFile(t, key), testsupport.SecretFile(t, "profiles.yaml", testsupport.IssueProfiles)
	secretFile := testsupport.SecretFile(t, "token", "\n"+cliProfileSecret+"\n")
	raw, _ := base64.StdEncoding.DecodeString(key)
	codec := capability.NewCodec(mustRing(t, raw), capability.WithClock(func() time.Time { return cliNow }))
	env := capTestEnv(map[string]string{"EXTAUTHZ_PROFILES_FILE": profilesFile})
	base := []string{"--key-file", keyFile, "--profile", "github", "--container", "ctr-1", "--var", "owner=acme", "--var", "repo=a=b.git",
		"--subject", "userId=u-1", "--subject", "tenantId=t-9"}
	for _, tc := range []struct {
		name  string
		stdin string
		args  []string
		ttl   time.Duration
	}{
		{"from a file, the profile's lifetime", "", []string{"--credential", "token=@" + secretFile}, time.Hour},
		{"from stdin, --ttl", cliProfileSecret + "\r\n", []string{"--credential", "token=@-", "--ttl", "30m"}, 30 * time.Minute},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := runCap(t, capIssue(env), tc.stdin, append(base, tc.args...)...)
			if r.code != 0 || r.stderr != "" || strings.Count(r.stdout, "\n") != 1 {
				t.Fatalf("issue = %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
			}
			c, err := codec.OpenProfile(strings.TrimSpace(r.stdout))
			if err != nil {
				t.Fatalf("the capability does not open: %v", err)
			}
			want := capability.ProfileSubject{Profile: "github", OutboundContainerID: "ctr-1",
				Subject: map[string]string{"userId": "u-1", "tenantId": "t-9"}, Vars: map[string]string{"owner": "acme", "repo": "a=b.git"},
				Credentials: map[string]string{"token": cliProfileSecret}}
			if c.Profile != want.Profile || c.OutboundContainerID != want.OutboundContainerID || !maps.Equal(c.Subject, want.Subject) ||
				!maps.Equal(c.Vars, want.Vars) || !maps.Equal(c.Credentials, want.Credentials) {
				t.Errorf("claims %v; want %v", c, want)
			}
			if c.IssuedAt != cliNow.UnixMilli() || c.ExpiresAt-c.IssuedAt != tc.ttl.Milliseconds() {
				t.Errorf("issuedAt %d, lifetime %dms; want now, %v", c.IssuedAt, c.ExpiresAt-c.IssuedAt, tc.ttl)
			}
			// open shows the claims, every credential redacted.
			o := runCap(t, capOpen(env), r.stdout, "--key-file", keyFile)
			if o.code != 0 || !strings.Contains(o.stdout, `"profile": "github"`) || !strings.Contains(o.stdout, `"token": "[redacted]"`) ||
				!strings.Contains(o.stdout, `"tenantId": "t-9"`) || strings.Contains(o.stdout, cliProfileSecret) {
				t.Errorf("open = %d, stdout %s, stderr %q", o.code, o.stdout, o.stderr)
			}
		})
	}
}

// TestIssueProfileCommandErrors: usage errors exit 2, refusals 1, and no
// message quotes a secret, even one given on the command line by mistake.
func TestIssueProfileCommandErrors(t *testing.T) {
	keyFile, profilesFile := capKeyFile(t, capNewKey(t)), testsupport.SecretFile(t, "profiles.yaml", testsupport.IssueProfiles)
	secretFile := testsupport.SecretFile(t, "token", cliProfileSecret)
	env := capTestEnv(nil)
	profile := func(args ...string) []string {
		return append([]string{"--key-file", keyFile, "--profile", "github", "--profiles-file", profilesFile, "--container", "ctr-1",
			"--var", "owner=acme", "--var", "repo=w.git"}, args...)
	}
	cred := "token=@" + secretFile
	for _, tc := range []struct {
		name  string
		stdin string
		args  []string
		code  int
		want  string
	}{
		{"a literal secret", "", profile("--credential", "token="+cliProfileSecret), 2, "never from the command line"},
		{"no '=' in a credential", "", profile("--credential", cliProfileSecret), 2, "want SLOT=@FILE or SLOT=@-"},
		{"a bare @", "", profile("--credential", "token=@"), 2, "never from the command line"},
		{"two slots from stdin", cliProfileSecret, profile("--credential", "token=@-", "--credential", "other=@-"), 2, "stdin holds one secret"},
		{"a slot twice", "", profile("--credential", cred, "--credential", cred), 2, "--credential token given twice"},
		{"a variable twice", "", profile("--credential", cred, "--var", "owner=x"), 2, "--var owner given twice"},
		{"a variable without '='", "", profile("--credential", cred, "--var", "owner"), 2, "--var: want NAME=VALUE"},
		{"a subject id without a name", "", profile("--credential", cred, "--subject", "=u-1"), 2, "--subject: want NAME=VALUE"},
		{"no profiles file", "", []string{"--key-file", keyFile, "--profile", "github", "--container", "c", "--credential", cred}, 2, "--profile needs --profiles-file"},
		{"no container", "", []string{"--key-file", keyFile, "--profile", "github", "--profiles-file", profilesFile, "--credential", cred}, 2, "--profile needs --container"},
		{"profile flags without --profile", cliSubject, []string{"--key-file", keyFile, "--var", "owner=acme"}, 2, "go with --profile"},
		{"missing credential file", "", profile("--credential", "token=@/nonexistent/token"), 1, "--credential token: open /nonexistent/token"},
		{"empty credential file", "", profile("--credential", "token=@"+testsupport.SecretFile(t, "empty", " \n")), 1, "--credential token:"},
		{"empty stdin", "\n", profile("--credential", "token=@-"), 1, "stdin is empty"},
		{"bad profiles file", "", append(profile("--credential", cred), "--profiles-file", testsupport.SecretFile(t, "bad.yaml", "profiles: 1\n")), 1, "bad.yaml"},
		{"unknown profile", "", append(profile("--credential", cred), "--profile", "gitlab"), 1, "the profile is not loaded (loaded: github, duo)"},
		{"a missing slot", "", profile(), 1, "profile github needs the credential slot token"},
		{"an extra slot", "", profile("--credential", cred, "--credential", "api-key=@"+secretFile), 1, "1 credential slot that profile github does not use"},
		{"a missing variable", "", []string{"--key-file", keyFile, "--profile", "github", "--profiles-file", profilesFile, "--container", "ctr-1",
			"--var", "owner=acme", "--credential", cred}, 1, "needs the variable repo"},
		{"an extra variable", "", profile("--credential", cred, "--var", "branch=main"), 1, "1 variable that profile github does not use"},
		{"over the profile's lifetime", "", profile("--credential", cred, "--ttl", "2h"), 1, "over profile github's maxLifetime 1h0m0s"},
		{"over 4h", "", profile("--credential", cred, "--ttl", "5h"), 2, "--ttl"},
		{"a control character", "", profile("--credential", "token=@"+testsupport.SecretFile(t, "cr", "a\rb")), 1, "control character"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := runCap(t, capIssue(env), tc.stdin, tc.args...)
			if r.code != tc.code || !strings.Contains(r.stderr, tc.want) || r.stdout != "" {
				t.Fatalf("issue = %d, stdout %q, stderr %q; want %d and %q", r.code, r.stdout, r.stderr, tc.code, tc.want)
			}
			if strings.Contains(r.stderr, cliProfileSecret) {
				t.Fatalf("stderr quotes the secret: %q", r.stderr)
			}
		})
	}
}
