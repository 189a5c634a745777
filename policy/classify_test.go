package policy

import (
	"errors"
	"slices"
	"testing"
)

// Target shapes the tables run against.
var shapes = map[string]Targets{
	// Backend, provider and ingest on distinct origins.
	"distinct": {
		BackendBaseURL:       "https://api.example.com",
		ProviderBaseURL:      "https://llm.example.com",
		SessionIngestBaseURL: "https://ingest.example.com",
	},
	// Provider on its own origin, with a port and a trailing slash.
	"providerOwn": {
		BackendBaseURL:       "https://api.example.com/",
		ProviderBaseURL:      "https://openrouter.example.net:8443/",
		SessionIngestBaseURL: "https://ingest.example.com",
	},
	// Backend, provider (…/api/openrouter) and ingest sharing one origin.
	"shared": {
		BackendBaseURL:       "https://app.example.com",
		ProviderBaseURL:      "https://app.example.com/api/openrouter",
		SessionIngestBaseURL: "https://app.example.com",
	},
	// Ingest mounted under a prefix of the shared origin.
	"sharedPrefix": {
		BackendBaseURL:       "https://app.example.com",
		ProviderBaseURL:      "https://app.example.com/api/openrouter",
		SessionIngestBaseURL: "https://app.example.com/ingest",
	},
	// Local plain-http targets with ports.
	"local": {
		BackendBaseURL:       "http://localhost:3000",
		ProviderBaseURL:      "http://127.0.0.1:8787",
		SessionIngestBaseURL: "http://host.docker.internal:8080",
	},
	// Backend base ending in /api, provider in /api/gateway, ingest with its own path.
	"paths": {
		BackendBaseURL:       "https://api.example.com/api",
		ProviderBaseURL:      "https://gw.example.com/v1/api/gateway",
		SessionIngestBaseURL: "https://ingest.example.com/session-ingest/v2/",
	},
	// Ingest under a path with a 'k' (for the Kelvin sign) on the backend origin.
	"kiloIngest": {
		BackendBaseURL:       "https://app.example.com",
		ProviderBaseURL:      "https://llm.example.com",
		SessionIngestBaseURL: "https://app.example.com/kilo",
	},

	// Provider under a deeper path on the backend's origin: its prefix is
	// the provider base itself, which no backend-derived prefix covers.
	"sharedV1Provider": {
		BackendBaseURL:       "https://app.example.com",
		ProviderBaseURL:      "https://app.example.com/v1/api/openrouter",
		SessionIngestBaseURL: "https://ingest.example.com",
	},

	// Odd, mis-issued targets that still pass Validate: the exclusions must
	// hold for them too.
	// Provider base in upper case on the backend origin: its routes are
	// /API/api/openrouter and /API/api/gateway.
	"oddUpperProvider": {
		BackendBaseURL:       "https://app.example.com",
		ProviderBaseURL:      "https://app.example.com/API",
		SessionIngestBaseURL: "https://ingest.example.com",
	},
	// Backend base in upper case: provider-shaped for it is /API/api/openrouter.
	"oddUpperBackend": {
		BackendBaseURL:       "https://api.example.com/API",
		ProviderBaseURL:      "https://llm.example.com",
		SessionIngestBaseURL: "https://ingest.example.com",
	},
	// Ingest base with an encoded reserved character, and with it raw.
	"oddEncodedIngest": {
		BackendBaseURL:       "https://app.example.com",
		ProviderBaseURL:      "https://llm.example.com",
		SessionIngestBaseURL: "https://app.example.com/a%3Ab",
	},
	"oddColonIngest": {
		BackendBaseURL:       "https://app.example.com",
		ProviderBaseURL:      "https://llm.example.com",
		SessionIngestBaseURL: "https://app.example.com/a:b",
	},
	// Ingest and provider on the backend's server under another spelling of
	// its origin: trailing dot, IPv4-mapped IPv6, explicit port 443 on http.
	"oddDotIngest": {
		BackendBaseURL:       "https://app.example.com",
		ProviderBaseURL:      "https://APP.example.com.:443/v1",
		SessionIngestBaseURL: "https://app.example.com.",
	},
	"oddMappedIngest": {
		BackendBaseURL:       "https://10.0.0.1",
		ProviderBaseURL:      "https://[::ffff:a00:1]/v1",
		SessionIngestBaseURL: "https://[::ffff:10.0.0.1]",
	},
	"oddPortIngest": {
		BackendBaseURL:       "http://localhost:443",
		ProviderBaseURL:      "https://localhost/v1",
		SessionIngestBaseURL: "https://localhost",
	},
}

const sessionID = "sess-1"

type classifyCase struct {
	name      string
	shape     string
	scheme    string
	authority string
	path      string
	session   string // default sessionID
	want      string // route class or reason slug
}

// outcome renders a Classify result as a route class or a reason slug.
func outcome(r Route, err error) string {
	switch {
	case errors.Is(err, ErrInvalidUpstreamURL):
		return ErrInvalidUpstreamURL.Error()
	case errors.Is(err, ErrUpstreamNotAllowed):
		return ErrUpstreamNotAllowed.Error()
	case err != nil:
		return "unexpected error: " + err.Error()
	}
	return string(r.Class)
}

const (
	badURL = "invalid_upstream_url"
	denied = "upstream_not_allowed"
)

func runClassifyCases(t *testing.T, cases []classifyCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.shape+"/"+tc.name, func(t *testing.T) {
			targets, ok := shapes[tc.shape]
			if !ok {
				t.Fatalf("unknown shape %q", tc.shape)
			}
			scheme := tc.scheme
			if scheme == "" {
				scheme = "https"
			}
			sess := tc.session
			if sess == "" {
				sess = sessionID
			}
			req := Request{Scheme: scheme, Authority: tc.authority, Path: tc.path}
			r, err := Classify(req, targets, sess)
			if got := outcome(r, err); got != tc.want {
				t.Errorf("Classify(%q) = %v, %v; want %v", scheme+"://"+tc.authority+tc.path, r, err, tc.want)
			}
			if err == nil {
				if want := credentialFor(r.Class); r.Credential != want {
					t.Errorf("Classify(%q) credential = %v; want %v", scheme+"://"+tc.authority+tc.path, r.Credential, want)
				}
			} else if r != (Route{}) {
				t.Errorf("Classify(%q) = %v with error %v; want zero Route", scheme+"://"+tc.authority+tc.path, r, err)
			}
		})
	}
}

func credentialFor(c RouteClass) Credential {
	if c == ProviderModel || c == OrganizationModels {
		return CredentialProvider
	}
	return CredentialUser
}

func TestClassifyRules(t *testing.T) {
	runClassifyCases(t, ruleCases)
}

var ruleCases = []classifyCase{
	// distinct origins
	{name: "provider openrouter", shape: "distinct", authority: "llm.example.com", path: "/api/openrouter/v1/chat/completions", want: "provider_model"},
	{name: "provider gateway prefix itself", shape: "distinct", authority: "llm.example.com", path: "/api/gateway", want: "provider_model"},
	{name: "provider gateway trailing slash", shape: "distinct", authority: "llm.example.com", path: "/api/gateway/", want: "provider_model"},
	{name: "provider with query", shape: "distinct", authority: "llm.example.com", path: "/api/openrouter/models?q=%2F..%2F&x=a%20b", want: "provider_model"},
	{name: "provider host upper case", shape: "distinct", authority: "LLM.Example.COM", path: "/api/openrouter/x", want: "provider_model"},
	{name: "provider default port explicit", shape: "distinct", authority: "llm.example.com:443", path: "/api/openrouter/x", want: "provider_model"},
	{name: "provider scheme upper case", shape: "distinct", scheme: "HTTPS", authority: "llm.example.com", path: "/api/openrouter/x", want: "provider_model"},
	{name: "provider prefix is whole segment", shape: "distinct", authority: "llm.example.com", path: "/api/openrouterx", want: denied},
	{name: "provider other path", shape: "distinct", authority: "llm.example.com", path: "/v1/chat", want: denied},
	{name: "provider route on backend origin", shape: "distinct", authority: "api.example.com", path: "/api/openrouter/v1/chat", want: denied},
	{name: "provider route on backend origin gateway", shape: "distinct", authority: "api.example.com", path: "/api/gateway", want: denied},
	{name: "org models", shape: "distinct", authority: "api.example.com", path: "/api/organizations/org-1/models", want: "organization_models"},
	{name: "org models below", shape: "distinct", authority: "api.example.com", path: "/api/organizations/org-1/models/abc", want: "organization_models"},
	{name: "org models trailing slash", shape: "distinct", authority: "api.example.com", path: "/api/organizations/org-1/models/", want: "organization_models"},
	{name: "org other route is backend", shape: "distinct", authority: "api.example.com", path: "/api/organizations/org-1/members", want: "backend_api"},
	{name: "org modelsx is backend", shape: "distinct", authority: "api.example.com", path: "/api/organizations/org-1/modelsx", want: "backend_api"},
	{name: "org two segments is backend", shape: "distinct", authority: "api.example.com", path: "/api/organizations/a/b/models", want: "backend_api"},
	{name: "org models on provider origin", shape: "distinct", authority: "llm.example.com", path: "/api/organizations/org-1/models", want: denied},
	{name: "ingest export", shape: "distinct", authority: "ingest.example.com", path: "/api/session/sess-1/export", want: "session_ingest"},
	{name: "ingest import", shape: "distinct", authority: "ingest.example.com", path: "/api/session/sess-1/import", want: "session_ingest"},
	{name: "ingest ingest", shape: "distinct", authority: "ingest.example.com", path: "/api/session/sess-1/ingest?x=1", want: "session_ingest"},
	{name: "ingest other action", shape: "distinct", authority: "ingest.example.com", path: "/api/session/sess-1/delete", want: denied},
	{name: "ingest trailing slash", shape: "distinct", authority: "ingest.example.com", path: "/api/session/sess-1/export/", want: denied},
	{name: "ingest other session", shape: "distinct", authority: "ingest.example.com", path: "/api/session/sess-2/export", want: denied},
	{name: "ingest route on backend origin", shape: "distinct", authority: "api.example.com", path: "/api/session/sess-1/export", want: "backend_api"},
	{name: "backend catch-all", shape: "distinct", authority: "api.example.com", path: "/api/profile", want: "backend_api"},
	{name: "backend root", shape: "distinct", authority: "api.example.com", path: "/", want: "backend_api"},
	{name: "backend trailing dot host", shape: "distinct", authority: "api.example.com.", path: "/api/profile", want: denied},
	{name: "backend other port", shape: "distinct", authority: "api.example.com:8443", path: "/api/profile", want: denied},
	{name: "backend plain http", shape: "distinct", scheme: "http", authority: "api.example.com", path: "/api/profile", want: badURL},
	{name: "backend http port 443", shape: "distinct", scheme: "http", authority: "api.example.com:443", path: "/", want: badURL},
	{name: "unknown host", shape: "distinct", authority: "example.org", path: "/", want: denied},
	{name: "other scheme", shape: "distinct", scheme: "ftp", authority: "api.example.com", path: "/", want: badURL},
	{name: "empty path", shape: "distinct", authority: "api.example.com", path: "", want: badURL},
	{name: "asterisk form", shape: "distinct", authority: "api.example.com", path: "*", want: badURL},
	{name: "absolute form", shape: "distinct", authority: "api.example.com", path: "https://api.example.com/", want: badURL},
	{name: "query only", shape: "distinct", authority: "api.example.com", path: "?a=b", want: badURL},
	{name: "fragment", shape: "distinct", authority: "api.example.com", path: "/api/x#frag", want: badURL},
	{name: "query with space", shape: "distinct", authority: "api.example.com", path: "/api/x?a=b c", want: badURL},
	{name: "query with control", shape: "distinct", authority: "api.example.com", path: "/api/x?a=\n", want: badURL},
	{name: "query with brackets and pipes", shape: "distinct", authority: "api.example.com", path: "/api/x?f[a]=1|2&g={}", want: "backend_api"},
	{name: "encoded reserved in path", shape: "distinct", authority: "api.example.com", path: "/api/files/a%3Ab%20c%C3%A9", want: "backend_api"},
	{name: "sub-delims in path", shape: "distinct", authority: "api.example.com", path: "/api/x/a:b@c!$&'()*+,=~", want: "backend_api"},
	{name: "path with dots inside segment", shape: "distinct", authority: "api.example.com", path: "/api/v1.2/file.tar.gz", want: "backend_api"},

	// provider on its own origin with a port
	{name: "provider with port", shape: "providerOwn", authority: "openrouter.example.net:8443", path: "/api/openrouter/chat", want: "provider_model"},
	{name: "provider without port", shape: "providerOwn", authority: "openrouter.example.net", path: "/api/openrouter/chat", want: denied},
	{name: "provider non-provider path", shape: "providerOwn", authority: "openrouter.example.net:8443", path: "/health", want: denied},
	{name: "backend base slash", shape: "providerOwn", authority: "api.example.com", path: "/x", want: "backend_api"},

	// shared origin
	{name: "provider", shape: "shared", authority: "app.example.com", path: "/api/openrouter/v1/chat", want: "provider_model"},
	{name: "gateway on shared backend", shape: "shared", authority: "app.example.com", path: "/api/gateway/v1/chat", want: denied},
	{name: "org models", shape: "shared", authority: "app.example.com", path: "/api/organizations/o/models", want: "organization_models"},
	{name: "own ingest", shape: "shared", authority: "app.example.com", path: "/api/session/sess-1/export", want: "session_ingest"},
	{name: "other session", shape: "shared", authority: "app.example.com", path: "/api/session/sess-2/import", want: denied},
	{name: "session other route", shape: "shared", authority: "app.example.com", path: "/api/session/sess-2/status", want: "backend_api"},
	{name: "backend", shape: "shared", authority: "app.example.com", path: "/api/profile", want: "backend_api"},
	{name: "backend encoded question mark elsewhere", shape: "shared", authority: "app.example.com", path: "/api/search%3Fq/x", want: "backend_api"},
	{name: "session export-like action is backend", shape: "shared", authority: "app.example.com", path: "/api/session/sess-2/exports", want: "backend_api"},

	// ingest under a prefix of the shared origin
	{name: "own ingest", shape: "sharedPrefix", authority: "app.example.com", path: "/ingest/api/session/sess-1/ingest", want: "session_ingest"},
	{name: "own ingest without prefix", shape: "sharedPrefix", authority: "app.example.com", path: "/api/session/sess-1/ingest", want: "backend_api"},
	{name: "other session under prefix", shape: "sharedPrefix", authority: "app.example.com", path: "/ingest/api/session/sess-2/ingest", want: denied},
	{name: "other session prefix upper case", shape: "sharedPrefix", authority: "app.example.com", path: "/INGEST/api/session/sess-2/ingest", want: denied},
	{name: "ingest prefix other route", shape: "sharedPrefix", authority: "app.example.com", path: "/ingest/health", want: "backend_api"},

	// local http targets with ports
	{name: "backend http localhost", shape: "local", scheme: "http", authority: "localhost:3000", path: "/api/profile", want: "backend_api"},
	{name: "backend localhost upper case", shape: "local", scheme: "http", authority: "LOCALHOST:3000", path: "/api/profile", want: "backend_api"},
	{name: "backend https is other origin", shape: "local", authority: "localhost:3000", path: "/api/profile", want: denied},
	{name: "backend other port", shape: "local", scheme: "http", authority: "localhost:3001", path: "/api/profile", want: denied},
	{name: "backend 127.0.0.1 is other host", shape: "local", scheme: "http", authority: "127.0.0.1:3000", path: "/api/profile", want: denied},
	{name: "provider", shape: "local", scheme: "http", authority: "127.0.0.1:8787", path: "/api/openrouter/x", want: "provider_model"},
	{name: "ingest", shape: "local", scheme: "http", authority: "host.docker.internal:8080", path: "/api/session/sess-1/export", want: "session_ingest"},
	{name: "http to localhost trailing dot", shape: "local", scheme: "http", authority: "localhost.:3000", path: "/", want: badURL},

	// base paths
	{name: "backend under /api", shape: "paths", authority: "api.example.com", path: "/api/profile", want: "backend_api"},
	{name: "backend base itself", shape: "paths", authority: "api.example.com", path: "/api", want: "backend_api"},
	{name: "backend outside base", shape: "paths", authority: "api.example.com", path: "/profile", want: denied},
	{name: "backend base prefix not segment", shape: "paths", authority: "api.example.com", path: "/apix/profile", want: denied},
	{name: "org models under /api base", shape: "paths", authority: "api.example.com", path: "/api/organizations/o/models", want: "organization_models"},
	{name: "org models doubled api", shape: "paths", authority: "api.example.com", path: "/api/api/organizations/o/models", want: "backend_api"},
	{name: "provider-shaped under /api base", shape: "paths", authority: "api.example.com", path: "/api/openrouter/chat", want: denied},
	{name: "provider-shaped gateway under /api base", shape: "paths", authority: "api.example.com", path: "/api/gateway", want: denied},
	{name: "provider gateway base", shape: "paths", authority: "gw.example.com", path: "/v1/api/gateway/chat", want: "provider_model"},
	{name: "provider gateway base itself", shape: "paths", authority: "gw.example.com", path: "/v1/api/gateway", want: "provider_model"},
	{name: "provider not below gateway base", shape: "paths", authority: "gw.example.com", path: "/v1/api/openrouter/chat", want: denied},
	{name: "provider gateway doubled", shape: "paths", authority: "gw.example.com", path: "/v1/api/gateway/api/gateway", want: "provider_model"},
	{name: "ingest own path", shape: "paths", authority: "ingest.example.com", path: "/session-ingest/v2/api/session/sess-1/export", want: "session_ingest"},
	{name: "ingest without base", shape: "paths", authority: "ingest.example.com", path: "/api/session/sess-1/export", want: denied},

	// session id encoding
	{name: "encoded session id", shape: "distinct", authority: "ingest.example.com", path: "/api/session/sess%201%C3%BC!*'()~/export", session: "sess 1ü!*'()~", want: "session_ingest"},
	{name: "encoded session id lower-case hex", shape: "distinct", authority: "ingest.example.com", path: "/api/session/sess%201%c3%bc/export", session: "sess 1ü", want: denied},
	{name: "session id sub-delims encoded", shape: "distinct", authority: "ingest.example.com", path: "/api/session/a%2Bb%3Ac/export", session: "a+b:c", want: "session_ingest"},
	{name: "session id sub-delims raw", shape: "distinct", authority: "ingest.example.com", path: "/api/session/a+b:c/export", session: "a+b:c", want: denied},
	{name: "session id prefix", shape: "distinct", authority: "ingest.example.com", path: "/api/session/sess/export", session: "sess-1", want: denied},
	// An organization segment hiding a '?', '#' or ';' is not the models
	// route (an upstream decoding first would route it elsewhere, with the
	// provider credential); it falls through to the catch-all.
	{name: "org segment encoded question mark", shape: "distinct", authority: api, path: "/api/organizations/o%3F/models", want: "backend_api"},
	{name: "org segment encoded hash", shape: "distinct", authority: api, path: "/api/organizations/o%23x/models/y", want: "backend_api"},
	{name: "org segment encoded semicolon", shape: "distinct", authority: api, path: "/api/organizations/o%3bx/models", want: "backend_api"},
	{name: "org segment double-encoded question mark", shape: "distinct", authority: api, path: "/api/organizations/o%253F/models", want: "backend_api"},
	{name: "org segment other escape", shape: "distinct", authority: api, path: "/api/organizations/o%20x/models", want: "organization_models"},

	// The loose exclusions do not catch what they should not.
	{name: "non-ASCII letters elsewhere", shape: "shared", authority: app, path: "/api/%C5%BFettings/%C4%B1d", want: "backend_api"},
	{name: "session prefix other route", shape: "kiloIngest", authority: app, path: "/kilo/api/session/sess-2/status", want: "backend_api"},
	{name: "own ingest under kilo", shape: "kiloIngest", authority: app, path: "/kilo/api/session/sess-1/export", want: "session_ingest"},
	{name: "other base path", shape: "kiloIngest", authority: app, path: "/kilos/api/session/sess-2/export", want: "backend_api"},
	{name: "own ingest odd encoded base", shape: "oddEncodedIngest", authority: app, path: "/a%3Ab/api/session/sess-1/export", want: "session_ingest"},
	{name: "provider upper-case base", shape: "oddUpperProvider", authority: app, path: "/API/api/openrouter/x", want: "provider_model"},
	{name: "backend beside upper-case provider", shape: "oddUpperProvider", authority: app, path: "/api/profile", want: "backend_api"},
	{name: "backend on mapped server", shape: "oddMappedIngest", authority: "10.0.0.1", path: "/api/session/sess-2/status", want: "backend_api"},

	// A format suffix follows only the excluded name itself: other
	// spellings stay with the catch-all, and the allowed classes stay exact.
	{name: "provider name with letters appended", shape: "shared", authority: app, path: "/api/openrouterx", want: "backend_api"},
	{name: "provider name with hyphen appended", shape: "shared", authority: app, path: "/api/openrouter-docs", want: "backend_api"},
	{name: "gateway name with underscore appended", shape: "shared", authority: app, path: "/api/gateway_v2.json", want: "backend_api"},
	{name: "provider name with suffix deeper", shape: "shared", authority: app, path: "/api/docs/openrouter.json", want: "backend_api"},
	{name: "provider name with suffix under /api base deeper", shape: "paths", authority: api, path: "/api/v2/gateway.json", want: "backend_api"},
	{name: "session action with letters appended", shape: "shared", authority: app, path: "/api/session/sess-2/exporter", want: "backend_api"},
	{name: "session action with hyphen appended", shape: "shared", authority: app, path: "/api/session/sess-2/export-v2", want: "backend_api"},
	{name: "session other action with suffix", shape: "shared", authority: app, path: "/api/session/sess-2/status.json", want: "backend_api"},
	{name: "session dotted id other route", shape: "shared", authority: app, path: "/api/session/a.b/status", want: "backend_api"},
	{name: "session action one level too deep", shape: "shared", authority: app, path: "/api/session/a/b/export.json", want: "backend_api"},
	{name: "provider suffix is not a provider route", shape: "distinct", authority: "llm.example.com", path: "/api/openrouter.json", want: denied},
	{name: "provider suffix is not below a provider route", shape: "distinct", authority: "llm.example.com", path: "/api/gateway.json/v1/chat", want: denied},
	{name: "provider base with suffix is not a provider route", shape: "sharedV1Provider", authority: app, path: "/v1/api/openrouter.json/x", want: denied},
	{name: "provider route under deeper base", shape: "sharedV1Provider", authority: app, path: "/v1/api/openrouter/x", want: "provider_model"},
	{name: "own session suffix is not an ingest route", shape: "distinct", authority: ing, path: "/api/session/sess-1/export.json", want: denied},
	{name: "dotted own session", shape: "distinct", authority: ing, path: "/api/session/a.b/ingest", session: "a.b", want: "session_ingest"},

	{name: "session id with slash cannot be routed", shape: "distinct", authority: "ingest.example.com", path: "/api/session/a%2Fb/export", session: "a/b", want: badURL},
}

// TestClassifyPrepared: targets prepared once classify every rule and attack
// case as Classify does; targets another policy prepared are refused.
func TestClassifyPrepared(t *testing.T) {
	for _, tc := range slices.Concat(ruleCases, attackCases) {
		scheme := tc.scheme
		if scheme == "" {
			scheme = "https"
		}
		sess := tc.session
		if sess == "" {
			sess = sessionID
		}
		req := Request{Scheme: scheme, Authority: tc.authority, Path: tc.path}
		r, err := Classify(req, shapes[tc.shape], sess)
		pr, perr := defaultPolicy.ClassifyPrepared(req, defaultPolicy.Prepare(shapes[tc.shape]), sess)
		if pr != r || !sameError(perr, err) {
			t.Errorf("ClassifyPrepared(%+v) = %v, %v; Classify = %v, %v", req, pr, perr, r, err)
		}
	}
	other, err := New("dev.example")
	if err != nil {
		t.Fatal(err)
	}
	req := Request{Scheme: "https", Authority: "api.kilo.example", Path: "/api/openrouter/x"}
	targets := Targets{BackendBaseURL: "https://api.kilo.example", ProviderBaseURL: "https://api.kilo.example", SessionIngestBaseURL: "https://ingest.kilo.example"}
	if _, err := defaultPolicy.ClassifyPrepared(req, other.Prepare(targets), "s"); !errors.Is(err, ErrInvalidUpstreamURL) {
		t.Errorf("ClassifyPrepared with another policy's targets = %v; want ErrInvalidUpstreamURL", err)
	}
}
