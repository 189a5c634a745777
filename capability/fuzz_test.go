package capability

import (
	"encoding/base64"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/go-json-experiment/json/jsontext"
)

// FuzzOpen checks that Open never panics and fails only with exactly one of
// the package sentinels, and that whatever it accepts obeys the claim rules.
func FuzzOpen(f *testing.F) {
	key := testKey(1)
	c, _ := newTestCodec(f, key)
	for _, s := range interopSubjects() {
		tok, err := c.Seal(s, time.Hour)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(tok)
	}
	f.Add(sealRaw(f, key, []byte(claimsJSON())))
	f.Add(sealRaw(f, key, []byte(strings.Replace(claimsJSON(), `"version":1`, `"version":1.0`, 1))))
	f.Add(sealRaw(f, key, []byte(strings.Replace(claimsJSON(), `"userId"`, `"UserId"`, 1))))
	f.Add(sealRaw(f, key, []byte(claimsJSON()+"{}")))
	f.Add(sealRaw(f, key, []byte("{}")))
	for _, s := range []string{"", "kka1.", "kka1.::", "kka1.AA:AA:AA", "kka1.AAAAAAAAAAAAAAAAAAAAAA==:AAAAAAAAAAAAAAAAAAAAAA==:AAAA",
		"kka1.AAAAAAAAAAAAAAAAAAAAAA:AAAAAAAAAAAAAAAAAAAAAA:AAAA", "kka1.-_-_:AA==:AA==", "Bearer kka1.x"} {
		f.Add(s)
	}
	cached, _ := newCachingCodec(f, 64, key)
	f.Fuzz(func(t *testing.T, tok string) {
		cl, err := c.Open(tok)
		// A caching codec answers the same, the first time and from its cache.
		for range 2 {
			ccl, cerr := cached.Open(tok)
			if !reflect.DeepEqual(ccl, cl) || (cerr == nil) != (err == nil) || (err != nil && cerr.Error() != err.Error()) {
				t.Fatalf("cached Open = %v, %v; uncached %v, %v", ccl, cerr, cl, err)
			}
		}
		if err != nil {
			if n := len(sentinels(err)); n != 1 || errors.Is(err, ErrConfig) {
				t.Fatalf("Open error wraps %d sentinels (or ErrConfig with a key): %v", n, err)
			}
			return
		}
		if err := cl.validate(); err != nil {
			t.Fatalf("Open accepted claims that fail validation: %v", err)
		}
		if len(strings.TrimSpace(tok)) > MaxTokenLen {
			t.Fatal("Open accepted an oversized token")
		}
		// Every part of an accepted token is canonical base64.
		for _, p := range strings.Split(strings.TrimPrefix(strings.TrimSpace(tok), Prefix), ":") {
			b, err := base64.StdEncoding.DecodeString(p)
			if err != nil || base64.StdEncoding.EncodeToString(b) != p {
				t.Fatalf("Open accepted non-canonical part %q", p)
			}
		}
	})
}

// FuzzDecodeClaims checks the strict decoder: no panic, only ErrInvalid, and
// what it accepts re-encodes to claims that decode to the same value.
func FuzzDecodeClaims(f *testing.F) {
	f.Add([]byte(claimsJSON()))
	f.Add([]byte(strings.Replace(claimsJSON(), `,"providerToken":"provider-token-1"`, "", 1)))
	f.Add([]byte(strings.Replace(claimsJSON(), `"version":1`, `"version":1e0`, 1)))
	f.Add([]byte(strings.Replace(claimsJSON(), `"userId"`, `"\u0075serId"`, 1)))
	f.Add([]byte(strings.Replace(claimsJSON(), `"userId":"user-1"`, `"userId":"user-1","userId":"x"`, 1)))
	f.Add([]byte(`{"targets":{"backendBaseUrl":null}}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := decodeClaims(b)
		if err != nil {
			if got := sentinels(err); len(got) != 1 || got[0] != ErrInvalid {
				t.Fatalf("decodeClaims error %v; want only ErrInvalid", err)
			}
			return
		}
		// Whatever is accepted is valid JSON to a strict reference parser
		// (no duplicate names, valid UTF-8, a single value).
		if !jsontext.Value(b).IsValid() {
			t.Fatalf("decodeClaims accepted input that jsontext rejects: %q", b)
		}
		again, err := c.marshal()
		if err != nil {
			t.Fatalf("accepted claims do not re-encode: %v", err)
		}
		c2, err := decodeClaims(again)
		if err != nil || c2 != c {
			t.Fatalf("re-encoded claims decode to %v, %v; want %v", c2, err, c)
		}
	})
}

// FuzzDecodeCanonical checks that decodeCanonical accepts exactly the
// strings that standard base64 re-encodes to themselves.
func FuzzDecodeCanonical(f *testing.F) {
	for _, s := range []string{"", "AA==", "AB==", "AA", "AAAA", "-_==", "A\nA==", "AAAAAAAAAAAAAAAAAAAAAA=="} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		buf := make([]byte, len(s))
		n, ok := decodeCanonical(buf, s)
		b, err := base64.StdEncoding.DecodeString(s)
		want := err == nil && base64.StdEncoding.EncodeToString(b) == s
		if ok != want {
			t.Fatalf("decodeCanonical(%q) ok = %v; want %v", s, ok, want)
		}
		if ok && string(buf[:n]) != string(b) {
			t.Fatalf("decodeCanonical(%q) = %x; want %x", s, buf[:n], b)
		}
	})
}
