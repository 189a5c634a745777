package capability

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/extauthz/extauthz/policy"
)

// Codec seals and opens capabilities with a key ring and a clock. It is safe
// for concurrent use; SetKeyRing swaps keys without blocking Open.
type Codec struct {
	ring     atomic.Pointer[KeyRing]
	now      func() time.Time
	validate func(policy.Targets) error

	cacheSize int
	cache     *cache // nil: no cache
}

// Option configures a Codec.
type Option func(*Codec)

// WithClock injects the clock. The default is time.Now.
func WithClock(now func() time.Time) Option {
	return func(c *Codec) { c.now = now }
}

// WithTargetValidator sets the check Seal applies to a subject's targets on top
// of the claim rules. The default is policy.Targets.Validate, so that nothing
// is issued that the route policy would refuse.
func WithTargetValidator(v func(policy.Targets) error) Option {
	return func(c *Codec) { c.validate = v }
}

// WithCache keeps the claims of up to size opened capabilities (0: none),
// so that a capability presented again is not decrypted and decoded again.
// The cache is invisible except in speed: entries are keyed by the SHA-256
// of the capability, their time window is checked on every hit, and a key
// ring change empties it (see cache).
func WithCache(size int) Option {
	return func(c *Codec) { c.cacheSize = max(size, 0) }
}

// NewCodec returns a codec. ring may be nil: Open and Seal then fail with
// ErrConfig until SetKeyRing provides keys.
func NewCodec(ring *KeyRing, opts ...Option) *Codec {
	c := &Codec{
		now:      time.Now,
		validate: policy.Targets.Validate,
	}
	for _, o := range opts {
		o(c)
	}
	c.ring.Store(ring)
	if c.cacheSize > 0 {
		c.cache = newCache(c.cacheSize, ring)
	}
	return c
}

// SetKeyRing atomically replaces the key ring (key reload) and empties the
// cache. It is safe to call while other goroutines Open and Seal.
func (c *Codec) SetKeyRing(r *KeyRing) {
	c.ring.Store(r)
	if c.cache != nil {
		c.cache.reset(r)
	}
}

// CacheStats returns the cache's counters; zero without a cache.
func (c *Codec) CacheStats() CacheStats {
	if c.cache == nil {
		return CacheStats{}
	}
	return c.cache.stats()
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
// MaxLifetime). A ttl that CheckLifetime refuses, or a subject
// that breaks a claim rule, is an error wrapping ErrInvalid; targets the
// validator refuses give an error wrapping policy.ErrInvalidTargets.
func (c *Codec) Seal(s Subject, ttl time.Duration) (string, error) {
	if ttl == 0 {
		ttl = MaxLifetime
	}
	if err := CheckLifetime(ttl); err != nil {
		return "", err
	}
	r, err := c.keys()
	if err != nil {
		return "", err
	}
	now := c.now().UnixMilli()
	claims := Claims{
		Subject:   s,
		Version:   Version,
		Purpose:   Purpose,
		IssuedAt:  now,
		ExpiresAt: now + ttl.Milliseconds(),
	}
	if err := claims.validate(); err != nil {
		return "", err
	}
	if c.validate != nil {
		if err := c.validate(s.Targets); err != nil {
			if errors.Is(err, policy.ErrInvalidTargets) {
				return "", fmt.Errorf("capability: seal: %w", err)
			}
			return "", fmt.Errorf("%w: %v", policy.ErrInvalidTargets, err)
		}
	}
	plain, err := marshal(claims.wire(false))
	if err != nil {
		return "", err
	}
	var iv [ivSize]byte
	_, _ = rand.Read(iv[:]) // crypto/rand.Read never fails (it aborts instead).
	sealed := r.aeads[0].Seal(plain[:0:0], iv[:], plain, nil)
	ct, tag := sealed[:len(sealed)-tagSize], sealed[len(sealed)-tagSize:]

	enc := base64.StdEncoding
	out := make([]byte, 0, len(Prefix)+enc.EncodedLen(ivSize)+enc.EncodedLen(tagSize)+enc.EncodedLen(len(ct))+2)
	out = append(out, Prefix...)
	out = enc.AppendEncode(out, iv[:])
	out = append(out, ':')
	out = enc.AppendEncode(out, tag)
	out = append(out, ':')
	out = enc.AppendEncode(out, ct)
	if len(out) > MaxTokenLen {
		return "", fmt.Errorf("%w: capability would exceed %d bytes", ErrInvalid, MaxTokenLen)
	}
	return string(out), nil
}

// Open checks a capability's format, decrypts it with the first key that
// authenticates it, decodes and checks its claims, then checks its time
// window against the clock. Errors wrap ErrInvalid, ErrExpired or ErrConfig.
//
// With a cache, the claims of a capability opened before with the current
// key ring are taken from it instead of decrypting again; the time window
// is checked all the same.
func (c *Codec) Open(token string) (Claims, error) {
	r, err := c.keys()
	if err != nil {
		return Claims{}, err
	}
	if c.cache == nil || len(token) > MaxCachedTokenLen {
		return c.open(r, token)
	}
	d := digestOf(token)
	if cl, ok := c.cache.get(r, d); ok {
		if err := c.checkWindow(cl); err != nil {
			return Claims{}, err
		}
		return *cl, nil
	}
	claims, err := c.open(r, token)
	if err == nil {
		cl := claims
		c.cache.put(r, d, &cl)
	}
	return claims, err
}

// open is Open without the cache.
func (c *Codec) open(r *KeyRing, token string) (Claims, error) {
	iv, sealed, err := parseToken(token)
	if err != nil {
		return Claims{}, err
	}
	var plain []byte
	opened := false
	for _, aead := range r.aeads {
		if p, err := aead.Open(nil, iv[:], sealed, nil); err == nil {
			plain, opened = p, true
			break
		}
	}
	if !opened {
		return Claims{}, fmt.Errorf("%w: does not authenticate with any configured key", ErrInvalid)
	}

	claims, err := decodeClaims(plain)
	if err != nil {
		return Claims{}, err
	}
	if err := c.checkWindow(&claims); err != nil {
		return Claims{}, err
	}
	return claims, nil
}

// checkWindow is the time rule of Open: issuedAt at most ClockSkew in the
// future, expiresAt strictly in the future.
func (c *Codec) checkWindow(claims *Claims) error {
	now := c.now().UnixMilli()
	if claims.IssuedAt > now+ClockSkew.Milliseconds() {
		return fmt.Errorf("%w: issued more than %s in the future", ErrInvalid, ClockSkew)
	}
	if claims.ExpiresAt <= now {
		return fmt.Errorf("%w: expired", ErrExpired)
	}
	return nil
}

// parseToken checks a capability's format before anything is decrypted
// (docs/decisions.md, section 1) and returns its IV and its ciphertext with
// the tag appended, as cipher.AEAD.Open wants them.
func parseToken(token string) (iv [ivSize]byte, sealed []byte, err error) {
	token = strings.TrimSpace(token)
	if len(token) > MaxTokenLen {
		return iv, nil, fmt.Errorf("%w: longer than %d bytes", ErrInvalid, MaxTokenLen)
	}
	body, ok := strings.CutPrefix(token, Prefix)
	if !ok {
		return iv, nil, fmt.Errorf("%w: missing %s prefix", ErrInvalid, Prefix)
	}
	ivPart, rest, ok1 := strings.Cut(body, ":")
	tagPart, ctPart, ok2 := strings.Cut(rest, ":")
	if !ok1 || !ok2 || strings.IndexByte(ctPart, ':') >= 0 {
		return iv, nil, fmt.Errorf("%w: not three ':'-separated parts", ErrInvalid)
	}
	if ivPart == "" || tagPart == "" || ctPart == "" {
		return iv, nil, fmt.Errorf("%w: empty part", ErrInvalid)
	}

	// One buffer: ciphertext then tag.
	enc := base64.StdEncoding
	buf := make([]byte, enc.DecodedLen(len(ctPart))+enc.DecodedLen(len(tagPart)))
	var ivBuf [ivSize + 2]byte // room for the decoder's worst case; checked below
	ivLen, ok := decodeCanonical(ivBuf[:], ivPart)
	if !ok || ivLen != ivSize {
		return iv, nil, fmt.Errorf("%w: iv is not 16 bytes of canonical base64", ErrInvalid)
	}
	ctLen, ok := decodeCanonical(buf, ctPart)
	if !ok {
		return iv, nil, fmt.Errorf("%w: ciphertext is not canonical base64", ErrInvalid)
	}
	tagLen, ok := decodeCanonical(buf[ctLen:], tagPart)
	if !ok || tagLen != tagSize {
		return iv, nil, fmt.Errorf("%w: tag is not 16 bytes of canonical base64", ErrInvalid)
	}
	copy(iv[:], ivBuf[:ivSize])
	return iv, buf[:ctLen+tagLen], nil
}

// decodeCanonical decodes s into dst and reports whether s is canonical
// standard base64: padded, no line breaks, zero padding bits. Those are
// exactly the strings that re-encode to themselves.
func decodeCanonical(dst []byte, s string) (int, bool) {
	if len(s)%4 != 0 || strings.ContainsAny(s, "\r\n") {
		return 0, false
	}
	enc := base64.StdEncoding.Strict()
	if enc.DecodedLen(len(s)) > len(dst) {
		return 0, false
	}
	n, err := enc.Decode(dst, []byte(s))
	return n, err == nil
}
