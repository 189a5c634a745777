// Package revocation holds the set of revoked capabilities, sessions,
// containers and users, and keeps it durable.
//
// An Entry revokes one capability, kka1 or eac1 (by its id, capability.ID),
// or every capability of a kiloSessionId, cloudAgentSessionId,
// outboundContainerId or userId, or every profile capability whose subject
// holds an id (KindSubject, key=value), issued at or before the entry's
// RevokedAt. An entry lives for
// EntryLifetime (the longest a capability lives, plus the clock skew Open
// tolerates) and is then pruned: no capability it could match is still
// valid, so the set stays bounded.
//
// Security invariants:
//   - a capability string is never stored, logged or returned; only its id,
//     the hex of the 16-byte GCM tag that it carries (a keyed digest of its
//     content, unique per capability);
//   - Set.Check is an in-memory lookup, allocation-free, with no I/O: the
//     decision path never waits on a store;
//   - a Store reports a revocation only once it is durable (fsynced to the
//     file, acknowledged by Redis), and loads everything durable before it
//     is used;
//   - a set that cannot be trusted fails closed: a RedisStore's set answers
//     ErrUnavailable until its first full load and whenever it has not been
//     known complete for MaxStaleness.
//
// Stores: MemoryStore (tests, or accepting that a restart forgets),
// FileStore (one replica, --revocation-file), RedisStore (many replicas,
// --revocation-store).
package revocation
