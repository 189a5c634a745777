package capability

import (
	"reflect"
	"strings"
	"testing"
	"time"
	"unsafe"
)

// newCachingCodec is newTestCodec with a cache of size entries.
func newCachingCodec(t testing.TB, size int, keys ...[]byte) (*Codec, *clock) {
	t.Helper()
	r, err := NewKeyRing(keys...)
	if err != nil {
		t.Fatalf("NewKeyRing: %v", err)
	}
	clk := &clock{t: t0}
	return NewCodec(r, WithClock(clk.now), WithCache(size)), clk
}

// openTwice opens tok twice, the second time from the cache, and fails
// unless both agree with an uncached codec's answer.
func openTwice(t *testing.T, c *Codec, tok string) Claims {
	t.Helper()
	first, err := c.Open(tok)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	before := c.CacheStats()
	second, err := c.Open(tok)
	if err != nil {
		t.Fatalf("Open (cached): %v", err)
	}
	if !reflect.DeepEqual(first, second) {
		t.Fatalf("cached claims differ:\n%+v\n%+v", first, second)
	}
	if got := c.CacheStats(); got.Hits != before.Hits+1 {
		t.Fatalf("stats %+v after a second Open; want one more hit than %+v", got, before)
	}
	return first
}

func TestCacheServesSameClaims(t *testing.T) {
	c, _ := newCachingCodec(t, 10, testKey(1))
	tok, err := c.Seal(testSubject(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	got := openTwice(t, c, tok)
	// Mutating what Open returned must not change the cache.
	got.UserToken = "changed"
	if again, _ := c.Open(tok); again.UserToken != testSubject().UserToken {
		t.Errorf("cached UserToken = %q after a caller changed its copy", again.UserToken)
	}
	if s := c.CacheStats(); s.Entries != 1 || s.Misses != 1 {
		t.Errorf("stats = %+v; want 1 entry, 1 miss", s)
	}
}

// TestCacheExpiry: an entry is refused the moment the clock reaches
// expiresAt, straight after being cached, and is never served before
// issuedAt minus the skew if the clock goes back.
func TestCacheExpiry(t *testing.T) {
	c, clk := newCachingCodec(t, 10, testKey(1))
	tok, err := c.Seal(testSubject(), time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	openTwice(t, c, tok)
	clk.t = t0.Add(time.Minute - time.Millisecond)
	if _, err := c.Open(tok); err != nil {
		t.Fatalf("Open 1ms before expiry: %v", err)
	}
	clk.t = t0.Add(time.Minute)
	_, err = c.Open(tok)
	wantErr(t, err, ErrExpired)
	clk.t = t0.Add(-ClockSkew - time.Millisecond)
	_, err = c.Open(tok)
	wantErr(t, err, ErrInvalid)
	clk.t = t0.Add(-ClockSkew)
	if _, err := c.Open(tok); err != nil {
		t.Fatalf("Open at issuedAt-skew: %v", err)
	}
}

// TestCacheRotation: once the key that sealed a cached capability is gone
// from the ring, the capability is refused at once; a ring that keeps the
// key opens it again (the cache was emptied, so from a fresh decrypt).
func TestCacheRotation(t *testing.T) {
	c, _ := newCachingCodec(t, 10, testKey(1))
	tok, err := c.Seal(testSubject(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	openTwice(t, c, tok)
	rotated, _ := NewKeyRing(testKey(2))
	c.SetKeyRing(rotated)
	if s := c.CacheStats(); s.Entries != 0 {
		t.Errorf("entries after SetKeyRing = %d; want 0", s.Entries)
	}
	_, err = c.Open(tok)
	wantErr(t, err, ErrInvalid)
	both, _ := NewKeyRing(testKey(2), testKey(1))
	c.SetKeyRing(both)
	openTwice(t, c, tok)
}

// TestCachePutAfterRotation: claims opened with a ring that was replaced
// while they were being opened are not stored.
func TestCachePutAfterRotation(t *testing.T) {
	c, _ := newCachingCodec(t, 10, testKey(1))
	old := c.KeyRing()
	rotated, _ := NewKeyRing(testKey(2))
	c.SetKeyRing(rotated)
	c.cache.put(old, "kka1.x", &Claims{})
	if _, ok := c.cache.get(rotated, "kka1.x"); ok {
		t.Fatal("an entry opened with the old ring was stored after rotation")
	}
}

// TestCacheTampered: a capability that differs from a cached one in any
// byte is another key and is decrypted, and refused, as without a cache.
func TestCacheTampered(t *testing.T) {
	c, _ := newCachingCodec(t, 10, testKey(1))
	tok, err := c.Seal(testSubject(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	openTwice(t, c, tok)
	for _, bad := range []string{tamper(tok, 2, 0), tamper(tok, 1, 3), tamper(tok, 0, 15), tok + "=", strings.Replace(tok, "kka1.", "kka1.A", 1)} {
		if bad == tok {
			t.Fatal("tampering left the capability as it was")
		}
		_, err := c.Open(bad)
		wantErr(t, err, ErrInvalid)
	}
}

// TestCacheBounded: the cache never holds more than its size and evicts the
// oldest entry first; an evicted capability still opens.
func TestCacheBounded(t *testing.T) {
	c, _ := newCachingCodec(t, 3, testKey(1))
	var toks []string
	for range 5 {
		tok, err := c.Seal(testSubject(), time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		toks = append(toks, tok)
		if _, err := c.Open(tok); err != nil {
			t.Fatal(err)
		}
	}
	if s := c.CacheStats(); s.Entries != 3 || s.Evictions != 2 || s.Misses != 5 {
		t.Errorf("stats = %+v; want 3 entries, 2 evictions, 5 misses", s)
	}
	if _, err := c.Open(toks[0]); err != nil {
		t.Fatalf("evicted capability: %v", err)
	}
	if s := c.CacheStats(); s.Hits != 0 || s.Misses != 6 {
		t.Errorf("stats = %+v; want the evicted capability to miss", s)
	}
	openTwice(t, c, toks[4])
}

// TestCacheDisabled: size 0 keeps nothing; a long capability is never kept.
func TestCacheDisabled(t *testing.T) {
	c, _ := newCachingCodec(t, 0, testKey(1))
	tok, _ := c.Seal(testSubject(), time.Hour)
	for range 2 {
		if _, err := c.Open(tok); err != nil {
			t.Fatal(err)
		}
	}
	if s := c.CacheStats(); s != (CacheStats{}) {
		t.Errorf("stats without a cache = %+v", s)
	}
	c, _ = newCachingCodec(t, 10, testKey(1))
	s := testSubject()
	s.UserToken = strings.Repeat("u", MaxCachedTokenLen)
	long, err := c.Seal(s, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if _, err := c.Open(long); err != nil {
			t.Fatal(err)
		}
	}
	if st := c.CacheStats(); st.Entries != 0 {
		t.Errorf("a %d-byte capability was cached", len(long))
	}
}

// BenchmarkOpenCached is BenchmarkOpen on a capability opened before.
func BenchmarkOpenCached(b *testing.B) {
	c, _ := newCachingCodec(b, 100, testKey(1))
	tok, err := c.Seal(testSubject(), time.Hour)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Open(tok); err != nil {
			b.Fatal(err)
		}
	}
}

// TestCacheCopiesToken: the cache keeps its own copy of a capability, not
// the memory of the request it arrived in.
func TestCacheCopiesToken(t *testing.T) {
	c, _ := newCachingCodec(t, 10, testKey(1))
	tok, err := c.Seal(testSubject(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	request := strings.Repeat("x", 1<<16) + tok
	inRequest := request[1<<16:]
	openTwice(t, c, inRequest)
	c.cache.mu.RLock()
	defer c.cache.mu.RUnlock()
	if len(c.cache.slots) != 1 || c.cache.slots[0].token != tok {
		t.Fatalf("cache holds %d entries; want the one capability", len(c.cache.slots))
	}
	if unsafe.StringData(c.cache.slots[0].token) == unsafe.StringData(inRequest) {
		t.Error("the cache keeps the request's memory alive")
	}
}

// TestProfileCacheServesSameClaims: a profile capability opened again comes
// from its own cache, with the same claims; its time window is checked on
// every hit; a key ring change empties it; and the two kinds never share
// an entry.
func TestProfileCacheServesSameClaims(t *testing.T) {
	c, clk := newCachingCodec(t, 10, testKey(1))
	s := ProfileSubject{Profile: "openai", OutboundContainerID: "ctr-1", Subject: map[string]string{"userId": "u-1"},
		Credentials: map[string]string{"api-key": "sk-cache-test"}}
	tok, err := c.SealProfile(s, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	first, err := c.OpenProfile(tok)
	if err != nil {
		t.Fatal(err)
	}
	before := c.CacheStats()
	second, err := c.OpenProfile(tok)
	if err != nil || !reflect.DeepEqual(first, second) {
		t.Fatalf("cached open = %v, %v; want %v", second, err, first)
	}
	if got := c.CacheStats(); got.Hits != before.Hits+1 || got.Entries != 1 {
		t.Fatalf("stats %+v; want one more hit than %+v and one entry", got, before)
	}
	if _, err := c.Open(tok); err == nil {
		t.Fatal("a cached profile capability opened as kka1")
	}
	clk.t = clk.t.Add(time.Hour)
	if _, err := c.OpenProfile(tok); err == nil {
		t.Fatal("an expired profile capability was served from the cache")
	}
	clk.t = clk.t.Add(-time.Hour)
	r, err := NewKeyRing(testKey(2))
	if err != nil {
		t.Fatal(err)
	}
	c.SetKeyRing(r)
	if st := c.CacheStats(); st.Entries != 0 {
		t.Fatalf("entries %d after a key ring change; want 0", st.Entries)
	}
	if _, err := c.OpenProfile(tok); err == nil {
		t.Fatal("a profile capability sealed with a removed key opened from the cache")
	}
}
