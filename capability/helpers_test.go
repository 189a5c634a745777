package capability

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"testing"
	"time"
)

// t0 is the tests' "now": 2025-06-15T15:06:40Z.
var t0 = time.UnixMilli(1_750_000_000_000)

func testKey(b byte) []byte { return bytes.Repeat([]byte{b}, KeySize) }

func testTargets() Targets {
	return Targets{
		BackendBaseURL:       "https://api.kilo.example/api",
		ProviderBaseURL:      "https://api.kilo.example",
		SessionIngestBaseURL: "https://ingest.kilo.example",
	}
}

func testSubject() Subject {
	return Subject{
		UserID:              "user-1",
		CloudAgentSessionID: "cas-1",
		KiloSessionID:       "ks-1",
		OutboundContainerID: "oc-1",
		UserToken:           "user-token-1",
		ProviderToken:       "provider-token-1",
		Targets:             testTargets(),
	}
}

// clock is a settable test clock.
type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

// newTestCodec returns a codec over keys whose clock reads t0 until moved.
func newTestCodec(t testing.TB, keys ...[]byte) (*Codec, *clock) {
	t.Helper()
	r, err := NewKeyRing(keys...)
	if err != nil {
		t.Fatalf("NewKeyRing: %v", err)
	}
	clk := &clock{t: t0}
	return NewCodec(r, WithClock(clk.now)), clk
}

// sealRaw encrypts an arbitrary plaintext the way the issuer does, so tests
// can feed Open claims that Seal would never produce.
func sealRaw(t testing.TB, key, plaintext []byte) string {
	t.Helper()
	block, err := aes.NewCipher(key)
	if err != nil {
		t.Fatal(err)
	}
	aead, err := cipher.NewGCMWithNonceSize(block, 16)
	if err != nil {
		t.Fatal(err)
	}
	iv := make([]byte, 16)
	_, _ = rand.Read(iv)
	out := aead.Seal(nil, iv, plaintext, nil)
	ct, tag := out[:len(out)-16], out[len(out)-16:]
	b64 := base64.StdEncoding.EncodeToString
	return Prefix + b64(iv) + ":" + b64(tag) + ":" + b64(ct)
}

// claimsJSON is a valid claims object issued at t0 for an hour.
func claimsJSON() string {
	return claimsJSONAt(t0.UnixMilli(), t0.Add(time.Hour).UnixMilli())
}

func claimsJSONAt(issued, expires int64) string {
	return fmt.Sprintf(`{"version":1,"purpose":"kilo_api_session","userId":"user-1",`+
		`"cloudAgentSessionId":"cas-1","kiloSessionId":"ks-1","outboundContainerId":"oc-1",`+
		`"userToken":"user-token-1","providerToken":"provider-token-1",`+
		`"targets":{"backendBaseUrl":"https://api.kilo.example/api",`+
		`"providerBaseUrl":"https://api.kilo.example","sessionIngestBaseUrl":"https://ingest.kilo.example"},`+
		`"issuedAt":%d,"expiresAt":%d}`, issued, expires)
}

// sentinel returns which package sentinels err wraps.
func sentinels(err error) []error {
	var out []error
	for _, s := range []error{ErrInvalid, ErrExpired, ErrConfig} {
		if errors.Is(err, s) {
			out = append(out, s)
		}
	}
	return out
}

// wantErr fails unless err wraps exactly want among the package sentinels.
func wantErr(t testing.TB, err, want error) {
	t.Helper()
	got := sentinels(err)
	if len(got) != 1 || got[0] != want {
		t.Fatalf("err = %v; want exactly %v", err, want)
	}
}
