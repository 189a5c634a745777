package capability

import (
	"encoding/base64"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestRoundTrip(t *testing.T) {
	c, _ := newTestCodec(t, testKey(1))
	for _, tc := range []struct {
		name string
		mod  func(*Subject)
	}{
		{"with provider token", func(*Subject) {}},
		{"without provider token", func(s *Subject) { s.ProviderToken = "" }},
		{"unicode", func(s *Subject) { s.UserID = "ü-用户-😀 \"quoted\" <&>" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := testSubject()
			tc.mod(&s)
			tok, err := c.Seal(s, 0)
			if err != nil {
				t.Fatalf("Seal: %v", err)
			}
			if !strings.HasPrefix(tok, Prefix) || strings.Count(tok, ":") != 2 {
				t.Fatalf("Seal = %q; not kka1 shaped", tok)
			}
			got, err := c.Open(tok)
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			want := Claims{Subject: s, Version: 1, Purpose: Purpose,
				IssuedAt: t0.UnixMilli(), ExpiresAt: t0.Add(MaxLifetime).UnixMilli()}
			if got != want {
				t.Fatalf("Open = %+v; want %+v", got, want)
			}
			// The secrets survive the round trip (compared directly, never printed).
			if got.UserToken != s.UserToken || got.ProviderToken != s.ProviderToken {
				t.Fatal("tokens changed in the round trip")
			}
		})
	}
}

func TestOpenTrimsWhitespace(t *testing.T) {
	c, _ := newTestCodec(t, testKey(1))
	tok, err := c.Seal(testSubject(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Open(" \t" + tok + "\r\n"); err != nil {
		t.Fatalf("Open(padded) = %v", err)
	}
}

func TestSealTTL(t *testing.T) {
	c, _ := newTestCodec(t, testKey(1))
	for _, tc := range []struct {
		ttl  time.Duration
		want time.Duration // 0: error
	}{
		{0, MaxLifetime},
		{time.Millisecond, time.Millisecond},
		{time.Hour, time.Hour},
		{MaxLifetime, MaxLifetime},
		{MaxLifetime + time.Millisecond, 0},
		{time.Millisecond - 1, 0},
		{-time.Hour, 0},
	} {
		t.Run(tc.ttl.String(), func(t *testing.T) {
			tok, err := c.Seal(testSubject(), tc.ttl)
			if tc.want == 0 {
				wantErr(t, err, ErrInvalid)
				return
			}
			if err != nil {
				t.Fatalf("Seal(%v) = %v", tc.ttl, err)
			}
			cl, err := c.Open(tok)
			if err != nil {
				t.Fatal(err)
			}
			if got := cl.ExpiryTime().Sub(cl.IssuedTime()); got != tc.want {
				t.Fatalf("lifetime = %v; want %v", got, tc.want)
			}
		})
	}
}

func TestSealRejectsBadSubject(t *testing.T) {
	c, _ := newTestCodec(t, testKey(1))
	for _, tc := range []struct {
		name string
		mod  func(*Subject)
	}{
		{"empty userId", func(s *Subject) { s.UserID = "" }},
		{"empty cloudAgentSessionId", func(s *Subject) { s.CloudAgentSessionID = "" }},
		{"empty kiloSessionId", func(s *Subject) { s.KiloSessionID = "" }},
		{"empty outboundContainerId", func(s *Subject) { s.OutboundContainerID = "" }},
		{"empty userToken", func(s *Subject) { s.UserToken = "" }},
		{"invalid UTF-8 userToken", func(s *Subject) { s.UserToken = "a\xffb" }},
		{"invalid UTF-8 providerToken", func(s *Subject) { s.ProviderToken = "a\xffb" }},
		{"relative backend target", func(s *Subject) { s.Targets.BackendBaseURL = "/api" }},
		{"empty provider target", func(s *Subject) { s.Targets.ProviderBaseURL = "" }},
		{"hostless ingest target", func(s *Subject) { s.Targets.SessionIngestBaseURL = "mailto:a@b" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := testSubject()
			tc.mod(&s)
			_, err := c.Seal(s, 0)
			wantErr(t, err, ErrInvalid)
		})
	}
}

func TestNoKey(t *testing.T) {
	c := NewCodec(nil)
	_, err := c.Seal(testSubject(), 0)
	wantErr(t, err, ErrConfig)
	_, err = c.Open("kka1.x")
	wantErr(t, err, ErrConfig)
	if c.KeyRing() != nil {
		t.Fatal("KeyRing() != nil")
	}
}

// tamper flips one bit of byte i of the decoded part p (0 iv, 1 tag, 2 ct).
func tamper(tok string, p, i int) string {
	parts := strings.Split(strings.TrimPrefix(tok, Prefix), ":")
	b, _ := base64.StdEncoding.DecodeString(parts[p])
	b[i] ^= 0x01
	parts[p] = base64.StdEncoding.EncodeToString(b)
	return Prefix + strings.Join(parts, ":")
}

func TestTamper(t *testing.T) {
	c, _ := newTestCodec(t, testKey(1))
	tok, err := c.Seal(testSubject(), 0)
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(strings.TrimPrefix(tok, Prefix), ":")
	for p, name := range []string{"iv", "tag", "ciphertext"} {
		b, _ := base64.StdEncoding.DecodeString(parts[p])
		t.Run(name, func(t *testing.T) {
			for i := range b {
				_, err := c.Open(tamper(tok, p, i))
				if !errors.Is(err, ErrInvalid) {
					t.Fatalf("%s byte %d flipped: err = %v; want ErrInvalid", name, i, err)
				}
			}
		})
	}
}

func TestWrongKey(t *testing.T) {
	a, _ := newTestCodec(t, testKey(1))
	b, _ := newTestCodec(t, testKey(2))
	tok, err := a.Seal(testSubject(), 0)
	if err != nil {
		t.Fatal(err)
	}
	_, err = b.Open(tok)
	wantErr(t, err, ErrInvalid)
}

func TestRotation(t *testing.T) {
	old, _ := newTestCodec(t, testKey(1))
	oldTok, err := old.Seal(testSubject(), 0)
	if err != nil {
		t.Fatal(err)
	}
	// Rotate: the new key goes first and seals; the old one still opens.
	rotated, _ := newTestCodec(t, testKey(2), testKey(1))
	if _, err := rotated.Open(oldTok); err != nil {
		t.Fatalf("old token after rotation: %v", err)
	}
	newTok, err := rotated.Seal(testSubject(), 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := old.Open(newTok); !errors.Is(err, ErrInvalid) {
		t.Fatalf("new token opened with the old key only: err = %v; want ErrInvalid", err)
	}
	fresh, _ := newTestCodec(t, testKey(2))
	if _, err := fresh.Open(newTok); err != nil {
		t.Fatalf("new token with the new key: %v", err)
	}
	// Retire the old key with SetKeyRing.
	r, _ := NewKeyRing(testKey(2))
	rotated.SetKeyRing(r)
	if _, err := rotated.Open(oldTok); !errors.Is(err, ErrInvalid) {
		t.Fatalf("old token after retiring its key: err = %v; want ErrInvalid", err)
	}
}

func TestSetKeyRingConcurrent(t *testing.T) {
	c, _ := newTestCodec(t, testKey(1))
	tok, _ := c.Seal(testSubject(), 0)
	r1, _ := NewKeyRing(testKey(1), testKey(2))
	r2, _ := NewKeyRing(testKey(2), testKey(1))
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range 200 {
				if i == 0 && j%2 == 0 {
					c.SetKeyRing(r1)
				} else if i == 0 {
					c.SetKeyRing(r2)
				}
				if _, err := c.Open(tok); err != nil {
					t.Errorf("Open during swap: %v", err)
					return
				}
			}
		}()
	}
	wg.Wait()
}

func TestClock(t *testing.T) {
	c, clk := newTestCodec(t, testKey(1))
	tok, err := c.Seal(testSubject(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	exp := t0.Add(time.Hour)
	for _, tc := range []struct {
		name string
		now  time.Time
		want error
	}{
		{"at issue", t0, nil},
		{"1ms before expiry", exp.Add(-time.Millisecond), nil},
		{"exactly at expiresAt", exp, ErrExpired},
		{"after expiry", exp.Add(time.Hour), ErrExpired},
		// The clock lags the issuer: issuedAt is in the future.
		{"issuedAt 59s ahead", t0.Add(-59 * time.Second), nil},
		{"issuedAt 60s ahead", t0.Add(-60 * time.Second), nil},
		{"issuedAt 60.001s ahead", t0.Add(-60*time.Second - time.Millisecond), ErrInvalid},
		{"issuedAt 61s ahead", t0.Add(-61 * time.Second), ErrInvalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clk.t = tc.now
			_, err := c.Open(tok)
			if tc.want == nil {
				if err != nil {
					t.Fatalf("Open = %v; want success", err)
				}
				return
			}
			wantErr(t, err, tc.want)
		})
	}
}

func TestOpenFormat(t *testing.T) {
	key := testKey(1)
	c, _ := newTestCodec(t, key)
	good, err := c.Seal(testSubject(), 0)
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(strings.TrimPrefix(good, Prefix), ":")
	iv, tag, ct := parts[0], parts[1], parts[2]
	ivRaw, _ := base64.StdEncoding.DecodeString(iv)
	urlSafe := func(s string) string { return strings.NewReplacer("+", "-", "/", "_").Replace(s) }
	// A valid token whose parts contain '+' or '/' somewhere, for the URL-safe case.
	var plusSlash string
	for range 100 {
		tok, _ := c.Seal(testSubject(), 0)
		if b := strings.TrimPrefix(tok, Prefix); strings.ContainsAny(b, "+/") {
			plusSlash = tok
			break
		}
	}
	big := sealRaw(t, key, []byte(claimsJSON()+strings.Repeat(" ", MaxTokenLen)))
	for _, tc := range []struct{ name, tok string }{
		{"empty", ""},
		{"whitespace", "  "},
		{"wrong prefix", "kka2." + iv + ":" + tag + ":" + ct},
		{"upper-case prefix", "KKA1." + iv + ":" + tag + ":" + ct},
		{"no prefix", iv + ":" + tag + ":" + ct},
		{"bearer kept", "Bearer " + good},
		{"two parts", Prefix + iv + ":" + tag + ct},
		{"four parts", Prefix + iv + ":" + tag + ":" + ct + ":" + ct},
		{"empty iv", Prefix + ":" + tag + ":" + ct},
		{"empty tag", Prefix + iv + "::" + ct},
		{"empty ciphertext", Prefix + iv + ":" + tag + ":"},
		{"kka1.AA:AA:AA", "kka1.AA:AA:AA"},
		{"iv missing padding", Prefix + strings.TrimRight(iv, "=") + ":" + tag + ":" + ct},
		{"tag missing padding", Prefix + iv + ":" + strings.TrimRight(tag, "=") + ":" + ct},
		{"url-safe alphabet", urlSafe(plusSlash)},
		{"non-zero padding bits", Prefix + iv[:len(iv)-3] + "B==" + ":" + tag + ":" + ct},
		{"line break in ciphertext", Prefix + iv + ":" + tag + ":" + ct[:4] + "\n" + ct[4:]},
		{"space in ciphertext", Prefix + iv + ":" + tag + ":" + ct[:4] + " " + ct[4:]},
		{"12-byte iv", Prefix + base64.StdEncoding.EncodeToString(ivRaw[:12]) + ":" + tag + ":" + ct},
		{"15-byte tag", Prefix + iv + ":" + base64.StdEncoding.EncodeToString(ivRaw[:15]) + ":" + ct},
		{"17-byte iv", Prefix + base64.StdEncoding.EncodeToString(append(ivRaw, 0)) + ":" + tag + ":" + ct},
		{"oversized", big},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := c.Open(tc.tok)
			wantErr(t, err, ErrInvalid)
		})
	}
	if plusSlash == "" {
		t.Fatal("no token with '+' or '/' in 100 tries")
	}
	t.Run("oversized is refused before decrypting", func(t *testing.T) {
		_, err := c.Open(big)
		if !strings.Contains(err.Error(), "longer than") {
			t.Fatalf("err = %v; want the length check", err)
		}
	})
}

func TestMaxTokenLenBoundary(t *testing.T) {
	key := testKey(1)
	c, _ := newTestCodec(t, key)
	// A token is 55 + 4*ceil(len(plaintext)/3) bytes, so the longest one
	// within the limit is 65535 bytes (plaintext 49110 bytes) and the next
	// is 65539. Pad the claims with trailing JSON whitespace to get there.
	base := claimsJSON()
	tok := sealRaw(t, key, []byte(base+strings.Repeat(" ", 49110-len(base))))
	if len(tok) != MaxTokenLen-1 {
		t.Fatalf("len = %d; want %d", len(tok), MaxTokenLen-1)
	}
	if _, err := c.Open(tok); err != nil {
		t.Fatalf("token of %d bytes: %v", len(tok), err)
	}
	if _, err := c.Open("\n " + tok + " \n"); err != nil {
		t.Fatalf("surrounding whitespace does not count towards the limit: %v", err)
	}
	tok = sealRaw(t, key, []byte(base+strings.Repeat(" ", 49111-len(base))))
	if len(tok) != MaxTokenLen+3 {
		t.Fatalf("len = %d; want %d", len(tok), MaxTokenLen+3)
	}
	_, err := c.Open(tok)
	wantErr(t, err, ErrInvalid)
}

// TestDefaultLifetime: a capability lives 4 h unless a shorter lifetime is
// asked for (docs/decisions.md, section 3), and Seal(s, 0) asks for none.
func TestDefaultLifetime(t *testing.T) {
	if DefaultLifetime != 4*time.Hour || DefaultLifetime > MaxLifetime {
		t.Fatalf("DefaultLifetime = %v; want 4h, within MaxLifetime %v", DefaultLifetime, MaxLifetime)
	}
	c, _ := newTestCodec(t, testKey(1))
	tok, err := c.Seal(testSubject(), 0)
	if err != nil {
		t.Fatal(err)
	}
	cl, err := c.Open(tok)
	if err != nil {
		t.Fatal(err)
	}
	if got := cl.ExpiryTime().Sub(cl.IssuedTime()); got != DefaultLifetime {
		t.Fatalf("Seal(s, 0) lives %v; want %v", got, DefaultLifetime)
	}
}
