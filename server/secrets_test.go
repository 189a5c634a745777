package server

import (
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"github.com/extauthz/extauthz/authz"
	"github.com/extauthz/extauthz/internal/testutil/proc"
	"github.com/extauthz/extauthz/internal/testutil/testpki"
	"github.com/extauthz/extauthz/internal/testutil/testprog"
	"github.com/extauthz/extauthz/internal/testutil/testsupport"
	"github.com/extauthz/extauthz/revocation"
)

// TestAPITokenReload: the API token file is a secret file like the key
// file. A new token is in force after a reload and the old one is refused;
// a bad edit (empty, too short) keeps the last good token, is logged
// naming the file, and no token is ever logged.
func TestAPITokenReload(t *testing.T) {
	keyFile, _ := newKeyFile(t)
	const first, second, third = "first-token-0123456789", "second-token-0123456789", "third-token-0123456789"
	tokenFile := testsupport.SecretFile(t, "api-token", first+"\n")
	var logs proc.Lines
	s, err := New(mustConfig(t, "--key-file", keyFile, "--http-addr", "127.0.0.1:0", "--api-token-file", tokenFile,
		"--revocation-store", "memory"), zerolog.New(&logs))
	if err != nil {
		t.Fatal(err)
	}
	list := func(token string) int {
		r := httptest.NewRequest(http.MethodGet, authz.RevocationsPath, nil)
		r.Header.Set("Authorization", "Bearer "+token)
		w := httptest.NewRecorder()
		s.HTTPHandler().ServeHTTP(w, r)
		return w.Code
	}
	in := func(what string, good string, refused ...string) {
		t.Helper()
		if got := list(good); got != http.StatusOK {
			t.Errorf("%s: the token in force gets %d; want 200", what, got)
		}
		for _, tok := range refused {
			if got := list(tok); got != http.StatusUnauthorized {
				t.Errorf("%s: %.6s… gets %d; want 401", what, tok, got)
			}
		}
	}
	in("at start", first, second)

	testsupport.ReplaceFile(t, tokenFile, second+"\n")
	s.reloadSecrets(false, "file_changed")
	in("replaced", second, first)

	for _, bad := range []string{"", " \n", "short"} {
		from := logs.Len()
		testsupport.ReplaceFile(t, tokenFile, bad)
		s.reloadSecrets(false, "file_changed")
		failed := logs.Wait(t, from, "the bad edit logged", msg("API token reload failed; keeping the current token"))
		if e, _ := failed["error"].(string); !strings.Contains(e, "--api-token-file") || !strings.Contains(e, tokenFile) {
			t.Errorf("the failure says %q; want the flag and the file", e)
		}
		in("after a bad edit", second, first, strings.TrimSpace(bad))
	}

	// Rewritten in place: applied once two reads agree; SIGHUP at once.
	if err := os.WriteFile(tokenFile, []byte(third), 0o600); err != nil {
		t.Fatal(err)
	}
	s.reloadSecrets(false, "file_changed")
	s.reloadSecrets(false, "file_changed")
	in("rewritten in place", third, second)
	if err := os.WriteFile(tokenFile, []byte(first), 0o600); err != nil {
		t.Fatal(err)
	}
	s.reloadSecrets(true, "sighup")
	in("SIGHUP", first, third)
	noSecret(t, "the log", logs.String(), first, second, third, "short")
}

// TestRedisCAReload: the Redis CA bundle is reloaded like the key file and
// used for the next connection. Redis moves to a certificate from another
// CA; once the bundle names that CA, the store reconnects; a bundle that
// is not PEM keeps the current one.
func TestRedisCAReload(t *testing.T) {
	ip := []net.IP{net.ParseIP("127.0.0.1")}
	ca1, ca2 := testpki.NewCA(t, "redis CA one"), testpki.NewCA(t, "redis CA two")
	leaf1, leaf2 := ca1.Issue(testpki.Spec{CommonName: "redis", IPs: ip}), ca2.Issue(testpki.Spec{CommonName: "redis", IPs: ip})
	r := testprog.StartRedisTLS(t, leaf1.CertFile, leaf1.KeyFile)
	pem := func(ca *testpki.CA) string {
		b, err := os.ReadFile(ca.File)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	caFile := testsupport.SecretFile(t, "redis-ca.pem", pem(ca1))
	keyFile, _ := newKeyFile(t)
	p := startServer(t, "--grpc-addr", "127.0.0.1:0", "--http-addr", "", "--admin-addr", "", "--key-file", keyFile,
		"--revocation-store", r.URL(), "--revocation-store-ca-file", caFile, "--key-reload-interval", "0")
	n := 0
	revoked := func() bool {
		n++
		e, err := revocation.NewEntry(revocation.KindUser, "user-"+strings.Repeat("x", n), "test", "test", time.Now())
		if err != nil {
			t.Fatal(err)
		}
		return p.srv.revocations.Revoke(e) == nil
	}
	eventually(t, "a revocation stored over TLS verified by the first CA", revoked)

	admin := redis.NewClient(&redis.Options{Addr: strings.TrimPrefix(r.URL(), "rediss://"), TLSConfig: &tls.Config{RootCAs: ca1.Pool}})
	defer admin.Close()
	ctx := context.Background()
	if err := admin.Do(ctx, "CONFIG", "SET", "tls-cert-file", leaf2.CertFile, "tls-key-file", leaf2.KeyFile).Err(); err != nil {
		t.Fatal(err)
	}
	dropClients := func() {
		t.Helper()
		for _, typ := range []string{"normal", "pubsub"} {
			if err := admin.ClientKillByFilter(ctx, "TYPE", typ).Err(); err != nil {
				t.Fatal(err)
			}
		}
	}
	testsupport.ReplaceFile(t, caFile, pem(ca2))
	p.reload()
	p.waitLog(t, "the new bundle loaded", msg("revocation store CA bundle reloaded"))
	dropClients()
	eventually(t, "a revocation stored over TLS verified by the second CA", revoked)

	from := p.logs.Len()
	testsupport.ReplaceFile(t, caFile, "not PEM\n")
	p.reload()
	p.logs.Wait(t, from, "the bad edit logged", msg("revocation store CA bundle reload failed; keeping the current bundle"))
	dropClients()
	eventually(t, "a revocation stored after the bad edit", revoked)
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
