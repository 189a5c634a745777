package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/extauthz/extauthz/authz"
	"github.com/extauthz/extauthz/internal/testutil/testprog"
	"github.com/extauthz/extauthz/internal/testutil/testsupport"
)

// apiCall makes one API call with token and returns its status.
func apiCall(t *testing.T, method, url, token, body string) int {
	t.Helper()
	code, _ := testsupport.HTTPCall(t, method, url, token, []byte(body))
	return code
}

// eventually waits up to 10 s for cond.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("not within 10s: %s", what)
		}
	}
}

// TestServeReloadsSecretFiles: the API token file and the Redis password
// file are reloaded while the server runs, like the key file: a new token
// is in force and the old one refused, a new password is used for the next
// connection to Redis, and a bad edit (an empty file, a token too short)
// keeps the last good value and is logged. Before, both were read once.
func TestServeReloadsSecretFiles(t *testing.T) {
	keyFile := filepath.Join(t.TempDir(), "keys")
	writeKeys(t, keyFile, newKey(t))
	dir := t.TempDir()
	const oldToken, newToken = "old-admin-token-0123456789", "new-admin-token-9876543210"
	tokenFile := filepath.Join(dir, "api-token")
	testsupport.ReplaceFile(t, tokenFile, oldToken+"\n")

	t.Run("API token", func(t *testing.T) {
		p := startServe(t, "--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--admin-addr", "",
			"--key-file", keyFile, "--api-token-file", tokenFile, "--revocation-store", "memory", "--key-reload-interval", "100ms")
		list := "http://" + p.addr(t, "http") + authz.RevocationsPath
		p.waitLog(t, "ready", msg("ready"))
		if got := apiCall(t, "GET", list, oldToken, ""); got != http.StatusOK {
			t.Fatalf("the first token: %d; want 200", got)
		}
		testsupport.ReplaceFile(t, tokenFile, newToken+"\n")
		eventually(t, "the new token accepted", func() bool { return apiCall(t, "GET", list, newToken, "") == http.StatusOK })
		if got := apiCall(t, "GET", list, oldToken, ""); got != http.StatusUnauthorized {
			t.Errorf("the old token after the change: %d; want 401", got)
		}
		for _, bad := range []string{"", "\n", "too-short\n"} {
			from := p.mark()
			testsupport.ReplaceFile(t, tokenFile, bad)
			p.waitLogFrom(t, from, "the bad edit logged", msg("API token reload failed; keeping the current token"))
			if got := apiCall(t, "GET", list, newToken, ""); got != http.StatusOK {
				t.Errorf("after a bad edit %q, the last good token: %d; want 200", bad, got)
			}
			if got := apiCall(t, "GET", list, strings.TrimSpace(bad), ""); got != http.StatusUnauthorized {
				t.Errorf("after a bad edit %q, that token: %d; want 401", bad, got)
			}
		}
		stopServe(t, p)
		for _, secret := range []string{oldToken, newToken, "too-short"} {
			if bytes.Contains([]byte(p.log()), []byte(secret)) {
				t.Errorf("the log shows a token (%.8s…)", secret)
			}
		}
	})

	t.Run("Redis password", func(t *testing.T) {
		r := testprog.StartRedis(t)
		const oldPassword, newPassword = "old-redis-password-1", "new-redis-password-2"
		ctx := context.Background()
		admin := redis.NewClient(&redis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", r.Port)})
		defer admin.Close()
		if err := admin.ConfigSet(ctx, "requirepass", oldPassword).Err(); err != nil {
			t.Fatal(err)
		}
		admin = redis.NewClient(&redis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", r.Port), Password: oldPassword})
		defer admin.Close()
		passwordFile := filepath.Join(dir, "redis-password")
		testsupport.ReplaceFile(t, passwordFile, oldPassword+"\n")
		testsupport.ReplaceFile(t, tokenFile, newToken+"\n")
		p := startServe(t, "--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--admin-addr", "",
			"--key-file", keyFile, "--api-token-file", tokenFile, "--key-reload-interval", "100ms",
			"--revocation-store", r.URL(), "--revocation-store-password-file", passwordFile, "--revocation-max-staleness", "1s")
		revoke := "http://" + p.addr(t, "http") + authz.RevokePath
		n := 0
		revoked := func() bool {
			n++
			return apiCall(t, "POST", revoke, newToken, fmt.Sprintf(`{"userId":"user-%d","reason":"test"}`, n)) == http.StatusOK
		}
		eventually(t, "a revocation stored with the first password", revoked)

		// The password changes: Redis's, then the file; every connection
		// the server holds is dropped, so the next must use the new one.
		if err := admin.ConfigSet(ctx, "requirepass", newPassword).Err(); err != nil {
			t.Fatal(err)
		}
		admin = redis.NewClient(&redis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", r.Port), Password: newPassword})
		defer admin.Close()
		testsupport.ReplaceFile(t, passwordFile, newPassword+"\n")
		p.waitLog(t, "the new password loaded", msg("revocation store password reloaded"))
		if err := admin.ClientKillByFilter(ctx, "TYPE", "normal").Err(); err != nil {
			t.Fatal(err)
		}
		if err := admin.ClientKillByFilter(ctx, "TYPE", "pubsub").Err(); err != nil {
			t.Fatal(err)
		}
		eventually(t, "a revocation stored with the new password", revoked)

		// A bad edit keeps the new password.
		from := p.mark()
		testsupport.ReplaceFile(t, passwordFile, "\n")
		p.waitLogFrom(t, from, "the bad edit logged", msg("revocation store password reload failed; keeping the current password"))
		if err := admin.ClientKillByFilter(ctx, "TYPE", "normal").Err(); err != nil {
			t.Fatal(err)
		}
		eventually(t, "a revocation stored after the bad edit", revoked)
		stopServe(t, p)
		for _, secret := range []string{oldPassword, newPassword} {
			if bytes.Contains([]byte(p.log()), []byte(secret)) {
				t.Errorf("the log shows a password (%.8s…)", secret)
			}
		}
	})
}
