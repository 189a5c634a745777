package capability

import (
	"strings"
	"sync"
	"sync/atomic"
)

// MaxCachedTokenLen bounds the capabilities the cache keeps: a longer one
// (the format allows up to MaxTokenLen) is opened on every use, so that the
// cache's memory is bounded by its size times a small constant rather than
// by what clients send.
const MaxCachedTokenLen = 4 << 10

// CacheStats are a cache's counters since the Codec was made.
type CacheStats struct {
	Hits, Misses, Evictions uint64
	Entries                 int
}

// cache holds the claims (C: Claims or ProfileClaims, one cache a kind)
// of capabilities opened with one key ring, at most size of them, evicting
// the oldest first. Entries are claims that opened:
// Open still checks their time window against the clock on every hit, so
// an entry is never served at or after expiresAt nor before issuedAt minus
// ClockSkew. A key ring change empties it (reset), and an entry opened with
// an older ring is never stored (put compares rings).
//
// Entries are keyed by the capability's exact string, a copy of which the
// cache keeps: a capability that differs in one byte is another key, opened
// (and refused) as if there were no cache. A string key costs a hash of the
// string in the map and one comparison on a hit, where a SHA-256 digest of
// it cost a fifth of an allowed Check; the copy adds at most
// MaxCachedTokenLen per entry, and no exposure the claims' own tokens do
// not already have.
//
// The claims live by value in slots, a ring buffer in insertion order that
// eviction overwrites.
type cache[C any] struct {
	size int

	mu      sync.RWMutex
	ring    *KeyRing       // the ring every entry was opened with
	entries map[string]int // where each entry is in slots
	slots   []slot[C]
	next    int // where the next insertion goes in slots once it is full

	hits, misses, evictions atomic.Uint64
}

type slot[C any] struct {
	token  string
	claims C
}

func newCache[C any](size int, ring *KeyRing) *cache[C] {
	c := &cache[C]{size: size}
	c.reset(ring)
	return c
}

// reset empties the cache for a new key ring.
func (c *cache[C]) reset(ring *KeyRing) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.ring = ring
	c.entries = make(map[string]int, min(c.size, 1024))
	clear(c.slots) // drop the claims, tokens included
	c.slots = c.slots[:0]
	c.next = 0
}

// get returns the claims cached for token if they were opened with ring.
func (c *cache[C]) get(ring *KeyRing, token string) (cl C, ok bool) {
	c.mu.RLock()
	i, found := c.entries[token]
	ok = found && c.ring == ring
	if ok {
		cl = c.slots[i].claims
	}
	c.mu.RUnlock()
	if ok {
		c.hits.Add(1)
	} else {
		c.misses.Add(1)
	}
	return cl, ok
}

// put stores a copy of claims opened from token with ring, unless the ring
// has changed since. It keeps a copy of token, which may share memory with
// a whole request.
func (c *cache[C]) put(ring *KeyRing, token string, cl *C) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ring != ring {
		return
	}
	if _, ok := c.entries[token]; ok {
		return
	}
	i := len(c.slots)
	if i < c.size {
		c.slots = append(c.slots, slot[C]{})
	} else {
		i = c.next
		delete(c.entries, c.slots[i].token)
		c.evictions.Add(1)
		c.next = (c.next + 1) % c.size
	}
	token = strings.Clone(token)
	c.slots[i] = slot[C]{token: token, claims: *cl}
	c.entries[token] = i
}

func (c *cache[C]) stats() CacheStats {
	if c == nil {
		return CacheStats{}
	}
	c.mu.RLock()
	n := len(c.entries)
	c.mu.RUnlock()
	return CacheStats{Hits: c.hits.Load(), Misses: c.misses.Load(), Evictions: c.evictions.Load(), Entries: n}
}

// plus adds two caches' counters.
func (s CacheStats) plus(o CacheStats) CacheStats {
	return CacheStats{Hits: s.Hits + o.Hits, Misses: s.Misses + o.Misses, Evictions: s.Evictions + o.Evictions, Entries: s.Entries + o.Entries}
}

// openCached is Open for either kind through cache (nil: none): the
// claims opened before with ring, their time window checked again (window),
// else open's, stored when they opened.
//
// window takes the claims by value: a pointer given to a function value
// would move them to the heap, an allocation on every hit.
func openCached[C any](cache *cache[C], ring *KeyRing, token string, window func(C) error, open func() (C, error)) (C, error) {
	if cache == nil || len(token) > MaxCachedTokenLen {
		return open()
	}
	if claims, ok := cache.get(ring, token); ok {
		if err := window(claims); err != nil {
			var zero C
			return zero, err
		}
		return claims, nil
	}
	claims, err := open()
	if err == nil {
		cache.put(ring, token, &claims)
	}
	return claims, err
}
