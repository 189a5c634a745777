package capability

import (
	"crypto/sha256"
	"sync"
	"sync/atomic"
	"unsafe"
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

// digest names a capability in the cache: the SHA-256 of its exact string.
// The string itself is never kept; a capability that differs in one byte
// has another digest and is opened (and refused) as if there were no cache.
type digest [sha256.Size]byte

func digestOf(token string) digest {
	// Hash the string's bytes in place: no copy of the capability is made.
	return sha256.Sum256(unsafe.Slice(unsafe.StringData(token), len(token)))
}

// cache holds the claims of capabilities opened with one key ring, at most
// size of them, evicting the oldest first. Entries are claims that opened:
// Open still checks their time window against the clock on every hit, so
// an entry is never served at or after expiresAt nor before issuedAt minus
// ClockSkew. A key ring change empties it (reset), and an entry opened with
// an older ring is never stored (put compares rings).
//
// The claims live by value in slots, a ring buffer in insertion order that
// eviction overwrites, so that storing an entry allocates nothing once the
// cache is full.
type cache struct {
	size int

	mu      sync.RWMutex
	ring    *KeyRing       // the ring every entry was opened with
	entries map[digest]int // where each entry is in slots
	slots   []slot
	next    int // where the next insertion goes in slots once it is full

	hits, misses, evictions atomic.Uint64
}

type slot struct {
	d      digest
	claims Claims
}

func newCache(size int, ring *KeyRing) *cache {
	c := &cache{size: size}
	c.reset(ring)
	return c
}

// reset empties the cache for a new key ring.
func (c *cache) reset(ring *KeyRing) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.ring = ring
	c.entries = make(map[digest]int, min(c.size, 1024))
	clear(c.slots) // drop the claims, tokens included
	c.slots = c.slots[:0]
	c.next = 0
}

// get returns the claims cached for d if they were opened with ring.
func (c *cache) get(ring *KeyRing, d digest) (cl Claims, ok bool) {
	c.mu.RLock()
	i, found := c.entries[d]
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

// put stores a copy of claims opened with ring, unless the ring has changed
// since.
func (c *cache) put(ring *KeyRing, d digest, cl *Claims) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ring != ring {
		return
	}
	if _, ok := c.entries[d]; ok {
		return
	}
	i := len(c.slots)
	if i < c.size {
		c.slots = append(c.slots, slot{})
	} else {
		i = c.next
		delete(c.entries, c.slots[i].d)
		c.evictions.Add(1)
		c.next = (c.next + 1) % c.size
	}
	c.slots[i] = slot{d: d, claims: *cl}
	c.entries[d] = i
}

func (c *cache) stats() CacheStats {
	c.mu.RLock()
	n := len(c.entries)
	c.mu.RUnlock()
	return CacheStats{Hits: c.hits.Load(), Misses: c.misses.Load(), Evictions: c.evictions.Load(), Entries: n}
}
