package policy

import (
	"strings"
	"testing"
)

// Hosts of the target shapes, for brevity.
const api, app, ing = "api.example.com", "app.example.com", "ingest.example.com"

// TestClassifyAttacks runs requests an attacker inside a sandbox might try.
// Every one must be denied.
func TestClassifyAttacks(t *testing.T) {
	runClassifyCases(t, attackCases)
}

var attackCases = []classifyCase{
	// Encoded separators.
	{name: "encoded slash", shape: "distinct", authority: api, path: "/api%2fopenrouter/x", want: badURL},
	{name: "encoded slash upper", shape: "distinct", authority: api, path: "/api%2Fopenrouter/x", want: badURL},
	{name: "encoded backslash", shape: "distinct", authority: api, path: "/api%5copenrouter", want: badURL},
	{name: "encoded backslash upper", shape: "distinct", authority: api, path: "/api%5Copenrouter", want: badURL},
	{name: "double-encoded slash", shape: "distinct", authority: api, path: "/api%252fopenrouter", want: badURL},
	{name: "triple-encoded slash", shape: "distinct", authority: api, path: "/api%25252Fopenrouter", want: badURL},

	// Dot segments.
	{name: "literal dot-dot", shape: "paths", authority: api, path: "/api/../api/openrouter", want: badURL},
	{name: "literal dot", shape: "distinct", authority: api, path: "/./api/profile", want: badURL},
	{name: "trailing dot-dot", shape: "distinct", authority: api, path: "/api/..", want: badURL},
	{name: "trailing dot", shape: "distinct", authority: api, path: "/api/.", want: badURL},
	{name: "three dots", shape: "distinct", authority: api, path: "/api/.../x", want: badURL},
	{name: "encoded dot-dot", shape: "distinct", authority: api, path: "/api/%2e%2e/x", want: badURL},
	{name: "encoded dot-dot upper", shape: "distinct", authority: api, path: "/api/%2E%2E/x", want: badURL},
	{name: "encoded dot", shape: "distinct", authority: api, path: "/api/%2e/x", want: badURL},
	{name: "mixed dots", shape: "distinct", authority: api, path: "/api/.%2e/x", want: badURL},
	{name: "mixed dots other order", shape: "distinct", authority: api, path: "/api/%2e./x", want: badURL},
	{name: "double-encoded dot-dot", shape: "distinct", authority: api, path: "/api/%252e%252e/x", want: badURL},
	{name: "double-encoded mixed", shape: "distinct", authority: api, path: "/api/.%252e/x", want: badURL},
	{name: "quadruple-encoded dot-dot", shape: "distinct", authority: api, path: "/api/%252525252e%252525252e/x", want: badURL},
	{name: "ingest traversal to other session", shape: "distinct", authority: ing, path: "/api/session/sess-1/../sess-2/export", want: badURL},

	// Backslash.
	{name: "literal backslash", shape: "distinct", authority: api, path: "/api\\..\\x", want: badURL},
	{name: "backslash only", shape: "distinct", authority: api, path: "/a\\b", want: badURL},

	// Malformed escapes and invalid UTF-8.
	{name: "double percent", shape: "distinct", authority: api, path: "/api/%%32e", want: badURL},
	{name: "lone percent", shape: "distinct", authority: api, path: "/api/%", want: badURL},
	{name: "short escape", shape: "distinct", authority: api, path: "/api/%2", want: badURL},
	{name: "non-hex escape", shape: "distinct", authority: api, path: "/api/%zz", want: badURL},
	{name: "encoded percent then junk", shape: "distinct", authority: api, path: "/api/%25zz", want: badURL},
	{name: "overlong dot", shape: "distinct", authority: api, path: "/api/%c0%ae%c0%ae/x", want: badURL},
	{name: "overlong slash", shape: "distinct", authority: api, path: "/api%c0%afx", want: badURL},
	{name: "lone continuation byte", shape: "distinct", authority: api, path: "/api/%80", want: badURL},
	{name: "encoded surrogate", shape: "distinct", authority: api, path: "/api/%ed%a0%80", want: badURL},
	{name: "five rounds of encoding", shape: "distinct", authority: api, path: "/api/%2525252525", want: badURL},

	// Encoded unreserved characters.
	{name: "encoded a", shape: "distinct", authority: api, path: "/%61pi/openrouter/x", want: badURL},
	{name: "encoded e in export", shape: "shared", authority: app, path: "/api/session/sess-2/%65xport", want: badURL},
	{name: "encoded A", shape: "distinct", authority: api, path: "/%41PI/x", want: badURL},
	{name: "encoded hyphen", shape: "distinct", authority: api, path: "/api/a%2Db", want: badURL},
	{name: "encoded tilde", shape: "distinct", authority: api, path: "/api/%7e", want: badURL},
	{name: "encoded dot inside name", shape: "distinct", authority: api, path: "/api/file%2etxt", want: badURL},
	{name: "double-encoded a", shape: "distinct", authority: api, path: "/%2561pi/openrouter/x", want: badURL},
	{name: "own session encoded", shape: "distinct", authority: ing, path: "/api/session/sess%2D1/export", want: badURL},

	// Empty segments, path parameters, spaces, control characters.
	{name: "double slash", shape: "distinct", authority: api, path: "//api/profile", want: badURL},
	{name: "double slash inside", shape: "shared", authority: app, path: "/api//openrouter/x", want: badURL},
	{name: "double trailing slash", shape: "distinct", authority: api, path: "/api//", want: badURL},
	{name: "ingest empty session", shape: "distinct", authority: ing, path: "/api/session//export", want: badURL},
	{name: "semicolon", shape: "distinct", authority: api, path: "/api;x/openrouter", want: badURL},
	{name: "semicolon path param", shape: "distinct", authority: ing, path: "/api/session/sess-1;x=1/export", want: badURL},
	{name: "space", shape: "distinct", authority: api, path: "/api /x", want: badURL},
	{name: "tab", shape: "distinct", authority: api, path: "/api\t/x", want: badURL},
	{name: "newline", shape: "distinct", authority: api, path: "/api\n/x", want: badURL},
	{name: "NUL", shape: "distinct", authority: api, path: "/api\x00/x", want: badURL},
	{name: "DEL", shape: "distinct", authority: api, path: "/api\x7f/x", want: badURL},
	{name: "encoded NUL", shape: "distinct", authority: api, path: "/api%00/x", want: badURL},
	{name: "encoded CRLF", shape: "distinct", authority: api, path: "/api%0d%0aX-Injected:1", want: badURL},
	{name: "raw non-ASCII", shape: "distinct", authority: api, path: "/api/é", want: badURL},
	{name: "raw quote", shape: "distinct", authority: api, path: "/api/\"x\"", want: badURL},
	{name: "raw brackets", shape: "distinct", authority: api, path: "/api/[x]", want: badURL},
	{name: "raw pipe", shape: "distinct", authority: api, path: "/api/a|b", want: badURL},

	// Authority.
	{name: "userinfo", shape: "distinct", authority: "user@api.example.com", path: "/api/x", want: badURL},
	{name: "userinfo with password", shape: "distinct", authority: "a:b@api.example.com", path: "/api/x", want: badURL},
	{name: "userinfo to other host", shape: "distinct", authority: "api.example.com@evil.com", path: "/", want: badURL},
	{name: "percent in host", shape: "distinct", authority: "api%2eexample.com", path: "/", want: badURL},
	{name: "percent-encoded host", shape: "distinct", authority: "%61pi.example.com", path: "/", want: badURL},
	{name: "decimal IPv4", shape: "local", scheme: "http", authority: "2130706433:8787", path: "/api/openrouter/x", want: badURL},
	{name: "hex IPv4", shape: "local", scheme: "http", authority: "0x7f.1:8787", path: "/api/openrouter/x", want: badURL},
	{name: "short IPv4", shape: "local", scheme: "http", authority: "127.1:8787", path: "/api/openrouter/x", want: badURL},
	{name: "octal IPv4", shape: "local", scheme: "http", authority: "0177.0.0.1:8787", path: "/api/openrouter/x", want: badURL},
	{name: "leading zero IPv4", shape: "local", scheme: "http", authority: "127.0.0.01:8787", path: "/", want: badURL},
	{name: "IPv4 trailing dot", shape: "local", scheme: "http", authority: "127.0.0.1.:8787", path: "/", want: badURL},
	{name: "IPv4 out of range", shape: "local", scheme: "http", authority: "127.0.0.256:8787", path: "/", want: badURL},
	{name: "IPv4 in brackets", shape: "local", scheme: "http", authority: "[127.0.0.1]:8787", path: "/", want: badURL},
	{name: "IPv6 with zone", shape: "local", scheme: "http", authority: "[fe80::1%25eth0]:8787", path: "/", want: badURL},
	{name: "IPv6 unclosed", shape: "local", scheme: "http", authority: "[::1:8787", path: "/", want: badURL},
	{name: "IPv4-mapped IPv6 is another host", shape: "local", scheme: "http", authority: "[::ffff:127.0.0.1]:8787", path: "/", want: badURL},
	{name: "space in host", shape: "distinct", authority: "api.example.com /", path: "/", want: badURL},
	{name: "empty host", shape: "distinct", authority: "", path: "/", want: badURL},
	{name: "port only", shape: "distinct", authority: ":443", path: "/", want: badURL},
	{name: "empty port", shape: "distinct", authority: "api.example.com:", path: "/", want: badURL},
	{name: "port with leading zero", shape: "distinct", authority: "api.example.com:0443", path: "/", want: badURL},
	{name: "port too large", shape: "distinct", authority: "api.example.com:65979", path: "/", want: badURL},
	{name: "two ports", shape: "distinct", authority: "api.example.com:443:443", path: "/", want: badURL},
	{name: "empty label", shape: "distinct", authority: "api..example.com", path: "/", want: badURL},
	{name: "leading dot", shape: "distinct", authority: ".api.example.com", path: "/", want: badURL},
	{name: "unicode host", shape: "distinct", authority: "аpi.example.com", path: "/", want: badURL},
	{name: "other port", shape: "distinct", authority: "api.example.com:444", path: "/api/x", want: denied},
	{name: "suffix host", shape: "distinct", authority: "api.example.com.evil.com", path: "/api/x", want: denied},
	{name: "prefix host", shape: "distinct", authority: "evilapi.example.com", path: "/api/x", want: denied},
	{name: "trailing dot host", shape: "distinct", authority: "llm.example.com.", path: "/api/openrouter/x", want: denied},
	{name: "plain http to production", shape: "distinct", scheme: "http", authority: api, path: "/api/x", want: badURL},
	{name: "plain http to production provider", shape: "distinct", scheme: "http", authority: "llm.example.com", path: "/api/openrouter/x", want: badURL},

	// Another session's ingest routes on a shared backend origin.
	{name: "other session export", shape: "shared", authority: app, path: "/api/session/sess-2/export", want: denied},
	{name: "other session import", shape: "shared", authority: app, path: "/api/session/sess-2/import", want: denied},
	{name: "other session ingest", shape: "shared", authority: app, path: "/api/session/sess-2/ingest", want: denied},
	{name: "other session upper-case action", shape: "shared", authority: app, path: "/api/session/sess-2/EXPORT", want: denied},
	{name: "other session mixed case", shape: "shared", authority: app, path: "/API/Session/sess-2/Import", want: denied},
	{name: "own session other case", shape: "shared", authority: app, path: "/api/session/SESS-1/export", want: denied},
	{name: "own session upper-case path", shape: "shared", authority: app, path: "/API/SESSION/sess-1/EXPORT", want: denied},
	{name: "other session trailing slash", shape: "shared", authority: app, path: "/api/session/sess-2/export/", want: denied},
	{name: "own session trailing slash", shape: "shared", authority: app, path: "/api/session/sess-1/export/", want: denied},
	{name: "other session more path", shape: "shared", authority: app, path: "/api/session/sess-2/export/all", want: denied},
	{name: "other session with query", shape: "shared", authority: app, path: "/api/session/sess-2/ingest?x=1", want: denied},
	{name: "other session prefixed ingest", shape: "sharedPrefix", authority: app, path: "/ingest/api/session/sess-2/export/x", want: denied},
	{name: "other session on ingest origin", shape: "distinct", authority: ing, path: "/api/session/sess-2/export", want: denied},
	{name: "other session encoded question mark", shape: "shared", authority: app, path: "/api/session/sess-2/export%3Fx", want: denied},
	{name: "other session encoded hash", shape: "shared", authority: app, path: "/api/session/sess-2/ingest%23", want: denied},
	{name: "own session lower-case hex", shape: "shared", authority: app, path: "/api/session/a%3ab/export", session: "a:b", want: denied},

	// Provider routes on the backend origin, any letter case.
	{name: "provider upper case on shared", shape: "shared", authority: app, path: "/API/OpenRouter/v1/chat", want: denied},
	{name: "provider upper segment on shared", shape: "shared", authority: app, path: "/api/OPENROUTER", want: denied},
	{name: "gateway upper case on shared", shape: "shared", authority: app, path: "/Api/Gateway/x", want: denied},
	{name: "provider upper case on distinct backend", shape: "distinct", authority: api, path: "/API/OPENROUTER/x", want: denied},
	{name: "provider upper case under /api base", shape: "paths", authority: api, path: "/api/OpenRouter/x", want: denied},
	{name: "gateway upper case under /api base", shape: "paths", authority: api, path: "/api/GATEWAY", want: denied},
	{name: "provider encoded question mark on shared", shape: "shared", authority: app, path: "/api/gateway%3f/x", want: denied},
	{name: "provider encoded hash on distinct backend", shape: "distinct", authority: api, path: "/api/openrouter%23", want: denied},
	{name: "provider route on backend trailing slash", shape: "distinct", authority: api, path: "/api/openrouter/", want: denied},

	// Non-ASCII letters that a Unicode-aware case-insensitive router (Go's
	// strings.EqualFold, Java's equalsIgnoreCase, PCRE in UTF mode) equates
	// with ASCII ones: long s, dotless and dotted I, Kelvin sign.
	{name: "other session long s", shape: "shared", authority: app, path: "/api/%C5%BFession/sess-2/export", want: denied},
	{name: "other session dotless i", shape: "shared", authority: app, path: "/api/session/sess-2/%C4%B1mport", want: denied},
	{name: "other session dotted I", shape: "shared", authority: app, path: "/AP%C4%B0/session/sess-2/INGEST", want: denied},
	{name: "other session double-encoded long s", shape: "shared", authority: app, path: "/api/%25C5%25BFession/sess-2/export", want: denied},
	{name: "other session Kelvin sign in ingest base", shape: "kiloIngest", authority: app, path: "/%E2%84%AAilo/api/session/sess-2/export", want: denied},
	{name: "provider dotless i", shape: "shared", authority: app, path: "/ap%C4%B1/gateway/x", want: denied},

	// Terminators an upstream decoding first would split at, at any depth.
	{name: "other session encoded semicolon", shape: "shared", authority: app, path: "/api/session/sess-2/export%3Bx", want: denied},
	{name: "other session double-encoded question mark", shape: "shared", authority: app, path: "/api/session/sess-2/export%253F", want: denied},
	{name: "provider double-encoded question mark", shape: "shared", authority: app, path: "/api/gateway%253F", want: denied},
	{name: "provider encoded semicolon", shape: "distinct", authority: api, path: "/api/openrouter%3B/x", want: denied},

	// A format suffix after an excluded name ('.' and anything), which many
	// upstream routers map to the name itself.
	{name: "provider json suffix on shared", shape: "shared", authority: app, path: "/api/openrouter.json", want: denied},
	{name: "gateway bare dot on shared", shape: "shared", authority: app, path: "/api/gateway.", want: denied},
	{name: "gateway double dot suffix on shared", shape: "shared", authority: app, path: "/api/gateway..json", want: denied},
	{name: "provider suffix then more path on shared", shape: "shared", authority: app, path: "/api/openrouter.json/v1/chat", want: denied},
	{name: "provider suffix upper case on shared", shape: "shared", authority: app, path: "/API/OpenRouter.JSON", want: denied},
	{name: "provider suffix with query on shared", shape: "shared", authority: app, path: "/api/openrouter.json?x=1", want: denied},
	{name: "provider suffix trailing slash on distinct backend", shape: "distinct", authority: api, path: "/api/openrouter.json/", want: denied},
	{name: "gateway suffix on distinct backend", shape: "distinct", authority: api, path: "/api/gateway.xml/x", want: denied},
	{name: "provider suffix under /api base", shape: "paths", authority: api, path: "/api/openrouter.json", want: denied},
	{name: "gateway suffix upper case under /api base", shape: "paths", authority: api, path: "/api/GATEWAY.", want: denied},
	{name: "provider suffix dotless i on shared", shape: "shared", authority: app, path: "/ap%C4%B1/gateway.v1", want: denied},
	{name: "provider base itself with suffix on backend origin", shape: "sharedV1Provider", authority: app, path: "/v1/api/openrouter.json", want: denied},
	{name: "provider base itself upper-case suffix on backend origin", shape: "sharedV1Provider", authority: app, path: "/V1/API/OPENROUTER.Json/chat", want: denied},
	{name: "provider suffix for upper-case provider base", shape: "oddUpperProvider", authority: app, path: "/API/api/gateway.json", want: denied},
	{name: "provider suffix for upper-case backend base", shape: "oddUpperBackend", authority: api, path: "/API/api/openrouter.json", want: denied},
	{name: "provider suffix for trailing-dot provider target", shape: "oddDotIngest", authority: app, path: "/v1/api/gateway.json", want: denied},
	{name: "provider suffix encoded dot", shape: "shared", authority: app, path: "/api/OpenRouter%2Ejson", want: badURL},
	{name: "provider suffix double-encoded dot", shape: "shared", authority: app, path: "/api/openrouter%252ejson", want: badURL},
	{name: "other session export json", shape: "shared", authority: app, path: "/api/session/sess-2/export.json", want: denied},
	{name: "other session import suffix mixed case", shape: "shared", authority: app, path: "/api/session/sess-2/IMPORT.Json", want: denied},
	{name: "other session ingest version suffix", shape: "shared", authority: app, path: "/api/session/sess-2/ingest.v2", want: denied},
	{name: "other session bare dot", shape: "shared", authority: app, path: "/api/session/sess-2/export.", want: denied},
	{name: "other session suffix trailing slash", shape: "shared", authority: app, path: "/api/session/sess-2/export.json/", want: denied},
	{name: "other session suffix more path", shape: "shared", authority: app, path: "/api/session/sess-2/ingest.json/x", want: denied},
	{name: "other session dotted id with suffix", shape: "shared", authority: app, path: "/api/session/a.b/export.json", want: denied},
	{name: "other session suffix long s", shape: "shared", authority: app, path: "/api/%C5%BFession/sess-2/export.json", want: denied},
	{name: "other session suffix dotless i", shape: "shared", authority: app, path: "/api/session/sess-2/%C4%B1mport.csv", want: denied},
	{name: "other session suffix encoded question mark", shape: "shared", authority: app, path: "/api/session/sess-2/export.json%3Fx", want: denied},
	{name: "other session suffix under ingest prefix", shape: "sharedPrefix", authority: app, path: "/ingest/api/session/sess-2/export.json", want: denied},
	{name: "other session suffix under Kelvin-sign base", shape: "kiloIngest", authority: app, path: "/%E2%84%AAilo/api/session/sess-2/import.json", want: denied},
	{name: "other session suffix on IPv4-mapped ingest target", shape: "oddMappedIngest", authority: "10.0.0.1", path: "/api/session/sess-2/export.json", want: denied},
	{name: "other session suffix encoded dot", shape: "shared", authority: app, path: "/api/session/sess-2/export%2Ejson", want: badURL},
	{name: "own session export json on shared", shape: "shared", authority: app, path: "/api/session/sess-1/export.json", want: denied},
	{name: "own session ingest suffix upper case on shared", shape: "shared", authority: app, path: "/api/session/sess-1/INGEST.json", want: denied},
	{name: "own session suffix under ingest prefix", shape: "sharedPrefix", authority: app, path: "/ingest/api/session/sess-1/import.v2", want: denied},

	// Mis-issued targets: the exclusions still hold.
	{name: "provider route of upper-case provider base in lower case", shape: "oddUpperProvider", authority: app, path: "/api/api/openrouter/x", want: denied},
	{name: "provider-shaped for upper-case backend base", shape: "oddUpperBackend", authority: api, path: "/API/api/openrouter/x", want: denied},
	{name: "provider-shaped for upper-case backend base lower", shape: "oddUpperBackend", authority: api, path: "/API/api/gateway", want: denied},
	{name: "other session under raw form of encoded base", shape: "oddEncodedIngest", authority: app, path: "/a:b/api/session/sess-2/export", want: denied},
	{name: "other session under encoded form of raw base", shape: "oddColonIngest", authority: app, path: "/a%3Ab/api/session/sess-2/export", want: denied},
	{name: "other session under double-encoded base", shape: "oddColonIngest", authority: app, path: "/a%253ab/api/session/sess-2/import", want: denied},
	{name: "other session ingest target with trailing dot", shape: "oddDotIngest", authority: app, path: "/api/session/sess-2/export", want: denied},
	{name: "provider target with trailing dot", shape: "oddDotIngest", authority: app, path: "/v1/api/openrouter/x", want: denied},
	{name: "other session ingest target IPv4-mapped", shape: "oddMappedIngest", authority: "10.0.0.1", path: "/api/session/sess-2/export", want: denied},
	{name: "provider target IPv4-mapped", shape: "oddMappedIngest", authority: "10.0.0.1", path: "/v1/api/gateway", want: denied},
	{name: "other session ingest target https on backend's http port", shape: "oddPortIngest", scheme: "http", authority: "localhost:443", path: "/api/session/sess-2/export", want: denied},
	{name: "provider target https on backend's http port", shape: "oddPortIngest", scheme: "http", authority: "localhost:443", path: "/v1/api/gateway/x", want: denied},
}

// TestClassifyLongInputs runs megabyte-long hostile paths: no panic, the
// expected decision, and (checked by hand: linear, tens of milliseconds)
// no super-linear work.
func TestClassifyLongInputs(t *testing.T) {
	const n = 1 << 18
	tests := []struct {
		path string
		want string
	}{
		{"/" + strings.Repeat("%25", n) + "41", badURL},
		{"/" + strings.Repeat("%2525", n), badURL},
		{"/api/" + strings.Repeat("%C3%A9", n), "backend_api"},
		{"/api/" + strings.Repeat("a/", n) + "x", "backend_api"},
		{"/api/session/" + strings.Repeat("%C5%BF", n) + "/export", denied},
		{"/" + strings.Repeat(".", 4*n), badURL},
		{"/x?" + strings.Repeat("%", 4*n), "backend_api"},
	}
	for _, tc := range tests {
		r, err := Classify(Request{Scheme: "https", Authority: app, Path: tc.path}, shapes["shared"], sessionID)
		if got := outcome(r, err); got != tc.want {
			t.Errorf("Classify(%.40q…) = %v; want %v", tc.path, got, tc.want)
		}
	}
}
