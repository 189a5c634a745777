package capability

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/rs/zerolog"
)

const (
	sentinelUser     = "SENTINEL-USER-TOKEN-d41d8cd9"
	sentinelProvider = "SENTINEL-PROVIDER-TOKEN-8f00b204"
)

// assertClean fails if s contains a secret.
func assertClean(t *testing.T, what, s string, secrets ...string) {
	t.Helper()
	for _, secret := range secrets {
		if secret != "" && strings.Contains(s, secret) {
			t.Errorf("%s leaks a secret: %s", what, s)
		}
	}
}

// TestNoSecretLeaks seals a capability holding sentinel tokens and checks that
// no rendering, error or log line built from it contains a token, the
// capability or the key.
func TestNoSecretLeaks(t *testing.T) {
	key := testKey(7)
	keyB64 := base64.StdEncoding.EncodeToString(key)
	c, clk := newTestCodec(t, key)
	s := testSubject()
	s.UserToken, s.ProviderToken = sentinelUser, sentinelProvider
	tok, err := c.Seal(s, 0)
	if err != nil {
		t.Fatal(err)
	}
	secrets := []string{sentinelUser, sentinelProvider, tok, keyB64, string(key), hex.EncodeToString(key)}
	body := strings.TrimPrefix(tok, Prefix)
	for _, p := range strings.Split(body, ":") {
		secrets = append(secrets, p)
	}
	assertClean(t, "the capability", tok, sentinelUser, sentinelProvider)

	claims, err := c.Open(tok)
	if err != nil {
		t.Fatal(err)
	}
	if claims.UserToken != sentinelUser || claims.ProviderToken != sentinelProvider {
		t.Fatal("tokens lost in the round trip")
	}

	t.Run("fmt", func(t *testing.T) {
		for _, v := range []any{claims, &claims, claims.Subject, &claims.Subject, []Claims{claims},
			map[string]Claims{"c": claims}, struct{ C Claims }{claims}, c.KeyRing(), c} {
			for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%d", "%T"} {
				assertClean(t, fmt.Sprintf("%s of %T", verb, v), fmt.Sprintf(verb, v), secrets...)
			}
		}
		assertClean(t, "String", claims.String(), secrets...)
		assertClean(t, "GoString", claims.GoString(), secrets...)
		assertClean(t, "Subject.String", claims.Subject.String(), secrets...)
		assertClean(t, "Println", fmt.Sprintln(claims, claims.Subject), secrets...)
		if !strings.Contains(claims.String(), "[redacted]") || !strings.Contains(claims.String(), "user-1") {
			t.Errorf("String = %s; want the user id and [redacted]", claims.String())
		}
	})

	t.Run("json", func(t *testing.T) {
		for _, v := range []any{claims, &claims, claims.Subject} {
			b, err := json.Marshal(v)
			if err != nil {
				t.Fatal(err)
			}
			assertClean(t, fmt.Sprintf("json.Marshal(%T)", v), string(b), secrets...)
		}
		bad := claims
		bad.UserID = "a\xffb"
		if _, err := json.Marshal(bad); err != nil {
			t.Errorf("MarshalJSON with invalid UTF-8: %v", err)
		}
		b, _ := json.Marshal(claims)
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		if m["userToken"] != "[redacted]" || m["providerToken"] != "[redacted]" || m["userId"] != "user-1" {
			t.Errorf("MarshalJSON = %s", b)
		}
	})

	t.Run("zerolog", func(t *testing.T) {
		var buf bytes.Buffer
		log := zerolog.New(&buf)
		log.Info().Object("claims", claims).Msg("opened")
		log.Info().Interface("claims", claims).Interface("subject", claims.Subject).Msg("iface")
		log.Info().Any("claims", &claims).Msg("any")
		log.Info().Stringer("claims", claims).Str("ring", c.KeyRing().String()).Msg("stringer")
		log.Info().Err(fmt.Errorf("wrapped: %v", claims)).Msg("err")
		assertClean(t, "zerolog output", buf.String(), secrets...)
		var line map[string]any
		first, _, _ := bytes.Cut(buf.Bytes(), []byte("\n"))
		if err := json.Unmarshal(first, &line); err != nil {
			t.Fatal(err)
		}
		obj, _ := line["claims"].(map[string]any)
		for _, k := range []string{"user_id", "cloud_agent_session_id", "kilo_session_id",
			"outbound_container_id", "issued_at", "expires_at", "has_provider_token"} {
			if _, ok := obj[k]; !ok {
				t.Errorf("MarshalZerologObject lacks %s: %s", k, first)
			}
		}
		if len(obj) != 7 {
			t.Errorf("MarshalZerologObject has %d fields; want 7: %s", len(obj), first)
		}
	})

	t.Run("errors", func(t *testing.T) {
		var errs []error
		record := func(_ any, err error) {
			if err == nil {
				t.Fatal("expected an error")
			}
			errs = append(errs, err)
		}
		// Format errors quoting nothing of the capability.
		for p := range 3 {
			record(c.Open(tamper(tok, p, 0)))
		}
		record(c.Open("kka2." + body))
		record(c.Open(tok + ":" + body))
		record(c.Open(strings.Replace(tok, "=", "", 1)))
		record(c.Open(tok + strings.Repeat("A", MaxTokenLen)))
		other, _ := newTestCodec(t, testKey(8))
		record(other.Open(tok))
		// Claim-rule errors from plaintexts that carry the tokens.
		for _, js := range []string{
			strings.Replace(claimsJSON(), `"user-token-1"`, `"`+sentinelUser+`","`+sentinelProvider+`":1`, 1),
			strings.Replace(claimsJSON(), `"userId":"user-1"`, `"userId":""`, 1),
			strings.Replace(claimsJSON(), `"user-token-1"`, `"`+sentinelUser+`"`, 1) + sentinelProvider,
			strings.Replace(claimsJSON(), `"user-token-1"`, `"`+sentinelUser+"\xff\"", 1),
			strings.Replace(claimsJSON(), `"user-token-1"`, `"`+sentinelUser+`","userToken":"`+sentinelProvider+`"`, 1),
			strings.Replace(claimsJSON(), `"https://api.kilo.example/api"`, `"`+sentinelUser+`"`, 1),
		} {
			record(c.Open(sealRaw(t, key, []byte(js))))
		}
		// Clock errors.
		clk.t = t0.Add(MaxLifetime)
		record(c.Open(tok))
		clk.t = t0.Add(-ClockSkew - 1e6)
		record(c.Open(tok))
		clk.t = t0
		// Seal errors with the sentinels in the subject.
		bad := s
		bad.UserID = ""
		record(c.Seal(bad, 0))
		bad = s
		bad.Targets.BackendBaseURL = sentinelUser
		record(c.Seal(bad, 0))
		// A target the route policy refuses is refused by authz, not Seal:
		// authz's TestIssueTargetRule checks that error.
		record(c.Seal(s, MaxLifetime+1))
		// Key errors.
		record(ParseKeyFile("keys", []byte(keyB64[:20]+"\n")))
		record(ParseKeyFile("keys", []byte(keyB64+"\n"+keyB64+"\n")))
		record(ParseKeyFile("keys", []byte(keyB64+"AAAA\n")))
		record(ParseKeyList(keyB64 + ",%%" + keyB64))
		record(NewKeyRing(key[:31]))
		for _, err := range errs {
			assertClean(t, "error", err.Error(), secrets...)
			assertClean(t, "error %+v", fmt.Sprintf("%+v", err), secrets...)
		}
	})
}
