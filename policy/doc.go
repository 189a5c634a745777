// Package policy classifies an upstream request URL against a capability's
// three targets (backend, provider, session ingest) and its bound session id.
// It is pure: standard library only, no logging, no proxy types. The rules
// are those of docs/decisions.md, section 4.
//
// The route classes are one table, kiloRoutes in table.go: each entry names
// its target, its path patterns, its credential and its guard. Matching and
// precedence (pattern.go) and the catch-all's guards (loose.go) are derived
// from it, and nothing else names a route class.
//
// The request is given exactly as the proxy saw it (scheme, authority, raw
// path with query); nothing is decoded or normalised first. Classify returns
// a Route (class plus credential kind) or an error wrapping
// ErrInvalidUpstreamURL or ErrUpstreamNotAllowed. Errors carry a fixed reason
// and never the path, query or host.
//
// # What a caller may assume about an allow
//
//   - The scheme is https, or http to a configured development host
//     (DefaultDevHTTPHosts plus New's extras, never anything from a
//     capability). A capability cannot downgrade its own traffic to plain text.
//   - The authority is a plain host name (ASCII letters, digits, '-', '_',
//     '.'), a canonical IPv4 dotted quad or a bracketed IPv6 literal, with an
//     optional canonical port. No userinfo, no '%', no numeric forms that a
//     URL parser rewrites (127.1, 0x7f.1, 2130706433, 010.0.0.1, 1.2.3.4.):
//     what the policy compared is what a resolver and a TLS client will see.
//   - The request's origin equals the chosen target's origin as a browser
//     normalises it (scheme and host case-insensitive, default port dropped;
//     a trailing dot is a different host, other ports are other origins).
//   - The raw path starts with '/', lies within the target's base path
//     (whole segments), and is in the form every upstream decodes the same
//     way: only RFC 3986 path characters, no ';' (path parameters), no empty
//     segment except one trailing slash, no percent-encoded unreserved
//     character at any decoding depth, and, after up to four rounds of
//     percent-decoding, no dot segment (also "..." and longer), no encoded
//     '/' or '\', no backslash, no control character, valid UTF-8 and no
//     escape left. So an upstream that decodes, once or repeatedly, or that
//     normalises dot segments, routes to the path the policy checked.
//   - The query holds no control character, space, DEL, non-ASCII byte, '"',
//     '<', '>' or '#' (a WHATWG serialiser encodes those, so no real client
//     sends them raw); otherwise any encoding. There is no fragment.
//   - session_ingest is only ever the exact path base+/api/session/{id}/
//     (export|import|ingest), {id} being the bound kiloSessionId encoded as
//     JavaScript's encodeURIComponent does it, upper-case hex, compared
//     byte for byte.
//   - provider_model and organization_models paths match their prefixes
//     exactly, by whole segment; they get the provider credential.
//
// # Why the backend exclusions (the catch-all's guards) exist
//
// backend_api is a catch-all under the backend base path and gets the user
// credential. When the backend shares an origin with the provider or with
// session ingest, the catch-all would otherwise also cover their routes: a
// sandbox could send another session's /api/session/{other}/export (or the
// provider routes) to the shared origin and have it served with the user's
// token. The policy therefore denies, on the backend, any path that is
// provider-shaped (for the backend's base path, and for the provider's own
// base path when the request may reach the provider's server) and, when it
// may reach the session-ingest server, any path at or below
// base+/api/session/{any segment}/(export|import|ingest).
//
// These exclusions must match a superset of what any upstream router would
// route there, so they compare loose forms, not the raw strings:
//   - the path and the base paths fully percent-decoded (a router decodes
//     %3A, and %253A if it decodes twice; base "/a%3Ab" and request
//     "/a:b/..." name the same route);
//   - case-insensitively, including the four non-ASCII letters that
//     Unicode-aware comparisons equate with ASCII ones (U+017F 'ſ' with
//     's', U+212A Kelvin sign with 'k', U+0130 and U+0131 with 'i'), so
//     /API/Session/x/EXPORT/ and /api/%C5%BFession/x/export do not slip
//     through;
//   - a decoded '?', '#' or ';' ends a segment, for an upstream that decodes
//     before splitting off the query or path parameters;
//   - an excluded name (the openrouter or gateway segment of a provider
//     prefix; export, import, ingest) also matches with a format suffix,
//     '.' and anything, since many routers map name.json to name:
//     /api/openrouter.json, /api/gateway. and /api/session/x/export.json
//     are excluded, /api/openrouterx and /api/session/x/exporter are not
//     (the suffix counts on the name's segment only; a session id segment
//     such as "a.b" is any segment);
//   - provider prefixes derived from the base path both as given and
//     case-folded (base "/API" gives /API/api/openrouter exactly and
//     /api/openrouter folded);
//   - "may reach the same server" ignores a trailing dot, unmaps an
//     IPv4-mapped IPv6 address and compares effective ports, where origin
//     equality (used for every allow) would call those different.
//
// The exact, own-session route was already matched before; its suffixed
// forms, such as .../export.json, are not it, so on a shared origin they are
// denied. For the same decode-first upstream, an organization segment hiding
// an encoded '?', '#', ';' or '%' is not the organization_models route (it
// falls through to the catch-all).
//
// # Fail closed
//
// A target that does not pass the same parsing (plus: no query) makes every
// request invalid_upstream_url. Lower-case hex in the encoded session id, a
// session id containing '%' or '/' (whose encoding the path rules refuse), a
// request the rules cannot prove safe: all are denied rather than guessed.
package policy
