package server

import (
	"io"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/extauthz/extauthz/internal/testutil/testsupport"
)

// TestServeMemoryRevocationsSaySo: --revocation-store=memory with the API
// on starts, says at warn that revocations are neither durable nor shared,
// and /readyz says so too. Before, "memory" was not a store.
func TestServeMemoryRevocationsSaySo(t *testing.T) {
	keyFile, _ := newKeyFile(t)
	tokenFile := testsupport.SecretFile(t, "api-token", testAdminToken)
	p := startServer(t, "--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0",
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
	if n := strings.Count(p.logs.String(), "neither durable nor shared"); n != 1 {
		t.Errorf("the warning was logged %d times; want once", n)
	}
}

// TestRevocationStoreFlags: the grammar of --revocation-store and
// --revocation-file, and which store each combination of flags chooses.
func TestRevocationStoreFlags(t *testing.T) {
	dir := t.TempDir()
	keyFile, _ := newKeyFile(t)
	tokenFile := testsupport.SecretFile(t, "api-token", testAdminToken)
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
			args := []string{"--grpc-addr", "127.0.0.1:0"}
			if !slices.Contains(c.args, "--dev") { // --dev makes its own key
				args = append(args, "--key-file", keyFile)
			}
			cfg, err := parseConfigEnv(c.env, append(args, c.args...)...)
			kind, _, _ := cfg.revocationStore()
			switch {
			case c.bad && err == nil:
				t.Fatalf("accepted, store %q; want an error saying %q", kind, c.want)
			case c.bad && !strings.Contains(err.Error(), c.want):
				t.Fatalf("error %q; want it to say %q", err, c.want)
			case !c.bad && err != nil:
				t.Fatalf("error %v; want store %s", err, c.want)
			case !c.bad && kind != c.want:
				t.Fatalf("store %q; want %q", kind, c.want)
			}
		})
	}
	// A value that is not a store is never echoed: it may be a URL with a
	// password in it.
	_, err := parseConfig("--key-file", keyFile, "--revocation-store", "http://user:hunter2-secret@redis:6379")
	if err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Errorf("a bad store URL: %v; want an error that does not repeat it", err)
	}
}
