package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/extauthz/extauthz/authz"
	"github.com/extauthz/extauthz/capability"
	"github.com/extauthz/extauthz/internal/testutil/testsupport"
	"github.com/extauthz/extauthz/revocation"
)

const testAdminToken = "admin-token-0123456789abcdef"

func writeToken(t *testing.T) string {
	t.Helper()
	return testsupport.SecretFile(t, "api-token", testAdminToken+"\n")
}

// redeem asks the API at base to redeem tok for the --dev subject's
// container, and returns the status and body.
func redeem(t *testing.T, base, tok string) (int, string) {
	t.Helper()
	body, _ := json.Marshal(map[string]string{"capability": tok, "outboundContainerId": devSubject().OutboundContainerID,
		"requestMethod": "POST", "requestUrl": "http://localhost:8080/api/openrouter/v1/chat/completions"})
	return testsupport.HTTPCall(t, "POST", base+authz.RedeemPath, testAdminToken, body)
}

// TestRevokeCommand: `extauthz revoke` calls the API: each selector, a
// capability from stdin (never echoed), --list, and usage errors.
func TestRevokeCommand(t *testing.T) {
	key := newKey(t)
	store := revocation.NewMemoryStore()
	core, err := authz.NewAuthorizer(authz.Config{Codec: capability.NewCodec(mustRing(t, key)), Logger: zerolog.Nop(), Revocations: store.Set()})
	if err != nil {
		t.Fatal(err)
	}
	api, err := authz.NewAPIHandler(core, authz.APIOptions{Token: testAdminToken, Revocations: store})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(api)
	defer srv.Close()
	tokenFile := writeToken(t)
	tok := sealFor(t, key)
	noEnv := func(string) string { return "" }
	run := func(stdin string, args ...string) (int, string, string) {
		var out, errOut bytes.Buffer
		code := revokeCmd(append([]string{"--api-url", srv.URL, "--api-token-file", tokenFile}, args...), strings.NewReader(stdin), &out, &errOut, noEnv)
		return code, out.String(), errOut.String()
	}
	for _, tc := range []struct {
		name  string
		stdin string
		args  []string
		code  int
		kind  string
	}{
		{"user", "", []string{"--user-id", "u-1", "--reason", "offboarded"}, 0, "userId"},
		{"kilo session", "", []string{"--kilo-session-id", "k-1"}, 0, "kiloSessionId"},
		{"cloud agent session", "", []string{"--cloud-agent-session-id", "c-1"}, 0, "cloudAgentSessionId"},
		{"container", "", []string{"--outbound-container-id", "oc-1"}, 0, "outboundContainerId"},
		{"capability", tok + "\n", []string{"--capability-stdin"}, 0, "capability"},
		{"profile capability", sealProfileFor(t, key) + "\n", []string{"--capability-stdin"}, 0, "capability"},
		{"subject id", "", []string{"--subject", "tenantId=t-9"}, 0, "subject"},
		{"subject id without a key", "", []string{"--subject", "t-9"}, 1, ""},
		{"subject and user", "", []string{"--subject", "userId=u", "--user-id", "u"}, 2, ""},
		{"two selectors", "", []string{"--user-id", "u", "--kilo-session-id", "k"}, 2, ""},
		{"none", "", nil, 2, ""},
		{"refused by the server", "kka1.nope", []string{"--capability-stdin"}, 1, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := run(tc.stdin, tc.args...)
			if code != tc.code {
				t.Fatalf("exit %d; want %d; stderr %s", code, tc.code, errOut)
			}
			if strings.Contains(out+errOut, tok[5:30]) {
				t.Errorf("output quotes the capability")
			}
			if tc.code == 0 && !strings.Contains(out, `"kind":"`+tc.kind+`"`) {
				t.Errorf("stdout %s lacks kind %s", out, tc.kind)
			}
		})
	}
	code, out, errOut := run("", "--list")
	if code != 0 || strings.Count(out, "\n") != 7 {
		t.Fatalf("--list: exit %d, %d lines; want 0, 7\n%s%s", code, strings.Count(out, "\n"), out, errOut)
	}
	var bad bytes.Buffer
	if code := revokeCmd([]string{"--user-id", "u"}, nil, io.Discard, &bad, noEnv); code != 2 {
		t.Errorf("without --api-url: exit %d; want 2", code)
	}
}

// TestRevocationFileSurvivesKill9: a revocation answered 200 by a server
// with --revocation-file is still in force after the process is killed
// with SIGKILL and started again on the same file.
func TestRevocationFileSurvivesKill9(t *testing.T) {
	dir := t.TempDir()
	keyFile, revFile := filepath.Join(dir, "keys"), filepath.Join(dir, "revocations")
	key := newKey(t)
	writeKeys(t, keyFile, key)
	tokenFile := writeToken(t)
	tok := sealFor(t, key)
	start := func() (*proc, string) {
		p := startServe(t, "--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--admin-addr", "",
			"--key-file", keyFile, "--api-token-file", tokenFile, "--revocation-file", revFile, "--dev-http-hosts", "localhost")
		addr := p.addr(t, "http")
		p.waitLog(t, "ready", msg("ready"))
		return p, "http://" + addr
	}

	p, base := start()
	if code, body := redeem(t, base, tok); code != 200 {
		t.Fatalf("before revocation: %d %s", code, body)
	}
	var out, errOut bytes.Buffer
	if code := revokeCmd([]string{"--api-url", base, "--api-token-file", tokenFile, "--user-id", devSubject().UserID, "--reason", "test"},
		nil, &out, &errOut, func(string) string { return "" }); code != 0 {
		t.Fatalf("revoke: exit %d: %s", code, errOut.String())
	}
	if err := p.cmd.Process.Kill(); err != nil { // SIGKILL: no shutdown path runs
		t.Fatal(err)
	}
	<-p.done

	_, base = start()
	if code, body := redeem(t, base, tok); code != 401 || !strings.Contains(body, "revoked_capability") {
		t.Fatalf("after kill -9 and restart: %d %s; want 401 revoked_capability", code, body)
	}
}
