package capability

import (
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Codec seals and opens capabilities with a key ring and a clock. It is safe
// for concurrent use; SetKeyRing swaps keys without blocking Open.
type Codec struct {
	ring atomic.Pointer[KeyRing]
	now  func() time.Time

	cacheSize int
	cache     *cache[Claims] // nil: no cache
	// profileCache is the same cache for profile capabilities, of the
	// same size: the claims of each kind in a cache of its own.
	profileCache *cache[ProfileClaims]
}

// Option configures a Codec.
type Option func(*Codec)

// WithClock injects the clock. The default is time.Now.
func WithClock(now func() time.Time) Option {
	return func(c *Codec) { c.now = now }
}

// WithCache keeps the claims of up to size opened capabilities (0: none),
// so that a capability presented again is not decrypted and decoded again.
// The cache is invisible except in speed: entries are keyed by the
// capability string itself (a copy of it), their time window is checked on
// every hit, and a key ring change empties it (see cache). Each kind of
// capability (kka1, profile) has a cache of its own of this size.
func WithCache(size int) Option {
	return func(c *Codec) { c.cacheSize = max(size, 0) }
}

// NewCodec returns a codec. ring may be nil: Open and Seal then fail with
// ErrConfig until SetKeyRing provides keys.
func NewCodec(ring *KeyRing, opts ...Option) *Codec {
	c := &Codec{now: time.Now}
	for _, o := range opts {
		o(c)
	}
	c.ring.Store(ring)
	if c.cacheSize > 0 {
		c.cache = newCache[Claims](c.cacheSize, ring)
		c.profileCache = newCache[ProfileClaims](c.cacheSize, ring)
	}
	return c
}

// SetKeyRing atomically replaces the key ring (key reload) and empties the
// cache. It is safe to call while other goroutines Open and Seal.
func (c *Codec) SetKeyRing(r *KeyRing) {
	c.ring.Store(r)
	if c.cache != nil {
		c.cache.reset(r)
		c.profileCache.reset(r)
	}
}

// CacheStats returns the caches' counters, both kinds together; zero
// without a cache.
func (c *Codec) CacheStats() CacheStats {
	return c.cache.stats().plus(c.profileCache.stats())
}

// KeyRing returns the current key ring, possibly nil.
func (c *Codec) KeyRing() *KeyRing { return c.ring.Load() }

// keys returns a usable ring or an ErrConfig error.
func (c *Codec) keys() (*KeyRing, error) {
	r := c.ring.Load()
	if r.Len() == 0 {
		return nil, fmt.Errorf("%w: no key configured", ErrConfig)
	}
	return r, nil
}

// CheckLifetime is the one lifetime rule of issuance: a capability lives
// at least a millisecond (the unit of its timestamps) and at most
// MaxLifetime. The error wraps ErrInvalid.
func CheckLifetime(ttl time.Duration) error {
	if ttl < time.Millisecond || ttl > MaxLifetime {
		return fmt.Errorf("%w: lifetime must be between 1ms and %s", ErrInvalid, MaxLifetime)
	}
	return nil
}

// Seal issues a capability for s, valid from now for ttl (0 means
// DefaultLifetime). A ttl that CheckLifetime refuses, or a subject that
// breaks a claim rule, is an error wrapping ErrInvalid.
//
// Seal checks the claim rules only: whether the route policy accepts the
// targets is for the issuer to check (authz.Authorizer.Issue, the one
// issuance sequence), since this package knows no policy.
func (c *Codec) Seal(s Subject, ttl time.Duration) (string, error) {
	r, iat, exp, err := c.issueWindow(ttl)
	if err != nil {
		return "", err
	}
	claims := Claims{Subject: s, Version: Version, Purpose: Purpose, IssuedAt: iat, ExpiresAt: exp}
	if err := claims.validate(); err != nil {
		return "", err
	}
	plain, err := claims.marshal()
	if err != nil {
		return "", err
	}
	return sealPlain(r, Prefix, plain, nil)
}

// issueWindow is what issuing either kind starts with: the lifetime rule
// (ttl 0 means DefaultLifetime), a usable key ring, and issuedAt and
// expiresAt from the clock.
func (c *Codec) issueWindow(ttl time.Duration) (r *KeyRing, issuedAt, expiresAt int64, err error) {
	if ttl == 0 {
		ttl = DefaultLifetime
	}
	if err := CheckLifetime(ttl); err != nil {
		return nil, 0, 0, err
	}
	if r, err = c.keys(); err != nil {
		return nil, 0, 0, err
	}
	now := c.now().UnixMilli()
	return r, now, now + ttl.Milliseconds(), nil
}

// sealPlain seals plain with the ring's first key, a random IV and aad, and
// lays out the token behind prefix.
func sealPlain(r *KeyRing, prefix string, plain, aad []byte) (string, error) {
	var iv [ivSize]byte
	_, _ = rand.Read(iv[:]) // crypto/rand.Read never fails (it aborts instead).
	return sealToken(prefix, r.aeads[0].Seal(plain[:0:0], iv[:], plain, aad), &iv)
}

// Open checks a capability's format, decrypts it with the first key that
// authenticates it, decodes and checks its claims, then checks its time
// window against the clock. Errors wrap ErrInvalid, ErrExpired or ErrConfig.
//
// With a cache, the claims of a capability opened before with the current
// key ring are taken from it instead of decrypting again; the time window
// is checked all the same.
func (c *Codec) Open(token string) (claims Claims, err error) {
	r, err := c.keys()
	if err != nil {
		return Claims{}, err
	}
	return openCached(c.cache, r, token, func(cl Claims) error { return c.checkWindow(&cl) }, func() (Claims, error) { return c.open(r, token) })
}

// open is Open without the cache.
func (c *Codec) open(r *KeyRing, token string) (Claims, error) {
	b := openBuffers.Get().(*openBuffer)
	defer b.release()
	var err error
	if b.sealed, err = parseToken(&b.iv, b.sealed[:0], token, Prefix); err != nil {
		return Claims{}, err
	}
	opened := false
	for _, aead := range r.aeads {
		// On failure Open may write to b.plain, never to b.sealed: the
		// next key gets the ciphertext intact.
		if p, err := aead.Open(b.plain[:0], b.iv[:], b.sealed, nil); err == nil {
			b.plain, opened = p, true
			break
		}
	}
	if !opened {
		return Claims{}, fmt.Errorf("%w: does not authenticate with any configured key", ErrInvalid)
	}

	claims, err := b.dec.decode(b.plain) // copies what it keeps
	if err != nil {
		return Claims{}, err
	}
	if err := c.checkWindow(&claims); err != nil {
		return Claims{}, err
	}
	return claims, nil
}

// maxPooledBuffer bounds the buffers kept for reuse (openBuffers, decoders):
// a rare large capability does not pin its buffers' size.
const maxPooledBuffer = 8 << 10

// openBuffer holds open's working memory: the IV, the ciphertext with its
// tag, the plaintext and the claims decoder. The last two hold tokens and
// are wiped before reuse.
type openBuffer struct {
	iv     [ivSize]byte
	sealed []byte
	plain  []byte
	dec    claimsDecoder
}

var openBuffers = sync.Pool{New: func() any { return new(openBuffer) }}

func (b *openBuffer) release() {
	clear(b.plain)
	b.plain = b.plain[:0]
	b.dec.wipe()
	if max(cap(b.sealed), cap(b.plain), cap(b.dec.arena)) <= maxPooledBuffer {
		openBuffers.Put(b)
	}
}

// checkWindow is the time rule of Open: issuedAt at most ClockSkew in the
// future, expiresAt strictly in the future.
func (c *Codec) checkWindow(claims *Claims) error {
	return c.checkTimes(claims.IssuedAt, claims.ExpiresAt)
}

// checkTimes is the time rule of opening either kind.
func (c *Codec) checkTimes(issuedAt, expiresAt int64) error {
	now := c.now().UnixMilli()
	if issuedAt > now+ClockSkew.Milliseconds() {
		return fmt.Errorf("%w: issued more than %s in the future", ErrInvalid, ClockSkew)
	}
	if expiresAt <= now {
		return fmt.Errorf("%w: expired", ErrExpired)
	}
	return nil
}

// IDSize is the length of a capability's ID.
const IDSize = tagSize

// ID returns the id of a capability: the 16-byte GCM tag it carries. The tag
// is a keyed digest of the capability's content that Open verifies, so two
// capabilities share an id with probability 2^-128 and nobody without the
// key can make one that matches an issued capability; reading it costs a few
// tens of nanoseconds, where a SHA-256 of a kilobyte string costs ten times
// as much. The id names a capability without revealing it (revocation keeps
// it).
//
// Both kinds have an id, read the same way behind their own prefix. The ids
// of two capabilities that open never collide across kinds (but with
// probability 2^-128, as within one): each is the tag GCM computed with a
// key of the ring over a random IV, the kind's additional data and the
// claims. Only a string that does not open can share an id with one that
// does, by copying its tag (e.g. behind the other prefix); an entry made
// from it revokes that capability, which whoever copied the tag could
// revoke anyway, and Check is only asked about capabilities that opened.
//
// ok is false when token is not laid out as a capability up to its tag
// (cutToken) or the tag is not 16 bytes of canonical base64. Nothing else is
// decoded or checked: a token with an id need not open.
func ID(token string) (id [IDSize]byte, ok bool) {
	prefix := Prefix
	if KindOf(token) == KindProfile {
		prefix = ProfilePrefix
	}
	_, tagPart, _, err := cutToken(token, prefix)
	if err != nil {
		return id, false
	}
	var buf [IDSize + 2]byte // room for the decoder's worst case; checked below
	if n, ok := decodeCanonical(buf[:], tagPart); !ok || n != IDSize {
		return id, false
	}
	copy(id[:], buf[:IDSize])
	return id, true
}

// cutToken reads the layout of a capability (docs/decisions.md, section 1)
// up to its tag: once surrounding white space is trimmed, at most
// MaxTokenLen bytes, the prefix, then <iv>:<tag>:<ct> with a non-empty iv
// and tag. It returns the three parts undecoded, ct being all that follows
// the second ':'. ID needs no more; parseToken checks ct (non-empty, no
// third ':') and decodes the parts. It does not scan ct, which is most of a
// capability: ID runs on every decision when a capability is revoked.
func cutToken(token, prefix string) (ivPart, tagPart, ctPart string, err error) {
	token = strings.TrimSpace(token)
	if len(token) > MaxTokenLen {
		return "", "", "", fmt.Errorf("%w: longer than %d bytes", ErrInvalid, MaxTokenLen)
	}
	body, ok := strings.CutPrefix(token, prefix)
	if !ok {
		return "", "", "", fmt.Errorf("%w: missing %s prefix", ErrInvalid, prefix)
	}
	i := strings.IndexByte(body, ':')
	if i < 0 {
		return "", "", "", errNotThreeParts
	}
	j := strings.IndexByte(body[i+1:], ':')
	if j < 0 {
		return "", "", "", errNotThreeParts
	}
	ivPart, tagPart, ctPart = body[:i], body[i+1:i+1+j], body[i+2+j:]
	if ivPart == "" || tagPart == "" {
		return "", "", "", errEmptyPart
	}
	return ivPart, tagPart, ctPart, nil
}

var (
	errNotThreeParts = fmt.Errorf("%w: not three ':'-separated parts", ErrInvalid)
	errEmptyPart     = fmt.Errorf("%w: empty part", ErrInvalid)
)

// parseToken checks a capability's format before anything is decrypted
// (docs/decisions.md, section 1): its layout (cutToken, then the
// ciphertext part), then the content of its parts. It stores the IV in iv
// and returns the ciphertext with the tag appended, as cipher.AEAD.Open
// wants them, in dst (grown if need be).
func parseToken(iv *[ivSize]byte, dst []byte, token, prefix string) (sealed []byte, err error) {
	ivPart, tagPart, ctPart, err := cutToken(token, prefix)
	switch {
	case err != nil:
		return dst, err
	case strings.IndexByte(ctPart, ':') >= 0:
		return dst, errNotThreeParts
	case ctPart == "":
		return dst, errEmptyPart
	}

	// One buffer: ciphertext then tag.
	if n := len(ctPart)/4*3 + len(tagPart)/4*3; cap(dst) < n {
		dst = make([]byte, n)
	} else {
		dst = dst[:n]
	}
	var ivBuf [ivSize + 2]byte // room for the decoder's worst case; checked below
	ivLen, ok := decodeCanonical(ivBuf[:], ivPart)
	if !ok || ivLen != ivSize {
		return dst, fmt.Errorf("%w: iv is not 16 bytes of canonical base64", ErrInvalid)
	}
	ctLen, ok := decodeCanonical(dst, ctPart)
	if !ok {
		return dst, fmt.Errorf("%w: ciphertext is not canonical base64", ErrInvalid)
	}
	tagLen, ok := decodeCanonical(dst[ctLen:], tagPart)
	if !ok || tagLen != tagSize {
		return dst, fmt.Errorf("%w: tag is not 16 bytes of canonical base64", ErrInvalid)
	}
	copy(iv[:], ivBuf[:ivSize])
	return dst[:ctLen+tagLen], nil
}

// decodeCanonical decodes s into dst and reports whether s is canonical
// standard base64: padded, no line breaks, zero padding bits. Those are
// exactly the strings that re-encode to themselves. (encoding/base64 would
// need a copy of s, a scan for line breaks, which it skips, and its strict
// mode; this is one pass.)
func decodeCanonical(dst []byte, s string) (int, bool) {
	if len(s)%4 != 0 || len(s)/4*3 > len(dst) {
		return 0, false
	}
	if s == "" {
		return 0, true
	}
	n := 0
	body, last := s[:len(s)-4], s[len(s)-4:]
	// Eight characters make six bytes, stored as eight while dst has room:
	// the two extra are zeros, which the next bytes overwrite, or past the
	// decoded length (dst is scratch up to its length).
	for ; len(body) >= 8 && len(dst)-n >= 8; body = body[8:] {
		a, b, c, d := base64Value[body[0]], base64Value[body[1]], base64Value[body[2]], base64Value[body[3]]
		e, f, g, h := base64Value[body[4]], base64Value[body[5]], base64Value[body[6]], base64Value[body[7]]
		if a|b|c|d|e|f|g|h > 63 {
			return 0, false
		}
		binary.BigEndian.PutUint64(dst[n:], uint64(a)<<58|uint64(b)<<52|uint64(c)<<46|uint64(d)<<40|
			uint64(e)<<34|uint64(f)<<28|uint64(g)<<22|uint64(h)<<16)
		n += 6
	}
	for ; len(body) >= 4; body = body[4:] {
		a, b, c, d := base64Value[body[0]], base64Value[body[1]], base64Value[body[2]], base64Value[body[3]]
		if a|b|c|d > 63 {
			return 0, false
		}
		out := dst[n : n+3]
		out[0], out[1], out[2] = a<<2|b>>4, b<<4|c>>2, c<<6|d
		n += 3
	}
	a, b := base64Value[last[0]], base64Value[last[1]]
	if a|b > 63 {
		return 0, false
	}
	switch {
	case last[2] == '=' && last[3] == '=':
		if b&0x0f != 0 { // bits that padding leaves over must be zero
			return 0, false
		}
		dst[n] = a<<2 | b>>4
		return n + 1, true
	case last[3] == '=':
		c := base64Value[last[2]]
		if c > 63 || c&0x03 != 0 {
			return 0, false
		}
		out := dst[n : n+2]
		out[0], out[1] = a<<2|b>>4, b<<4|c>>2
		return n + 2, true
	default:
		c, d := base64Value[last[2]], base64Value[last[3]]
		if c|d > 63 {
			return 0, false
		}
		out := dst[n : n+3]
		out[0], out[1], out[2] = a<<2|b>>4, b<<4|c>>2, c<<6|d
		return n + 3, true
	}
}

// base64Value maps each character of the standard base64 alphabet to its
// six bits, and every other byte ('=' included) to 0xff.
var base64Value = func() (t [256]byte) {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	for i := range t {
		t[i] = 0xff
	}
	for i := range len(alphabet) {
		t[alphabet[i]] = byte(i)
	}
	return t
}()
