package capability

import (
	"encoding/base64"
	"errors"
	"strings"
	"testing"
)

func TestParseKeyFile(t *testing.T) {
	k1 := base64.StdEncoding.EncodeToString(testKey(1))
	k2 := base64.StdEncoding.EncodeToString(testKey(2))
	short := base64.StdEncoding.EncodeToString(testKey(3)[:16])
	for _, tc := range []struct {
		name    string
		data    string
		wantLen int    // 0: error
		wantErr string // substring of the error
	}{
		{"one key", k1 + "\n", 1, ""},
		{"no trailing newline", k1, 1, ""},
		{"comments, blanks, CRLF, indentation", "# current\r\n\r\n  " + k1 + "  \r\n# previous\n\t" + k2 + "\n\n", 2, ""},
		{"empty file", "", 0, "keys.txt: no key in file"},
		{"only comments", "# nothing\n\n", 0, "keys.txt: no key in file"},
		{"bad base64", k1 + "\n\n!!notbase64\n", 0, "keys.txt:3: not standard base64"},
		{"short key", "# x\n" + short + "\n", 0, "keys.txt:2: key is 16 bytes, want 32"},
		{"url-safe base64", strings.NewReplacer("+", "-", "/", "_").Replace(base64.StdEncoding.EncodeToString([]byte(strings.Repeat("\xfb\xff", 16)))), 0, "keys.txt:1: not standard base64"},
		{"duplicate key", k1 + "\n# again\n" + k1 + "\n", 0, "keys.txt:3: same key as keys.txt:1"},
		{"trailing comment on key line", k1 + " # current\n", 0, "keys.txt:1: not standard base64"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := ParseKeyFile("keys.txt", []byte(tc.data))
			if tc.wantLen == 0 {
				wantErr(t, err, ErrConfig)
				if !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %q; want it to contain %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseKeyFile = %v", err)
			}
			if r.Len() != tc.wantLen {
				t.Fatalf("Len = %d; want %d", r.Len(), tc.wantLen)
			}
		})
	}
}

func TestParseKeyList(t *testing.T) {
	k1 := base64.StdEncoding.EncodeToString(testKey(1))
	k2 := base64.StdEncoding.EncodeToString(testKey(2))
	for _, tc := range []struct {
		name, in string
		wantLen  int
		wantErr  string
	}{
		{"one", k1, 1, ""},
		{"two with spaces", k1 + " , " + k2, 2, ""},
		{"empty", "", 0, "no key configured"},
		{"blank", "  ", 0, "no key configured"},
		{"empty element", k1 + ",," + k2, 0, "key #2: empty key"},
		{"bad second", k1 + ",xyz", 0, "key #2: not standard base64"},
		{"duplicate", k1 + "," + k1, 0, "key #2: same key as key #1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := ParseKeyList(tc.in)
			if tc.wantLen == 0 {
				wantErr(t, err, ErrConfig)
				if !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %q; want it to contain %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || r.Len() != tc.wantLen {
				t.Fatalf("ParseKeyList = %v, %v; want %d keys", r, err, tc.wantLen)
			}
		})
	}
}

func TestNewKeyRing(t *testing.T) {
	if _, err := NewKeyRing(); !errors.Is(err, ErrConfig) {
		t.Fatalf("NewKeyRing() = %v; want ErrConfig", err)
	}
	for _, n := range []int{0, 16, 24, 31, 33, 64} {
		if _, err := NewKeyRing(make([]byte, n)); !errors.Is(err, ErrConfig) {
			t.Errorf("NewKeyRing(%d bytes) = %v; want ErrConfig", n, err)
		}
	}
	k := testKey(9)
	r, err := NewKeyRing(k, testKey(1))
	if err != nil {
		t.Fatal(err)
	}
	k[0] ^= 0xff // the ring keeps no alias of the caller's key
	c := NewCodec(r)
	tok, err := c.Seal(testSubject(), 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewCodec(mustRing(t, testKey(9))).Open(tok); err != nil {
		t.Fatalf("the first key did not seal: %v", err)
	}
	fp := r.Fingerprints()
	// SHA-256 of 32 bytes 0x09, and of 32 bytes 0x01, truncated.
	if len(fp) != 2 || fp[0] != Fingerprint(testKey(9)) || fp[1] != Fingerprint(testKey(1)) || len(fp[0]) != 8 {
		t.Fatalf("Fingerprints = %v", fp)
	}
	if got := Fingerprint(make([]byte, 32)); got != "66687aad" {
		t.Fatalf("Fingerprint(zero key) = %s; want 66687aad", got)
	}
	fp[0] = "mutated"
	if r.Fingerprints()[0] == "mutated" {
		t.Fatal("Fingerprints returns the ring's own slice")
	}
	var nilRing *KeyRing
	if nilRing.Len() != 0 || nilRing.Fingerprints() != nil || nilRing.String() == "" {
		t.Fatal("nil ring methods")
	}
}

func mustRing(t testing.TB, keys ...[]byte) *KeyRing {
	t.Helper()
	r, err := NewKeyRing(keys...)
	if err != nil {
		t.Fatal(err)
	}
	return r
}
