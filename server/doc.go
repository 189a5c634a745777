// Package server runs extauthz: it owns the listeners (gRPC ext_authz, the
// HTTP authorization endpoints and capability API, the admin endpoints
// /healthz, /readyz and /metrics), TLS and the mTLS identity allow-list,
// the connection and stream limits, the drain on shutdown, the reloading of
// every secret file, the revocation store, the redaction of the log lines
// libraries write, and the gRPC metrics. cmd/extauthz parses its flags into
// a Config (each declared once, in Config.Flags) and calls New and Run; the
// decision itself is authz's.
//
// Security invariants:
//   - nothing is served without a key: New refuses to build a server with
//     no key file and no EXTAUTHZ_KEYS, except with --dev, whose key is
//     ephemeral and which never seals with a real one;
//   - --dev listens on loopback unless an address is given;
//   - with mTLS a client certificate must name an allowed identity (one of
//     its URI or DNS SANs matches --tls-client-identities, always against
//     the whole name): a certificate the CA signed is not enough;
//   - the HTTP authorization endpoints, which trust a header for the
//     caller's identity, and the capability API are off unless configured;
//   - a secret file (keys, TLS, API token, Redis password and CA) that
//     changes is applied only once read whole; a bad edit keeps the last
//     good value; errors and log lines name the file, never its content;
//   - no log line carries a key, a token, a capability or a bearer value:
//     keys appear as fingerprints, and what libraries log is redacted;
//   - the revocation API never runs on a store nobody named, and a
//     revocation set that cannot be trusted makes the server not ready.
package server
