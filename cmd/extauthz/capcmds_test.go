package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/extauthz/extauthz/capability"
	"github.com/extauthz/extauthz/internal/testutil/testprog"
)

const (
	cliUserToken     = "SENTINEL-CLI-USER-TOKEN-5eb63bbb"
	cliProviderToken = "SENTINEL-CLI-PROVIDER-TOKEN-e0d123e5"
)

var cliNow = time.UnixMilli(1_750_000_000_000)

const cliSubject = `{"userId":"u1","cloudAgentSessionId":"c1","kiloSessionId":"k1",
 "outboundContainerId":"oc1","userToken":"` + cliUserToken + `","providerToken":"` + cliProviderToken + `",
 "targets":{"backendBaseUrl":"https://api.kilo.example/api","providerBaseUrl":"https://api.kilo.example",
 "sessionIngestBaseUrl":"https://ingest.kilo.example"}}`

// capTestEnv is a capEnv with a fixed clock and the given variables only.
func capTestEnv(vars map[string]string) capEnv {
	return capEnv{getenv: func(k string) string { return vars[k] }, now: func() time.Time { return cliNow }}
}

type capResult struct {
	code           int
	stdout, stderr string
}

func runCap(t *testing.T, f func([]string, *bytes.Buffer, *bytes.Buffer, *bytes.Buffer) int, stdin string, args ...string) capResult {
	t.Helper()
	var out, errb bytes.Buffer
	code := f(args, bytes.NewBufferString(stdin), &out, &errb)
	return capResult{code, out.String(), errb.String()}
}

func capIssue(env capEnv) func([]string, *bytes.Buffer, *bytes.Buffer, *bytes.Buffer) int {
	return func(a []string, in, out, errb *bytes.Buffer) int { return issueCmd(a, in, out, errb, env) }
}

func capOpen(env capEnv) func([]string, *bytes.Buffer, *bytes.Buffer, *bytes.Buffer) int {
	return func(a []string, in, out, errb *bytes.Buffer) int { return openCmd(a, in, out, errb, env) }
}

func capKeygen(a []string, in, out, errb *bytes.Buffer) int { return runKeygen(a, in, out, errb) }

// capNewKey runs keygen and returns its key.
func capNewKey(t *testing.T) string {
	t.Helper()
	r := runCap(t, capKeygen, "")
	if r.code != 0 || strings.Contains(r.stderr, r.stdout) {
		t.Fatalf("keygen = %d, stderr %q", r.code, r.stderr)
	}
	return strings.TrimSpace(r.stdout)
}

func capKeyFile(t *testing.T, lines ...string) string {
	t.Helper()
	name := filepath.Join(t.TempDir(), "keys")
	if err := os.WriteFile(name, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return name
}

func TestKeygen(t *testing.T) {
	a, b := capNewKey(t), capNewKey(t)
	for _, k := range []string{a, b} {
		raw, err := base64.StdEncoding.DecodeString(k)
		if err != nil || len(raw) != 32 {
			t.Fatalf("keygen printed %q: %d bytes, %v", k, len(raw), err)
		}
	}
	if a == b {
		t.Fatal("keygen printed the same key twice")
	}
	if r := runCap(t, capKeygen, "", "extra"); r.code != 2 {
		t.Fatalf("keygen extra = %d; want 2", r.code)
	}
	if r := runCap(t, capKeygen, "", "-h"); r.code != 0 || !strings.Contains(r.stdout, "usage: extauthz keygen") {
		t.Fatalf("keygen -h = %d %q", r.code, r.stdout)
	}
	if r := runCap(t, capKeygen, ""); !strings.Contains(r.stderr, "it is a secret") {
		t.Errorf("keygen to stdout says nothing about keeping the key secret: %q", r.stderr)
	}

	// -o FILE: a new file, mode 0600, never an existing one.
	file := filepath.Join(t.TempDir(), "keys")
	r := runCap(t, capKeygen, "", "-o", file)
	data, err := os.ReadFile(file)
	if r.code != 0 || err != nil || r.stdout != "" {
		t.Fatalf("keygen -o = %d, stdout %q, %v", r.code, r.stdout, err)
	}
	if raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(data))); err != nil || len(raw) != 32 {
		t.Errorf("keygen -o wrote %d bytes of key, %v", len(raw), err)
	}
	if fi, _ := os.Stat(file); fi.Mode().Perm() != 0o600 {
		t.Errorf("keygen -o wrote mode %v; want 0600", fi.Mode().Perm())
	}
	if r := runCap(t, capKeygen, "", "-o", file); r.code != 1 || !strings.Contains(r.stderr, "never overwritten") {
		t.Errorf("keygen -o on an existing file = %d %q; want a refusal", r.code, r.stderr)
	}
	if again, _ := os.ReadFile(file); string(again) != string(data) {
		t.Error("keygen -o changed an existing key file")
	}
}

func TestIssueOpen(t *testing.T) {
	k1, k2 := capNewKey(t), capNewKey(t)
	file := capKeyFile(t, "# current", k2, "", "# previous", k1)
	oldFile := capKeyFile(t, k1)
	env := capTestEnv(nil)

	t.Run("key file round trip", func(t *testing.T) {
		r := runCap(t, capIssue(env), cliSubject, "--key-file", file, "--ttl", "30m")
		if r.code != 0 || r.stderr != "" {
			t.Fatalf("issue = %d, stderr %q", r.code, r.stderr)
		}
		tok := strings.TrimSpace(r.stdout)
		if !strings.HasPrefix(tok, capability.Prefix) || strings.Count(r.stdout, "\n") != 1 {
			t.Fatalf("issue printed %q", r.stdout)
		}
		o := runCap(t, capOpen(env), r.stdout, "--key-file", file)
		if o.code != 0 {
			t.Fatalf("open = %d, stderr %q", o.code, o.stderr)
		}
		var got map[string]any
		if err := json.Unmarshal([]byte(o.stdout), &got); err != nil {
			t.Fatalf("open printed %q: %v", o.stdout, err)
		}
		if got["userToken"] != "[redacted]" || got["providerToken"] != "[redacted]" || got["userId"] != "u1" ||
			got["expiresAt"] != float64(cliNow.Add(30*time.Minute).UnixMilli()) {
			t.Fatalf("open printed %s", o.stdout)
		}
		for _, s := range []string{o.stdout, o.stderr, r.stderr} {
			if strings.Contains(s, cliUserToken) || strings.Contains(s, cliProviderToken) {
				t.Fatalf("output leaks a token: %s", s)
			}
		}
		// The first key sealed: a ring holding only the old key cannot open it.
		if o := runCap(t, capOpen(env), tok, "--key-file", oldFile); o.code != 1 || !strings.Contains(o.stderr, "invalid_capability") {
			t.Fatalf("open with the old key = %d %q", o.code, o.stderr)
		}
	})

	t.Run("EXTAUTHZ_KEYS", func(t *testing.T) {
		env := capTestEnv(map[string]string{"EXTAUTHZ_KEYS": k1 + "," + k2})
		r := runCap(t, capIssue(env), cliSubject)
		if r.code != 0 {
			t.Fatalf("issue = %d %q", r.code, r.stderr)
		}
		if o := runCap(t, capOpen(capTestEnv(nil)), r.stdout, "--key-file", oldFile); o.code != 0 {
			t.Fatalf("open = %d %q", o.code, o.stderr)
		}
	})

	t.Run("EXTAUTHZ_KEY_FILE", func(t *testing.T) {
		env := capTestEnv(map[string]string{"EXTAUTHZ_KEY_FILE": file, "EXTAUTHZ_KEYS": capNewKey(t)})
		r := runCap(t, capIssue(env), cliSubject)
		if r.code != 0 {
			t.Fatalf("issue = %d %q", r.code, r.stderr)
		}
		if o := runCap(t, capOpen(env), r.stdout); o.code != 0 {
			t.Fatalf("open = %d %q", o.code, o.stderr)
		}
	})

	t.Run("default lifetime", func(t *testing.T) {
		r := runCap(t, capIssue(env), cliSubject, "--key-file", file)
		o := runCap(t, capOpen(env), r.stdout, "--key-file", file)
		var got map[string]any
		if err := json.Unmarshal([]byte(o.stdout), &got); err != nil {
			t.Fatalf("issue = %d %q; open printed %q: %v", r.code, r.stderr, o.stdout, err)
		}
		// docs/decisions.md, section 3: 4 h unless a shorter one is asked for.
		if got["expiresAt"] != float64(cliNow.Add(4*time.Hour).UnixMilli()) {
			t.Fatalf("issue without --ttl: expiresAt %v; want issuedAt + 4h", got["expiresAt"])
		}
	})

	t.Run("expired", func(t *testing.T) {
		r := runCap(t, capIssue(env), cliSubject, "--key-file", file, "--ttl", "1m")
		later := capEnv{getenv: env.getenv, now: func() time.Time { return cliNow.Add(time.Minute) }}
		o := runCap(t, capOpen(later), r.stdout, "--key-file", file)
		if o.code != 1 || !strings.Contains(o.stderr, "expired_capability") || o.stdout != "" {
			t.Fatalf("open = %d %q %q", o.code, o.stdout, o.stderr)
		}
	})
}

func TestIssueOpenErrors(t *testing.T) {
	key := capNewKey(t)
	file := capKeyFile(t, key)
	bad := func(old, new string) string { return strings.Replace(cliSubject, old, new, 1) }
	offset := func(s string) string { return strconv.Itoa(strings.Index(cliSubject, s)) }
	for _, tc := range []struct {
		name  string
		cmd   string // issue or open
		stdin string
		args  []string
		env   map[string]string
		code  int
		want  string
	}{
		{"no key", "issue", cliSubject, nil, nil, 1, "pass --key-file"},
		{"missing key file", "issue", cliSubject, []string{"--key-file", "/nonexistent/keys"}, nil, 1, "/nonexistent/keys"},
		{"bad key file line", "issue", cliSubject, []string{"--key-file", capKeyFile(t, "# c", "abc")}, nil, 1, ":2: "},
		{"bad EXTAUTHZ_KEYS", "open", "kka1.x", nil, map[string]string{"EXTAUTHZ_KEYS": key + ",abc"}, 1, "EXTAUTHZ_KEYS: capability_configuration_error: key #2"},
		{"ttl too long", "issue", cliSubject, []string{"--key-file", file, "--ttl", "4h1s"}, nil, 2, "--ttl"},
		{"ttl zero", "issue", cliSubject, []string{"--key-file", file, "--ttl", "0"}, nil, 2, "--ttl"},
		{"bad EXTAUTHZ_TTL", "issue", cliSubject, []string{"--key-file", file}, map[string]string{"EXTAUTHZ_TTL": "soon"}, 2, "EXTAUTHZ_TTL"},
		{"unknown flag", "issue", cliSubject, []string{"--key", file}, nil, 2, "unknown flag --key"},
		{"extra argument", "open", "", []string{"--key-file", file, "token"}, nil, 2, "unexpected argument"},
		{"empty stdin for open", "open", "\n", []string{"--key-file", file}, nil, 1, "no capability on stdin"},
		{"empty stdin", "issue", "\n", []string{"--key-file", file}, nil, 1, "no subject JSON"},
		{"case-variant field", "issue", bad(`"userToken"`, `"UserToken"`), []string{"--key-file", file}, nil, 1, "unknown field at byte " + offset(`"userToken"`) + " in the top-level object: field names are case-sensitive, did you mean /userToken?"},
		{"unknown field", "issue", bad(`"userId"`, `"admin":true,"userId"`), []string{"--key-file", file}, nil, 1, "unknown field at byte 1 in the top-level object"},
		{"unknown target field", "issue", bad(`"providerBaseUrl"`, `"x":"y","providerBaseUrl"`), []string{"--key-file", file}, nil, 1, "unknown field at byte " + offset(`"providerBaseUrl"`) + " in /targets"},
		{"duplicate field", "issue", bad(`"userId":"u1"`, `"userId":"u1","userId":"u2"`), []string{"--key-file", file}, nil, 1, "at /userId: duplicate field"},
		{"number as string", "issue", bad(`"u1"`, `1`), []string{"--key-file", file}, nil, 1, "/userId: got a JSON number, want a string"},
		{"token as number", "issue", bad(`"`+cliUserToken+`"`, `7`), []string{"--key-file", file}, nil, 1, "/userToken"},
		{"null providerToken", "issue", bad(`"`+cliProviderToken+`"`, `null`), []string{"--key-file", file}, nil, 1, "subject JSON on stdin: invalid_capability: at /providerToken: got a JSON null, want a string"},
		{"empty providerToken", "issue", bad(`"`+cliProviderToken+`"`, `""`), []string{"--key-file", file}, nil, 1, "providerToken is empty"},
		{"token where a name belongs", "issue", bad(`"targets"`, `"`+cliProviderToken+`","targets"`), []string{"--key-file", file}, nil, 1, "unknown field at byte"},
		{"trailing data", "issue", cliSubject + cliUserToken, []string{"--key-file", file}, nil, 1, "invalid JSON"},
		{"missing field", "issue", bad(`"kiloSessionId":"k1",`, ``), []string{"--key-file", file}, nil, 1, "kiloSessionId is empty"},
		{"token with CR LF", "issue", bad(`"`+cliUserToken+`"`, `"tok\r\nx-evil: 1"`), []string{"--key-file", file}, nil, 1, "control character"},
		{"target refused by policy", "issue", bad(`"https://api.kilo.example/api"`, `"http://api.kilo.example/api"`), []string{"--key-file", file}, nil, 1, "invalid_targets"},
		{"garbage capability", "open", "kka1.AA:AA:AA", []string{"--key-file", file}, nil, 1, "invalid_capability"},
		{"not a capability", "open", cliUserToken, []string{"--key-file", file}, nil, 1, "invalid_capability"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := capTestEnv(tc.env)
			f := capIssue(e)
			if tc.cmd == "open" {
				f = capOpen(e)
			}
			r := runCap(t, f, tc.stdin, tc.args...)
			if r.code != tc.code || !strings.Contains(r.stderr, tc.want) || r.stdout != "" {
				t.Fatalf("%s = %d, stdout %q, stderr %q; want %d and %q", tc.cmd, r.code, r.stdout, r.stderr, tc.code, tc.want)
			}
			if strings.Contains(r.stderr, cliUserToken) || strings.Contains(r.stderr, cliProviderToken) || strings.Contains(r.stderr, key) {
				t.Fatalf("stderr leaks a secret: %q", r.stderr)
			}
		})
	}
}

// capNode seals or opens with Node's crypto (see testprog.NodeKKA1); key is
// base64, as keygen prints it.
func capNode(t *testing.T, mode, key, stdin string) string {
	t.Helper()
	k, err := base64.StdEncoding.DecodeString(key)
	if err != nil {
		t.Fatal(err)
	}
	return testprog.NodeKKA1(t)(mode, k, stdin)
}

// TestCLIInteropNode: a key from keygen seals in Node and opens with `open`;
// `issue` seals and Node opens it into the expected claims.
func TestCLIInteropNode(t *testing.T) {
	key := capNewKey(t)
	file := capKeyFile(t, key)
	env := capTestEnv(nil)

	t.Run("node seals, open opens", func(t *testing.T) {
		claims := strings.Replace(cliSubject, `{"userId"`, `{"version":1,"purpose":"kilo_api_session","issuedAt":`+
			capItoa(cliNow.UnixMilli())+`,"expiresAt":`+capItoa(cliNow.Add(time.Hour).UnixMilli())+`,"userId"`, 1)
		tok := capNode(t, "seal", key, claims)
		o := runCap(t, capOpen(env), tok, "--key-file", file)
		if o.code != 0 {
			t.Fatalf("open = %d %q", o.code, o.stderr)
		}
		var got, want map[string]any
		_ = json.Unmarshal([]byte(o.stdout), &got)
		_ = json.Unmarshal([]byte(claims), &want)
		want["userToken"], want["providerToken"] = "[redacted]", "[redacted]"
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("open printed %v; want %v", got, want)
		}
	})

	t.Run("issue seals, node opens", func(t *testing.T) {
		r := runCap(t, capIssue(env), cliSubject, "--key-file", file, "--ttl", "2h")
		if r.code != 0 {
			t.Fatalf("issue = %d %q", r.code, r.stderr)
		}
		var got, want map[string]any
		if err := json.Unmarshal([]byte(capNode(t, "open", key, r.stdout)), &got); err != nil {
			t.Fatal(err)
		}
		_ = json.Unmarshal([]byte(cliSubject), &want)
		want["version"], want["purpose"] = float64(1), "kilo_api_session"
		want["issuedAt"], want["expiresAt"] = float64(cliNow.UnixMilli()), float64(cliNow.Add(2*time.Hour).UnixMilli())
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("node opened %v; want %v", got, want)
		}
	})
}

func capItoa(n int64) string { b, _ := json.Marshal(n); return string(b) }

// TestIssueDevHTTPHosts: plain-http targets on a host outside the default
// development list are refused unless --dev-http-hosts names the host.
func TestIssueDevHTTPHosts(t *testing.T) {
	file := capKeyFile(t, capNewKey(t))
	env := capTestEnv(nil)
	subject := strings.NewReplacer("https://api.kilo.example", "http://echo:8080", "https://ingest.kilo.example", "http://echo:8080").Replace(cliSubject)
	if r := runCap(t, capIssue(env), subject, "--key-file", file); r.code != 1 || !strings.Contains(r.stderr, "invalid_targets") {
		t.Errorf("issue without --dev-http-hosts = %d %q; want 1 and invalid_targets", r.code, r.stderr)
	}
	if r := runCap(t, capIssue(env), subject, "--key-file", file, "--dev-http-hosts", "echo"); r.code != 0 {
		t.Errorf("issue --dev-http-hosts echo = %d %q; want 0", r.code, r.stderr)
	}
	if r := runCap(t, capIssue(env), subject, "--key-file", file, "--dev-http-hosts", "bad host"); r.code != 2 {
		t.Errorf("issue --dev-http-hosts 'bad host' = %d %q; want 2", r.code, r.stderr)
	}
}
