// Package capability seals and opens kka1 capabilities: the opaque, encrypted,
// expiring tokens that stand in for a user's real credentials inside a
// sandboxed outbound container. docs/decisions.md (sections 1 to 3) states
// the format and its rules.
//
// The wire format is byte-compatible with the existing TypeScript issuer:
//
//	kka1.<base64 iv>:<base64 tag>:<base64 ciphertext>
//
// with standard, padded base64, AES-256-GCM, a 16-byte IV, a 16-byte tag and no
// additional data. The plaintext is the claims as JSON.
//
// Security invariants:
//
//   - Open rejects anything that is not in canonical form (prefix, three
//     non-empty parts, base64 that re-encodes to itself, 16-byte IV and tag,
//     at most [MaxTokenLen] bytes) before it decrypts.
//   - Claims are decoded strictly, with the issuer's JavaScript semantics:
//     exact key names, no unknown or duplicate keys at any level, exact JSON
//     types, valid UTF-8, no trailing data. A claim that fails a rule makes the
//     whole capability invalid.
//   - DecodeSubject reads an issuer's subject document (the `issue` CLI and
//     API) with the same strictness, and its errors name positions, never
//     values, since a misplaced token could otherwise be echoed back.
//   - Every error from Open and Seal wraps exactly one sentinel: [ErrInvalid],
//     [ErrExpired] or [ErrConfig], so callers map errors to reasons in one
//     place.
//   - The package knows no route policy: Seal checks the claim rules, and
//     the issuer (authz) checks the targets against the policy.
//   - No error text, String, GoString, fmt verb, JSON or zerolog rendering of a
//     value from this package ever contains a token, a key or a capability.
//     Keys are identified by their fingerprint only.
//   - Time comes from an injected clock. Only issuedAt gets the [ClockSkew]
//     tolerance; expiry is exact.
//   - The optional cache of opened capabilities ([WithCache]) changes nothing
//     but speed: it is keyed by the exact capability string (a copy, so
//     that one byte more or less is another key), checks the time window on
//     every hit, holds only
//     claims opened with the current key ring (SetKeyRing empties it), is
//     bounded in entries and in the size of what it keeps, and lives in
//     memory only.
//
// The package does no logging. Its only global state is pools of working
// buffers for Open and JSON decoding (wiped of tokens before reuse) and the
// last few target URLs found valid (public configuration); a Codec holds its
// keys, clock and cache.
package capability
