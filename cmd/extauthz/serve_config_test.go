package main

import (
	"bytes"
	"encoding/base64"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rs/zerolog"
)

// TestServeRefusesBadConfig: every configuration error stops serve (and
// check-config) before it listens, with a message that names the problem.
func TestServeRefusesBadConfig(t *testing.T) {
	for _, k := range []string{"EXTAUTHZ_KEYS", "EXTAUTHZ_KEY_FILE", "EXTAUTHZ_DEV", "EXTAUTHZ_API_TOKEN_FILE", "EXTAUTHZ_REVOCATION_STORE", "EXTAUTHZ_REVOCATION_FILE"} {
		t.Setenv(k, "")
	}
	dir := t.TempDir()
	good := filepath.Join(dir, "keys")
	os.WriteFile(good, []byte(base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{1}, 32))+"\n"), 0o600)
	bad := filepath.Join(dir, "bad")
	os.WriteFile(bad, []byte("# comment\nAAAA\n"), 0o600)
	short := filepath.Join(dir, "token")
	os.WriteFile(short, []byte("short\n"), 0o600)
	noAddr := []string{"--grpc-addr", "127.0.0.1:0", "--http-addr", "", "--admin-addr", ""}

	tests := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"no key", nil, 1, "no key configured"},
		{"missing key file", []string{"--key-file", filepath.Join(dir, "nope")}, 1, "key file"},
		{"bad key file names the line", []string{"--key-file", bad}, 1, "bad:2"},
		{"unknown flag", []string{"--nope"}, 2, "unknown flag --nope (extauthz "},
		{"bad identity source", []string{"--key-file", good, "--container-id-from", "cookie:x"}, 2, "unknown kind"},
		{"principal without group", []string{"--key-file", good, "--container-id-from", "principal:^spiffe://.*$"}, 2, "capture group"},
		{"authorization as capability header", []string{"--key-file", good, "--capability-header", "Authorization"}, 2, "may not be authorization"},
		{"bad upstream scheme", []string{"--key-file", good, "--upstream-scheme", "ftp"}, 2, "want http or https"},
		{"bad dev host", []string{"--key-file", good, "--dev-http-hosts", "a b"}, 2, "--dev-http-hosts"},
		{"bad log level", []string{"--key-file", good, "--log-level", "loud"}, 2, "--log-level"},
		{"short API token", []string{"--key-file", good, "--http-addr", "127.0.0.1:0", "--api-token-file", short, "--revocation-store", "memory"}, 1, "at least 16"},
		{"API token without HTTP listener", []string{"--key-file", good, "--api-token-file", good, "--revocation-store", "memory"}, 1, "need --http-addr"},
		{"API without a revocation store", []string{"--key-file", good, "--http-addr", "127.0.0.1:0", "--api-token-file", good}, 2, "say where revocations are kept"},
		{"identity header without HTTP listener", []string{"--key-file", good, "--http-container-id-header", "x-outbound-container-id"}, 1, "need --http-addr"},
		{"HTTP listener serving nothing", []string{"--key-file", good, "--http-addr", "127.0.0.1:0"}, 1, "--http-addr serves nothing"},
		{"reserved identity header", []string{"--key-file", good, "--http-addr", "127.0.0.1:0", "--http-container-id-header", "x-forwarded-for"}, 1, "--http-container-id-header"},
		{"TLS certificate without key", []string{"--key-file", good, "--tls-cert-file", good}, 1, "go together"},
		{"client CA without identities", []string{"--key-file", good, "--tls-cert-file", good, "--tls-key-file", good, "--tls-client-ca-file", good}, 1, "--tls-client-ca-file needs --tls-client-identities"},
		{"identities without client CA", []string{"--key-file", good, "--tls-cert-file", good, "--tls-key-file", good, "--tls-client-identities", "dns:envoy"}, 1, "--tls-client-identities needs --tls-client-ca-file"},
		{"client CA alone", []string{"--key-file", good, "--tls-client-ca-file", good, "--tls-client-identities", "dns:envoy"}, 1, "--tls-client-ca-file needs --tls-cert-file and --tls-key-file"},
		{"bad client identity", []string{"--key-file", good, "--tls-client-identities", "spiffe://x"}, 2, "--tls-client-identities (or EXTAUTHZ_TLS_CLIENT_IDENTITIES): \"spiffe://x\": want uri:NAME"},
		{"TLS files that are not PEM", []string{"--key-file", good, "--tls-cert-file", good, "--tls-key-file", good}, 1, "--tls-cert-file/--tls-key-file"},
		{"dev with a key file", []string{"--key-file", good, "--dev"}, 2, "--dev makes an ephemeral key"},
		{"negative reload interval", []string{"--key-file", good, "--key-reload-interval", "-5s"}, 2, "--key-reload-interval (or EXTAUTHZ_KEY_RELOAD_INTERVAL): must not be negative"},
		{"zero shutdown timeout", []string{"--key-file", good, "--shutdown-timeout", "0"}, 2, "--shutdown-timeout (or EXTAUTHZ_SHUTDOWN_TIMEOUT): must be more than 0"},
		{"address without a port", []string{"--key-file", good, "--grpc-addr", "bogus"}, 2, `--grpc-addr (or EXTAUTHZ_GRPC_ADDR): want host:port`},
		{"port out of range", []string{"--key-file", good, "--grpc-addr", ":99999"}, 2, "from 0 to 65535"},
		{"two listeners on one port", []string{"--key-file", good, "--grpc-addr", ":9191", "--admin-addr", "127.0.0.1:9191"}, 2, "are the same listening address"},
		{"unix without a path", []string{"--key-file", good, "--grpc-addr", "unix:"}, 2, "needs a socket path"},
		{"stray argument", []string{"--key-file", good, "extra"}, 2, "unexpected argument"},
	}
	envTests := []struct {
		name, env, value string
		want             string
	}{
		{"bool from the environment", "EXTAUTHZ_DEV", "yes", "EXTAUTHZ_DEV (for --dev): parse error; want true or false"},
		{"duration without a unit", "EXTAUTHZ_KEY_RELOAD_INTERVAL", "5", "want a duration with a unit, e.g. 500ms, 5s or 2m"},
		{"log level from the environment", "EXTAUTHZ_LOG_LEVEL", "verbose", "EXTAUTHZ_LOG_LEVEL (for --log-level): want debug, info, warn or error"},
	}
	for _, tc := range envTests {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv(tc.env, tc.value)
			var out, errb bytes.Buffer
			code := run(append([]string{"check-config"}, append(noAddr, "--key-file", good)...), strings.NewReader(""), &out, &errb)
			if code != 2 || !strings.Contains(errb.String(), tc.want) {
				t.Errorf("%s=%s: %d %q; want 2 and %q", tc.env, tc.value, code, errb.String(), tc.want)
			}
		})
	}
	for _, tc := range tests {
		for _, cmd := range []string{"serve", "check-config"} {
			t.Run(cmd+"/"+tc.name, func(t *testing.T) {
				var out, errb bytes.Buffer
				code := run(append(append([]string{cmd}, noAddr...), tc.args...), strings.NewReader(""), &out, &errb)
				if code != tc.code || !strings.Contains(errb.String(), tc.want) {
					t.Errorf("%s %v = %d, stderr %q; want %d and %q", cmd, tc.args, code, errb.String(), tc.code, tc.want)
				}
			})
		}
	}
}

func TestCheckConfigOK(t *testing.T) {
	t.Setenv("EXTAUTHZ_KEYS", base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{2}, 32)))
	for _, k := range []string{"EXTAUTHZ_KEY_FILE", "EXTAUTHZ_API_TOKEN_FILE", "EXTAUTHZ_REVOCATION_STORE", "EXTAUTHZ_REVOCATION_FILE"} {
		t.Setenv(k, "")
	}
	var out, errb bytes.Buffer
	if code := run([]string{"check-config"}, strings.NewReader(""), &out, &errb); code != 0 {
		t.Fatalf("check-config = %d, stderr %q", code, errb.String())
	}
	if !strings.Contains(out.String(), "configuration OK: 1 key(s)") || !strings.Contains(out.String(), "revocations in memory (not durable, not shared") ||
		strings.Contains(out.String(), os.Getenv("EXTAUTHZ_KEYS")) {
		t.Errorf("check-config printed %q", out.String())
	}
}

// TestHTTPModeOffByDefault: without flags no HTTP listener is opened and no
// header is trusted for identity; --dev turns the HTTP mode on, on loopback,
// with the usual header.
func TestHTTPModeOffByDefault(t *testing.T) {
	none := func(string) string { return "" }
	o, err := parseServeFlags("serve", nil, none, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if o.srv.HTTPAddr != "" || o.httpContainerIDHeader != "" {
		t.Errorf("default --http-addr %q, --http-container-id-header %q; want both off", o.srv.HTTPAddr, o.httpContainerIDHeader)
	}
	o, err = parseServeFlags("serve", []string{"--dev"}, none, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if o.srv.HTTPAddr != "127.0.0.1:8181" || o.httpContainerIDHeader != "x-outbound-container-id" {
		t.Errorf("--dev: --http-addr %q, --http-container-id-header %q; want loopback and x-outbound-container-id", o.srv.HTTPAddr, o.httpContainerIDHeader)
	}
}

// TestSecretFilePermissions: a key file other users can read is a warning, and
// with --strict-perms a refusal that says what to do.
func TestSecretFilePermissions(t *testing.T) {
	for _, k := range []string{"EXTAUTHZ_KEYS", "EXTAUTHZ_KEY_FILE", "EXTAUTHZ_STRICT_PERMS"} {
		t.Setenv(k, "")
	}
	dir := t.TempDir()
	keys := filepath.Join(dir, "keys")
	if err := os.WriteFile(keys, []byte(base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{1}, 32))+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	noAddr := []string{"--grpc-addr", "127.0.0.1:0", "--http-addr", "", "--admin-addr", ""}
	var out, errb bytes.Buffer
	if code := run(append(append([]string{"check-config"}, noAddr...), "--key-file", keys, "--strict-perms"), strings.NewReader(""), &out, &errb); code != 1 ||
		!strings.Contains(errb.String(), "open to other users (mode 0644)") || !strings.Contains(errb.String(), "chmod 600") {
		t.Errorf("--strict-perms with a 0644 key file = %d %q; want a refusal", code, errb.String())
	}
	o, err := parseServeFlags("serve", append(noAddr, "--key-file", keys), func(string) string { return "" }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	if _, err := newApp(o, func(string) string { return "" }, zerolog.New(&logs)); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs.String(), `"level":"warn"`) || !strings.Contains(logs.String(), "open to other users") {
		t.Errorf("a 0644 key file logged %q; want a warning", logs.String())
	}
	if err := os.Chmod(keys, 0o640); err != nil { // group access: a Kubernetes fsGroup
		t.Fatal(err)
	}
	logs.Reset()
	o.srv.StrictPerms = true
	if _, err := newApp(o, func(string) string { return "" }, zerolog.New(&logs)); err != nil || strings.Contains(logs.String(), "warn") {
		t.Errorf("a 0640 key file: %v, %q; want no complaint", err, logs.String())
	}
}
