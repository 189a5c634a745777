package capability

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/extauthz/extauthz/internal/testutil/testprog"
)

const plantedSecret = "sk-planted-profile-secret"

func testProfileSubject() ProfileSubject {
	return ProfileSubject{
		Profile:             "github",
		OutboundContainerID: "ctr-1",
		Subject:             map[string]string{"userId": "u-1", "sessionId": "s-1"},
		Vars:                map[string]string{"owner": "acme", "repo": "widgets.git"},
		Credentials:         map[string]string{"token": plantedSecret},
	}
}

func TestProfileRoundTrip(t *testing.T) {
	c, _ := newTestCodec(t, testKey(1))
	tok, err := c.SealProfile(testProfileSubject(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(tok, ProfilePrefix) || KindOf(tok) != KindProfile || KindOf(" \t"+tok) != KindProfile {
		t.Fatalf("token %.10s… has kind %v", tok, KindOf(tok))
	}
	got, err := c.OpenProfile(tok)
	if err != nil {
		t.Fatal(err)
	}
	want := ProfileClaims{ProfileSubject: testProfileSubject(), Version: 1, IssuedAt: t0.UnixMilli(), ExpiresAt: t0.Add(time.Hour).UnixMilli()}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("OpenProfile = %v; want %v", got, want)
	}
	if _, ok := ID(tok); !ok {
		t.Fatal("ID(profile capability) not ok")
	}
}

// TestProfileKindsNeverCross: the prefix is bound as additional data, so a
// ciphertext of one kind never opens as the other, whatever its prefix says.
func TestProfileKindsNeverCross(t *testing.T) {
	c, _ := newTestCodec(t, testKey(1))
	ptok, err := c.SealProfile(testProfileSubject(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	ktok, err := c.Seal(testSubject(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Open(Prefix + strings.TrimPrefix(ptok, ProfilePrefix)); !errors.Is(err, ErrInvalid) {
		t.Errorf("a profile ciphertext behind kka1.: Open = %v; want ErrInvalid", err)
	}
	if _, err := c.OpenProfile(ProfilePrefix + strings.TrimPrefix(ktok, Prefix)); !errors.Is(err, ErrInvalid) {
		t.Errorf("a kka1 ciphertext behind eac1.: OpenProfile = %v; want ErrInvalid", err)
	}
	if _, err := c.Open(ptok); !errors.Is(err, ErrInvalid) {
		t.Errorf("Open(profile capability) = %v; want ErrInvalid", err)
	}
	if _, err := c.OpenProfile(ktok); !errors.Is(err, ErrInvalid) {
		t.Errorf("OpenProfile(kka1 capability) = %v; want ErrInvalid", err)
	}
}

func TestProfileTimeAndKeys(t *testing.T) {
	c, clk := newTestCodec(t, testKey(1))
	tok, err := c.SealProfile(testProfileSubject(), time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	clk.t = t0.Add(time.Minute)
	if _, err := c.OpenProfile(tok); !errors.Is(err, ErrExpired) {
		t.Errorf("at expiry: %v; want ErrExpired", err)
	}
	clk.t = t0.Add(-ClockSkew - time.Millisecond)
	if _, err := c.OpenProfile(tok); !errors.Is(err, ErrInvalid) {
		t.Errorf("issued beyond the skew ahead: %v; want ErrInvalid", err)
	}
	other, _ := newTestCodec(t, testKey(2))
	if _, err := other.OpenProfile(tok); !errors.Is(err, ErrInvalid) {
		t.Errorf("another key: %v; want ErrInvalid", err)
	}
	if _, err := c.SealProfile(testProfileSubject(), MaxLifetime+time.Millisecond); !errors.Is(err, ErrInvalid) {
		t.Errorf("lifetime over the maximum: %v; want ErrInvalid", err)
	}
}

// TestProfileClaimsStrict: the claims decoder refuses anything but the
// documented shape.
func TestProfileClaimsStrict(t *testing.T) {
	good := `{"version":1,"profile":"p","outboundContainerId":"c","subject":{"userId":"u"},"vars":{},"credentials":{"k":"s"},"issuedAt":1,"expiresAt":2}`
	if _, err := decodeProfileClaims([]byte(good)); err != nil {
		t.Fatalf("good claims: %v", err)
	}
	for name, bad := range map[string]string{
		"unknown member":     strings.Replace(good, `"vars":{}`, `"vars":{},"x":1`, 1),
		"missing member":     strings.Replace(good, `"vars":{},`, ``, 1),
		"repeated member":    strings.Replace(good, `"vars":{}`, `"vars":{},"vars":{}`, 1),
		"repeated map name":  strings.Replace(good, `{"k":"s"}`, `{"k":"s","k":"t"}`, 1),
		"number in a map":    strings.Replace(good, `{"k":"s"}`, `{"k":1}`, 1),
		"null in a map":      strings.Replace(good, `{"k":"s"}`, `{"k":null}`, 1),
		"empty value":        strings.Replace(good, `{"k":"s"}`, `{"k":""}`, 1),
		"bad slot name":      strings.Replace(good, `{"k":"s"}`, `{"k k":"s"}`, 1),
		"no credential":      strings.Replace(good, `{"k":"s"}`, `{}`, 1),
		"version 2":          strings.Replace(good, `"version":1`, `"version":2`, 1),
		"version as string":  strings.Replace(good, `"version":1`, `"version":"1"`, 1),
		"case of a name":     strings.Replace(good, `"profile"`, `"Profile"`, 1),
		"trailing data":      good + `{}`,
		"expiry before":      strings.Replace(good, `"expiresAt":2`, `"expiresAt":1`, 1),
		"lifetime too long":  strings.Replace(good, `"expiresAt":2`, fmt.Sprintf(`"expiresAt":%d`, MaxLifetime.Milliseconds()+2), 1),
		"empty container":    strings.Replace(good, `"outboundContainerId":"c"`, `"outboundContainerId":""`, 1),
		"subject not object": strings.Replace(good, `"subject":{"userId":"u"}`, `"subject":["u"]`, 1),
	} {
		if _, err := decodeProfileClaims([]byte(bad)); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: decode = %v; want ErrInvalid", name, err)
		}
	}
	var many strings.Builder
	for i := range maxMapMembers + 1 {
		fmt.Fprintf(&many, `,"v%d":"x"`, i)
	}
	if _, err := decodeProfileClaims([]byte(strings.Replace(good, `"vars":{}`, `"vars":{`+many.String()[1:]+`}`, 1))); !errors.Is(err, ErrInvalid) {
		t.Errorf("too many vars: %v; want ErrInvalid", err)
	}
}

// TestProfileNeverRendersSecrets: no rendering of a profile subject or
// claims shows a credential, and no decode error quotes one.
func TestProfileNeverRendersSecrets(t *testing.T) {
	c, _ := newTestCodec(t, testKey(1))
	tok, _ := c.SealProfile(testProfileSubject(), time.Hour)
	claims, err := c.OpenProfile(tok)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range []any{claims, testProfileSubject(), &claims} {
		for _, verb := range []string{"%v", "%+v", "%#v", "%s"} {
			if out := fmt.Sprintf(verb, v); strings.Contains(out, plantedSecret) {
				t.Errorf("%s of %T shows the credential: %s", verb, v, out)
			}
		}
		if out, err := json.Marshal(v); err == nil || strings.Contains(string(out), plantedSecret) {
			t.Errorf("json.Marshal(%T) = %s, %v; want an error", v, out, err)
		}
	}
	bad := `{"version":1,"profile":"p","outboundContainerId":"c","subject":{},"vars":{},"credentials":{"` + plantedSecret + `":1},"issuedAt":1,"expiresAt":2}`
	if _, err := decodeProfileClaims([]byte(bad)); err == nil || strings.Contains(err.Error(), plantedSecret) {
		t.Errorf("decode error %v quotes a misplaced secret", err)
	}
}

// profileVector is one test vector of docs/profile-capability.md.
type profileVector struct {
	Name   string `json:"name"`
	Key    string `json:"key"`    // standard base64, 32 bytes
	IV     string `json:"iv"`     // standard base64, 16 bytes
	Claims string `json:"claims"` // the plaintext, exactly
	Token  string `json:"token"`
}

var updateVectors = flag.Bool("update-vectors", false, "rewrite testdata/profile_vectors.json")

const vectorsFile = "testdata/profile_vectors.json"

// TestProfileVectors: each vector's token opens, with its key, to its
// claims, and sealing its claims with its key and IV gives its token.
func TestProfileVectors(t *testing.T) {
	if *updateVectors {
		writeProfileVectors(t)
	}
	data, err := os.ReadFile(vectorsFile)
	if err != nil {
		t.Fatal(err)
	}
	var vs []profileVector
	if err := json.Unmarshal(data, &vs); err != nil {
		t.Fatal(err)
	}
	if len(vs) < 3 {
		t.Fatalf("%d vectors", len(vs))
	}
	for _, v := range vs {
		t.Run(v.Name, func(t *testing.T) {
			key, _ := base64.StdEncoding.DecodeString(v.Key)
			iv, _ := base64.StdEncoding.DecodeString(v.IV)
			ring, err := NewKeyRing(key)
			if err != nil {
				t.Fatal(err)
			}
			var ivb [ivSize]byte
			copy(ivb[:], iv)
			tok, err := sealToken(ProfilePrefix, ring.aeads[0].Seal(nil, ivb[:], []byte(v.Claims), profileAAD), &ivb)
			if err != nil || tok != v.Token {
				t.Fatalf("sealing the vector's claims = %q, %v; want its token", tok, err)
			}
			want, err := decodeProfileClaims([]byte(v.Claims))
			if err != nil {
				t.Fatal(err)
			}
			c := NewCodec(ring, WithClock(func() time.Time { return time.UnixMilli(want.IssuedAt) }))
			got, err := c.OpenProfile(v.Token)
			if err != nil || !reflect.DeepEqual(got, want) {
				t.Fatalf("OpenProfile(vector) = %v, %v; want %v", got, err, want)
			}
		})
	}
}

func writeProfileVectors(t *testing.T) {
	iat := int64(1_800_000_000_000)
	mk := func(name string, keyByte, ivByte byte, s ProfileSubject, ttl time.Duration) profileVector {
		key, iv := testKey(keyByte), [ivSize]byte{}
		for i := range iv {
			iv[i] = ivByte + byte(i)
		}
		ring, err := NewKeyRing(key)
		if err != nil {
			t.Fatal(err)
		}
		cl := ProfileClaims{ProfileSubject: s, Version: 1, IssuedAt: iat, ExpiresAt: iat + ttl.Milliseconds()}
		plain, err := cl.marshal()
		if err != nil {
			t.Fatal(err)
		}
		tok, err := sealToken(ProfilePrefix, ring.aeads[0].Seal(nil, iv[:], plain, profileAAD), &iv)
		if err != nil {
			t.Fatal(err)
		}
		return profileVector{Name: name, Key: base64.StdEncoding.EncodeToString(key), IV: base64.StdEncoding.EncodeToString(iv[:]), Claims: string(plain), Token: tok}
	}
	vs := []profileVector{
		mk("openai", 0x11, 0x20, ProfileSubject{Profile: "openai", OutboundContainerID: "sandbox-7", Subject: map[string]string{"userId": "u-42"},
			Vars: map[string]string{}, Credentials: map[string]string{"api-key": "sk-test-0000"}}, time.Hour),
		mk("github", 0x22, 0x40, ProfileSubject{Profile: "github", OutboundContainerID: "ctr-1", Subject: map[string]string{"tenantId": "t-9", "userId": "u-1"},
			Vars: map[string]string{"owner": "acme", "repo": "widgets.git"}, Credentials: map[string]string{"token": "ghs_test"}}, 4*time.Hour),
		mk("unicode", 0x33, 0x60, ProfileSubject{Profile: "anthropic", OutboundContainerID: "ctr-ü-😀", Subject: map[string]string{"userId": "ü \"q\" \\ \u2028"},
			Vars: map[string]string{}, Credentials: map[string]string{"api-key": "sk-ant-ü", "backup": "x"}}, time.Minute),
	}
	data, err := json.MarshalIndent(vs, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(vectorsFile, append(data, '\n'), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestProfileInteropNode: Node's crypto seals what Go opens, and opens what
// Go seals, following docs/profile-capability.md.
func TestProfileInteropNode(t *testing.T) {
	run := testprog.NodeProfileCapability(t)
	key := testKey(7)
	c, _ := newTestCodec(t, key)
	want := ProfileClaims{ProfileSubject: testProfileSubject(), Version: 1, IssuedAt: t0.UnixMilli(), ExpiresAt: t0.Add(time.Hour).UnixMilli()}
	plain, err := want.marshal()
	if err != nil {
		t.Fatal(err)
	}
	got, err := c.OpenProfile(run("seal", key, string(plain)))
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("Go opening Node's token = %v, %v; want %v", got, err, want)
	}
	tok, err := c.SealProfile(testProfileSubject(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	var fromNode, wantJSON map[string]any
	if err := json.Unmarshal([]byte(run("open", key, tok)), &fromNode); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(plain, &wantJSON); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(fromNode, wantJSON) {
		t.Fatalf("Node opened %v; want %v", fromNode, wantJSON)
	}
	// Node opens every test vector to its claims.
	data, err := os.ReadFile(vectorsFile)
	if err != nil {
		t.Fatal(err)
	}
	var vs []profileVector
	if err := json.Unmarshal(data, &vs); err != nil {
		t.Fatal(err)
	}
	for _, v := range vs {
		k, _ := base64.StdEncoding.DecodeString(v.Key)
		var got, want map[string]any
		if err := json.Unmarshal([]byte(run("open", k, v.Token)), &got); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal([]byte(v.Claims), &want); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("vector %s: Node opened %v; want %v", v.Name, got, want)
		}
	}
	// Node without the additional data cannot open it: the kinds are bound.
	if out := runExpectingFailure(t, key, tok); out == "" {
		t.Fatal("Node opened a profile capability as kka1")
	}
}

// runExpectingFailure opens tok with the kka1 script (no additional data)
// and returns a non-empty string when that fails.
func runExpectingFailure(t *testing.T, key []byte, tok string) (failed string) {
	t.Helper()
	defer func() {
		if r := recover(); r != nil {
			failed = fmt.Sprint(r)
		}
	}()
	ft := &failingTB{TB: t}
	testprog.NodeKKA1(ft)("open", key, Prefix+strings.TrimPrefix(tok, ProfilePrefix))
	return ft.msg
}

// failingTB records Fatalf instead of failing the test.
type failingTB struct {
	testing.TB
	msg string
}

func (f *failingTB) Fatalf(format string, args ...any) { f.msg = fmt.Sprintf(format, args...) }
func (f *failingTB) Helper()                           {}

// TestValidMapKeyMatchesPattern holds the loop of validMapKey to the rule
// it implements, written as the regexp it replaced: every string of one
// and two bytes, and lengths around the limit.
func TestValidMapKeyMatchesPattern(t *testing.T) {
	rule := regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_-]{0,62}$`)
	check := func(s string) {
		if got, want := validMapKey(s), rule.MatchString(s); got != want {
			t.Fatalf("validMapKey(%q) = %v; the rule says %v", s, got, want)
		}
	}
	check("")
	for a := range 256 {
		check(string([]byte{byte(a)}))
		for b := range 256 {
			check(string([]byte{byte(a), byte(b)}))
		}
	}
	for n := 60; n <= 66; n++ {
		check("a" + strings.Repeat("b", n-1))
		check("a" + strings.Repeat("-", n-1))
		check("1" + strings.Repeat("b", n-1))
	}
}
