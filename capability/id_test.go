package capability

import (
	"encoding/base64"
	"strings"
	"testing"
	"time"
)

// idOracle is ID written from docs/decisions.md, section 1, with the
// standard library: after the prefix (kka1., or eac1. for a profile
// capability, docs/profile-capability.md), a non-empty iv, then the tag,
// which must be 16 bytes of base64 that re-encodes to itself, then ':' and
// anything (ID does not look at the ciphertext).
func idOracle(tok string) (id [IDSize]byte, ok bool) {
	if t := strings.TrimLeft(tok, " \t\r\n"); strings.HasPrefix(t, "eac1.") {
		tok = "kka1." + strings.TrimPrefix(t, "eac1.") // the same layout behind another prefix
	}
	tok = strings.TrimSpace(tok)
	if len(tok) > MaxTokenLen || !strings.HasPrefix(tok, "kka1.") {
		return id, false
	}
	parts := strings.SplitN(strings.TrimPrefix(tok, "kka1."), ":", 3)
	if len(parts) != 3 || parts[0] == "" || parts[1] == "" {
		return id, false
	}
	b, err := base64.StdEncoding.DecodeString(parts[1])
	if err != nil || len(b) != IDSize || base64.StdEncoding.EncodeToString(b) != parts[1] {
		return id, false
	}
	return [IDSize]byte(b), true
}

// withPart returns tok with its part i (0: iv, 1: tag, 2: ciphertext)
// replaced by p.
func withPart(tok string, i int, p string) string {
	parts := strings.Split(strings.TrimPrefix(tok, Prefix), ":")
	parts[i] = p
	return Prefix + strings.Join(parts, ":")
}

func TestID(t *testing.T) {
	c, _ := newTestCodec(t, testKey(1))
	tok, err := c.Seal(testSubject(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	want, ok := idOracle(tok)
	if !ok {
		t.Fatalf("the oracle refuses a sealed capability")
	}
	for _, tc := range []struct {
		name, tok string
		ok        bool
	}{
		{"sealed", tok, true},
		{"surrounding white space", " \t" + tok + "\r\n", true},
		{"no prefix", strings.TrimPrefix(tok, Prefix), false},
		{"prefix in upper case", "KKA1." + strings.TrimPrefix(tok, Prefix), false},
		{"two parts", tok[:strings.LastIndexByte(tok, ':')], false},
		{"empty iv", Prefix + tok[strings.IndexByte(tok, ':'):], false},
		{"empty tag", withPart(tok, 1, ""), false},
		// Open refuses these; ID does not read the ciphertext.
		{"four parts", tok + ":AAAA", true},
		{"empty ciphertext", tok[:strings.LastIndexByte(tok, ':')+1], true},
		{"iv without padding", strings.Replace(tok, "==:", ":", 1), true}, // ID does not decode the iv
		{"tag without padding", withPart(tok, 1, strings.TrimRight(strings.Split(tok, ":")[1], "=")), false},
		{"tag of 15 bytes", Prefix + "AAAAAAAAAAAAAAAAAAAAAA==:AAAAAAAAAAAAAAAAAAAA:AAAA", false},
		{"tag with stray bits", Prefix + "AAAAAAAAAAAAAAAAAAAAAA==:AAAAAAAAAAAAAAAAAAAAAB==:AAAA", false},
		{"too long", tok + strings.Repeat("A", MaxTokenLen), false},
		{"a bearer header", "Bearer " + tok, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id, ok := ID(tc.tok)
			if ok != tc.ok {
				t.Fatalf("ID ok = %v; want %v", ok, tc.ok)
			}
			if ok && id != want {
				t.Fatalf("ID = %x; want the tag %x", id, want)
			}
			if _, oracleOK := idOracle(tc.tok); oracleOK != tc.ok {
				t.Fatalf("the oracle says %v; the case says %v", oracleOK, tc.ok)
			}
		})
	}
}

// TestIDOfEveryOpenedCapability: a capability that opens has an id, and two
// capabilities of one subject have different ids.
func TestIDOfEveryOpenedCapability(t *testing.T) {
	c, _ := newTestCodec(t, testKey(1))
	seen := map[[IDSize]byte]bool{}
	for _, s := range interopSubjects() {
		for range 2 {
			tok, err := c.Seal(s, time.Hour)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := c.Open(tok); err != nil {
				t.Fatal(err)
			}
			id, ok := ID(tok)
			if !ok || seen[id] {
				t.Fatalf("ID of an opened capability = %x, %v (seen before: %v)", id, ok, seen[id])
			}
			seen[id] = true
		}
	}
}

// FuzzID holds ID to idOracle, and to parseToken: whatever parseToken
// accepts has an id, the tag it hands to the cipher.
func FuzzID(f *testing.F) {
	c, _ := newTestCodec(f, testKey(1))
	tok, err := c.Seal(testSubject(), time.Hour)
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range []string{tok, " " + tok, tok + ":", "kka1.::", "kka1.A:AAAAAAAAAAAAAAAAAAAAAA==:A",
		"kka1.AAAAAAAAAAAAAAAAAAAAAA==:AAAAAAAAAAAAAAAAAAAAAA==:AAAA", "kka1.AA:AAAAAAAAAAAAAAAAAAAAAA\n==:AA",
		"eac1.AAAAAAAAAAAAAAAAAAAAAA==:AAAAAAAAAAAAAAAAAAAAAA==:AAAA", " \teac1.A:AAAAAAAAAAAAAAAAAAAAAA==:A\v"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, tok string) {
		id, ok := ID(tok)
		want, wantOK := idOracle(tok)
		if ok != wantOK || id != want {
			t.Fatalf("ID(%q) = %x, %v; oracle %x, %v", tok, id, ok, want, wantOK)
		}
		var iv [ivSize]byte
		sealed, err := parseToken(&iv, nil, tok, Prefix)
		if err == nil && (!ok || string(id[:]) != string(sealed[len(sealed)-tagSize:])) {
			t.Fatalf("parseToken accepts %q with tag %x; ID = %x, %v", tok, sealed[len(sealed)-tagSize:], id, ok)
		}
	})
}

// TestIDOfProfileCapability: an eac1 capability's id is its tag, read as
// kka1's; the same parts behind the other prefix have the same id (ID does
// not authenticate), and capabilities of the two kinds that open have
// different ids.
func TestIDOfProfileCapability(t *testing.T) {
	c, _ := newTestCodec(t, testKey(1))
	seen := map[[IDSize]byte]bool{}
	for range 20 {
		tok, err := c.SealProfile(testProfileSubject(), time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		want, ok := idOracle(tok)
		id, idOK := ID(tok)
		if !ok || !idOK || id != want {
			t.Fatalf("ID(eac1) = %x, %v; want the tag %x, %v", id, idOK, want, ok)
		}
		if other, _ := ID(Prefix + strings.TrimPrefix(tok, ProfilePrefix)); other != id {
			t.Fatalf("the parts behind kka1. have id %x; want %x", other, id)
		}
		k, err := c.Seal(testSubject(), time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		kid, _ := ID(k)
		if seen[id] || seen[kid] || id == kid {
			t.Fatalf("two opened capabilities share an id")
		}
		seen[id], seen[kid] = true, true
	}
	for _, bad := range []string{"EAC1.AAAAAAAAAAAAAAAAAAAAAA==:AAAAAAAAAAAAAAAAAAAAAA==:AAAA", "eac1.::", "eac1:AAAAAAAAAAAAAAAAAAAAAA==:AAAAAAAAAAAAAAAAAAAAAA==:AAAA"} {
		if _, ok := ID(bad); ok {
			t.Errorf("ID(%q) ok; want refused", bad)
		}
	}
}
