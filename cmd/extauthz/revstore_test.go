package main

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// writeAPIToken writes an admin token for --api-token-file and returns its
// path.
func writeAPIToken(t *testing.T, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "api-token")
	if err := os.WriteFile(path, []byte("test-admin-token-0123456789\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// noStoreMessage is what serve and check-config say when the API is on and
// no revocation store is named: each of the three choices.
var noStoreMessage = []string{"--revocation-file", "--revocation-store=redis://", "--revocation-store=memory"}

// TestServeAPINeedsRevocationStore: the capability API takes revocations,
// so `serve` with --api-token-file (flag or environment) and no store named
// does not start, and says what to choose; check-config says the same.
// Before, it started and kept revocations in memory without a word.
func TestServeAPINeedsRevocationStore(t *testing.T) {
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "keys")
	writeKeys(t, keyFile, newKey(t))
	tokenFile := writeAPIToken(t, dir)
	listeners := []string{"--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0", "--key-file", keyFile}
	for _, c := range []struct {
		name string
		args []string
		env  []string
	}{
		{"flag", []string{"--api-token-file", tokenFile}, nil},
		{"environment", nil, []string{"EXTAUTHZ_API_TOKEN_FILE=" + tokenFile}},
	} {
		t.Run("serve/"+c.name, func(t *testing.T) {
			cmd := exec.Command(buildBinary(t), append(append([]string{"serve"}, listeners...), c.args...)...)
			cmd.Env = append(append(os.Environ(), "EXTAUTHZ_KEYS=", "EXTAUTHZ_API_TOKEN_FILE=", "EXTAUTHZ_REVOCATION_STORE=", "EXTAUTHZ_REVOCATION_FILE="), c.env...)
			var stderr bytes.Buffer
			cmd.Stderr, cmd.Stdout = &stderr, io.Discard
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			kill := time.AfterFunc(20*time.Second, func() { cmd.Process.Kill() })
			err := cmd.Wait()
			kill.Stop()
			var exit *exec.ExitError
			if !errors.As(err, &exit) || exit.ExitCode() != 2 {
				t.Fatalf("serve with the API and no revocation store: %v; want exit status 2. stderr:\n%s", err, stderr.String())
			}
			for _, want := range noStoreMessage {
				if !strings.Contains(stderr.String(), want) {
					t.Errorf("stderr %q does not name %s", stderr.String(), want)
				}
			}
		})
	}
	t.Run("check-config", func(t *testing.T) {
		t.Setenv("EXTAUTHZ_KEYS", "")
		var out, errb bytes.Buffer
		code := run(append(append([]string{"check-config"}, listeners...), "--api-token-file", tokenFile), strings.NewReader(""), &out, &errb)
		if code != 2 {
			t.Fatalf("check-config with the API and no revocation store = %d, %q; want 2", code, errb.String())
		}
		for _, want := range noStoreMessage {
			if !strings.Contains(errb.String(), want) {
				t.Errorf("stderr %q does not name %s", errb.String(), want)
			}
		}
	})
}

// TestServeMemoryRevocationsSaySo: --revocation-store=memory with the API
// on starts, says at warn that revocations are neither durable nor shared,
// and /readyz says so too. Before, "memory" was not a store.
func TestServeMemoryRevocationsSaySo(t *testing.T) {
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "keys")
	writeKeys(t, keyFile, newKey(t))
	tokenFile := writeAPIToken(t, dir)
	p := startServe(t, "--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0",
		"--key-file", keyFile, "--api-token-file", tokenFile, "--revocation-store", "memory")
	p.waitLog(t, "the non-durable warning", func(m map[string]any) bool {
		s, _ := m["message"].(string)
		return m["level"] == "warn" && m["revocation_store"] == "memory" && strings.Contains(s, "neither durable nor shared")
	})
	admin := p.addr(t, "admin")
	p.waitLog(t, "ready", msg("ready"))
	resp, err := http.Get("http://" + admin + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "in memory: not durable, not shared") {
		t.Errorf("/readyz = %d %q; want 200 saying the revocations are in memory, not durable, not shared", resp.StatusCode, body)
	}
	if n := strings.Count(p.log(), "neither durable nor shared"); n != 1 {
		t.Errorf("the warning was logged %d times; want once", n)
	}
}

// TestRevocationStoreFlags: the grammar of --revocation-store and
// --revocation-file, and which store each combination of flags chooses.
func TestRevocationStoreFlags(t *testing.T) {
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "keys")
	writeKeys(t, keyFile, newKey(t))
	tokenFile := writeAPIToken(t, dir)
	api := []string{"--http-addr", "127.0.0.1:0", "--api-token-file", tokenFile}
	for _, c := range []struct {
		name string
		args []string
		env  map[string]string
		want string // the store chosen, or a part of the error
		bad  bool
	}{
		{"no API, nothing named", nil, nil, storeMemory, false},
		{"API and memory", append(api, "--revocation-store=memory"), nil, storeMemory, false},
		{"API and file", append(api, "--revocation-file", filepath.Join(dir, "rev")), nil, storeFile, false},
		{"API and redis", append(api, "--revocation-store", "redis://127.0.0.1:6379/0"), nil, storeRedis, false},
		{"API and rediss", append(api, "--revocation-store", "rediss://redis.example:6380"), nil, storeRedis, false},
		{"API and a store from the environment", api, map[string]string{"EXTAUTHZ_REVOCATION_STORE": "memory"}, storeMemory, false},
		{"dev implies memory", []string{"--dev", "--admin-addr", ""}, nil, storeMemory, false},
		{"dev with the API implies memory", append([]string{"--dev", "--admin-addr", ""}, api...), nil, storeMemory, false},
		{"dev with a file", []string{"--dev", "--admin-addr", "", "--revocation-file", filepath.Join(dir, "rev")}, nil, storeFile, false},
		{"API and nothing named", api, nil, "--revocation-store=memory", true},
		{"API from the environment and nothing named", nil, map[string]string{"EXTAUTHZ_API_TOKEN_FILE": tokenFile, "EXTAUTHZ_HTTP_ADDR": "127.0.0.1:0"}, "--revocation-file", true},
		{"unknown store", []string{"--revocation-store", "file:/var/lib/revocations"}, nil, "want memory, redis://", true},
		{"memory is lower case", []string{"--revocation-store", "Memory"}, nil, "want memory", true},
		{"memory and a file", []string{"--revocation-store", "memory", "--revocation-file", "x"}, nil, "exclude each other", true},
		{"redis and a file", []string{"--revocation-store", "redis://h:1", "--revocation-file", "x"}, nil, "exclude each other", true},
		{"password file without redis", []string{"--revocation-store", "memory", "--revocation-store-password-file", "x"}, nil, "need a redis:// or rediss://", true},
		{"CA file alone", []string{"--revocation-store-ca-file", "x"}, nil, "need a redis:// or rediss://", true},
	} {
		t.Run(c.name, func(t *testing.T) {
			getenv := func(k string) string { return c.env[k] }
			args := []string{"--grpc-addr", "127.0.0.1:0"}
			if !slices.Contains(c.args, "--dev") { // --dev makes its own key
				args = append(args, "--key-file", keyFile)
			}
			o, err := parseServeFlags("serve", append(args, c.args...), getenv, io.Discard)
			switch {
			case c.bad && err == nil:
				t.Fatalf("accepted, store %q; want an error saying %q", o.revocationKind, c.want)
			case c.bad && !strings.Contains(err.Error(), c.want):
				t.Fatalf("error %q; want it to say %q", err, c.want)
			case !c.bad && err != nil:
				t.Fatalf("error %v; want store %s", err, c.want)
			case !c.bad && o.revocationKind != c.want:
				t.Fatalf("store %q; want %q", o.revocationKind, c.want)
			}
		})
	}
	// A value that is not a store is never echoed: it may be a URL with a
	// password in it.
	_, err := parseServeFlags("serve", []string{"--key-file", keyFile, "--revocation-store", "http://user:hunter2-secret@redis:6379"}, func(string) string { return "" }, io.Discard)
	if err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Errorf("a bad store URL: %v; want an error that does not repeat it", err)
	}
}
