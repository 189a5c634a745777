package revocation

import (
	"encoding/hex"
	"hash/maphash"
	"maps"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/extauthz/extauthz/capability"
)

// Set is the in-memory revocation set every decision consults. It is safe
// for concurrent use. Check takes no lock and allocates nothing: it probes
// an insert-only open-addressing table of 64-bit keyed fingerprints that
// writers (serialised by mu) fill with atomic stores, and that Prune, Replace
// and growth rebuild and swap whole.
type Set struct {
	// unavailable makes Check fail closed (a store too stale to trust).
	unavailable atomic.Bool
	table       atomic.Pointer[table]
	seed        maphash.Seed

	mu sync.Mutex
	// entries holds the full entries, by Entry.key: the source of truth
	// for listing and for rebuilding the table.
	entries map[string]Entry
	// keys are entries' keys in order: the index Page walks, so that a page
	// costs a binary search and its own entries, never a sort of the set.
	keys []string
}

// table is an open-addressing hash table with linear probing, at most half
// full. A slot is free while fp is 0; a writer stores at, then fp.
type table struct {
	slots []slot
	mask  uint64
	used  int
	// kinds has bit i set when the table holds an entry of Kinds[i], so
	// that Check hashes only what can match.
	kinds atomic.Uint32
}

type slot struct {
	fp atomic.Uint64
	// at is the latest revocation time of the key; for a capability,
	// math.MaxInt64 (it matches whatever its issuedAt).
	at atomic.Int64
}

// minSlots is the size of an empty table.
const minSlots = 1 << 10

func newTable(entries int) *table {
	n := uint64(minSlots)
	for n < uint64(entries)*2+2 {
		n <<= 1
	}
	return &table{slots: make([]slot, n), mask: n - 1}
}

// lookup returns the revocation time stored under fp.
func (t *table) lookup(fp uint64) (int64, bool) {
	for i := fp & t.mask; ; i = (i + 1) & t.mask {
		switch t.slots[i].fp.Load() {
		case fp:
			return t.slots[i].at.Load(), true
		case 0:
			return 0, false
		}
	}
}

// insert stores at under fp, keeping the later time. The caller holds
// Set.mu and has made room.
func (t *table) insert(fp uint64, at int64, kind int) {
	t.kinds.Or(1 << kind)
	for i := fp & t.mask; ; i = (i + 1) & t.mask {
		sl := &t.slots[i]
		switch sl.fp.Load() {
		case fp:
			if at > sl.at.Load() {
				sl.at.Store(at)
			}
			return
		case 0:
			sl.at.Store(at)
			sl.fp.Store(fp)
			t.used++
			return
		}
	}
}

// kindSalt separates the fingerprints of equal values of different kinds.
const kindSalt = 0x9e3779b97f4a7c15

// fingerprint is the keyed 64-bit hash of a kind (an index of Kinds) and a
// value; never 0. The seed is random per process, so nobody can aim at a
// collision; an accidental one (about 10^-18 per decision with a million
// entries) can only deny, never allow.
func (s *Set) fingerprint(kind int, value string) uint64 {
	return salted(kind, maphash.String(s.seed, value))
}

// salted is a fingerprint from the hash h of a value of kind.
func salted(kind int, h uint64) uint64 { return nonZero(h + uint64(kind+1)*kindSalt) }

// pairFingerprint is fingerprint(subjectIndex, key+"="+value), the
// fingerprint of a KindSubject entry, without building the string: a
// maphash.Hash hashes the bytes written, however the writes split them.
func (s *Set) pairFingerprint(key, value string) uint64 {
	var h maphash.Hash
	h.SetSeed(s.seed)
	h.WriteString(key)
	h.WriteByte('=')
	h.WriteString(value)
	return salted(subjectIndex, h.Sum64())
}

// idFingerprint is fingerprint for a capability's id (capability.ID).
func (s *Set) idFingerprint(id *[capability.IDSize]byte) uint64 {
	return nonZero(maphash.Bytes(s.seed, id[:]) + kindSalt)
}

func nonZero(h uint64) uint64 {
	h ^= h >> 29 // spread the high bits into the slot index
	if h == 0 {
		return 1
	}
	return h
}

// NewSet returns an empty set.
func NewSet() *Set {
	s := &Set{seed: maphash.MakeSeed(), entries: map[string]Entry{}}
	s.table.Store(newTable(0))
	return s
}

// skewMillis widens a subject revocation: it matches every capability whose
// issuedAt is at or before the revocation time plus the clock skew that
// opening tolerates, so that an issuer whose clock runs up to that much fast
// cannot seal, just before the revocation, a capability that escapes it.
const skewMillis = int64(capability.ClockSkew / time.Millisecond)

// Check reports whether the capability sub describes is revoked (ErrRevoked),
// or whether the set cannot be trusted (ErrUnavailable); nil otherwise. A
// subject entry (a session, container, user or KindSubject id) matches
// issuedAt <= revokedAt + capability.ClockSkew; a KindSubject entry matches
// when any pair of sub.Subjects is its key and value.
func (s *Set) Check(sub Subject) error {
	if s.unavailable.Load() {
		return ErrUnavailable
	}
	t := s.table.Load()
	kinds := t.kinds.Load()
	if kinds == 0 {
		return nil
	}
	if kinds&1 != 0 {
		if id, ok := capability.ID(sub.Token); ok {
			if _, hit := t.lookup(s.idFingerprint(&id)); hit {
				return ErrRevoked
			}
		}
	}
	for i, v := range [...]string{sub.KiloSessionID, sub.CloudAgentSessionID, sub.OutboundContainerID, sub.UserID} {
		if kinds&(2<<i) == 0 {
			continue
		}
		if at, hit := t.lookup(s.fingerprint(i+1, v)); hit && sub.IssuedAt <= at+skewMillis {
			return ErrRevoked
		}
	}
	if kinds&(1<<subjectIndex) != 0 {
		for k, v := range sub.Subjects {
			if at, hit := t.lookup(s.pairFingerprint(k, v)); hit && sub.IssuedAt <= at+skewMillis {
				return ErrRevoked
			}
		}
	}
	return nil
}

// SetUnavailable makes Check fail closed (true) or decide again (false).
func (s *Set) SetUnavailable(v bool) { s.unavailable.Store(v) }

// Add inserts entries; for a kind and value already present the later
// revocation time and expiry win. Invalid entries are skipped. It reports how
// many entries changed the set.
func (s *Set) Add(entries ...Entry) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.table.Load()
	if need := t.used + len(entries); uint64(need)*2+2 > uint64(len(t.slots)) {
		t = s.rebuild(need)
	}
	n, before := 0, len(s.entries)
	var added []string
	for _, e := range entries {
		if s.add(t, e) {
			n++
			if len(s.entries) > before+len(added) {
				added = append(added, e.key())
			}
		}
	}
	s.index(added)
	return n
}

// index adds new keys to the ordered index: one by one for a few, one sort
// for many (a full load). The caller holds s.mu.
func (s *Set) index(added []string) {
	if len(added) <= 64 {
		for _, k := range added {
			i, _ := slices.BinarySearch(s.keys, k)
			s.keys = slices.Insert(s.keys, i, k)
		}
		return
	}
	s.keys = append(s.keys, added...)
	slices.Sort(s.keys)
}

// add records e in entries and t. The caller holds s.mu.
func (s *Set) add(t *table, e Entry) bool {
	if !e.valid() {
		return false
	}
	k := e.key()
	if old, ok := s.entries[k]; ok {
		if old.RevokedAt >= e.RevokedAt && old.ExpiresAt >= e.ExpiresAt {
			return false
		}
		e.RevokedAt = max(e.RevokedAt, old.RevokedAt)
		e.ExpiresAt = max(e.ExpiresAt, old.ExpiresAt)
	}
	s.entries[k] = e
	s.insert(t, e)
	return true
}

func (s *Set) insert(t *table, e Entry) {
	if e.Kind == KindCapability {
		var id [capability.IDSize]byte
		hex.Decode(id[:], []byte(e.Value)) // valid checked it
		t.insert(s.idFingerprint(&id), math.MaxInt64, 0)
		return
	}
	i := slices.Index(Kinds, e.Kind)
	t.insert(s.fingerprint(i, e.Value), e.RevokedAt, i)
}

// rebuild swaps in a table built from entries, with room for need. The
// caller holds s.mu.
func (s *Set) rebuild(need int) *table {
	t := newTable(max(need, len(s.entries)))
	for _, e := range s.entries {
		s.insert(t, e)
	}
	s.table.Store(t)
	return t
}

// Replace makes the set exactly entries (a full resync).
func (s *Set) Replace(entries []Entry) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.entries = make(map[string]Entry, len(entries))
	for _, e := range entries {
		if !e.valid() {
			continue
		}
		if old, ok := s.entries[e.key()]; ok {
			e.RevokedAt = max(e.RevokedAt, old.RevokedAt)
			e.ExpiresAt = max(e.ExpiresAt, old.ExpiresAt)
		}
		s.entries[e.key()] = e
	}
	s.keys = slices.Sorted(maps.Keys(s.entries))
	s.rebuild(len(s.entries))
}

// Prune drops the entries expired at nowMillis and reports how many.
func (s *Set) Prune(nowMillis int64) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for k, e := range s.entries {
		if e.ExpiresAt <= nowMillis {
			delete(s.entries, k)
			n++
		}
	}
	if n > 0 {
		s.keys = slices.DeleteFunc(s.keys, func(k string) bool { _, ok := s.entries[k]; return !ok })
		s.rebuild(len(s.entries))
	}
	return n
}

// Len is the number of entries.
func (s *Set) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.entries)
}

// Entries returns every entry, in no particular order.
func (s *Set) Entries() []Entry {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Entry, 0, len(s.entries))
	for _, e := range s.entries {
		out = append(out, e)
	}
	return out
}

// Page lists up to limit entries ordered by kind then value, starting after
// the cursor (a value returned as next, or "" for the first page). next is ""
// on the last page. It walks the ordered index: a binary search and the
// page's own entries, however large the set.
func (s *Set) Page(cursor string, limit int) (page []Entry, next string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	i, found := slices.BinarySearch(s.keys, cursor)
	if found {
		i++
	}
	end := min(len(s.keys), i+limit)
	page = make([]Entry, 0, end-i)
	for _, k := range s.keys[i:end] {
		page = append(page, s.entries[k])
	}
	if end < len(s.keys) && len(page) > 0 {
		next = hex.EncodeToString([]byte(page[len(page)-1].key()))
	}
	return page, next
}

// DecodeCursor turns a next value of Page back into a cursor; ok is false
// for a value Page never returned.
func DecodeCursor(next string) (string, bool) {
	b, err := hex.DecodeString(next)
	return string(b), err == nil
}
