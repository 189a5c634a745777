package profiles

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/extauthz/extauthz/policy"
)

const example = `
profiles:
  - name: openai
    accept: [bearer]
    maxLifetime: 1h
    routes:
      - class: openai_api
        origin: https://api.openai.com
        paths: ["/v1/**"]
        credential: api-key
        inject: bearer
  - name: github
    accept: [basic, bearer, {header: x-capability}]
    routes:
      - class: git
        origin: https://github.com
        paths:
          - "/{owner}/{repo}/info/refs"
          - "/{owner}/{repo}/git-upload-pack"
          - "/{owner}/{repo}/git-receive-pack"
        methods: [GET, POST]
        credential: token
        inject: {basic: x-access-token}
      - class: rest_repo
        origin: https://api.github.com
        paths: ["/repos/{owner}/*/**"]
        credential: token
        inject: {header: X-GitHub-Token}
      - class: rest_other
        origin: https://api.github.com
        paths: ["/**"]
        methods: [GET]
        credential: token
        inject: bearer
`

func mustParse(t testing.TB, src string) *Set {
	t.Helper()
	s, err := Parse("test.yaml", []byte(src), nil)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestParseExample(t *testing.T) {
	s := mustParse(t, example)
	if got := strings.Join(s.Names(), ","); got != "openai,github" {
		t.Fatalf("Names() = %s", got)
	}
	gh, _ := s.Profile("github")
	if got := gh.Accept(); len(got) != 3 || got[2].Header != "x-capability" || got[0].Kind != policy.PresentBasic {
		t.Errorf("github accept = %+v", got)
	}
	if gh.MaxLifetime() != policy.DefaultMaxLifetime || gh.UsesTargets() {
		t.Errorf("github: max lifetime %v, uses targets %v", gh.MaxLifetime(), gh.UsesTargets())
	}
	if got := strings.Join(gh.Vars(), ","); got != "owner,repo" {
		t.Errorf("github vars = %s", got)
	}
	oa, _ := s.Profile("openai")
	if oa.MaxLifetime().String() != "1h0m0s" {
		t.Errorf("openai max lifetime = %v", oa.MaxLifetime())
	}
}

// TestProfileDecisions: the route language's rules on an example file, and
// every path guard of the kka1 routes on profile routes.
func TestProfileDecisions(t *testing.T) {
	s := mustParse(t, example)
	gh, _ := s.Profile("github")
	oa, _ := s.Profile("openai")
	vars := []policy.Var{{Name: "owner", Value: "acme"}, {Name: "repo", Value: "widgets.git"}}
	cases := []struct {
		pr                   *policy.Profile
		method, host, path   string
		want, slot, injected string
	}{
		{oa, "POST", "api.openai.com", "/v1/chat/completions", "openai_api", "api-key", "authorization"},
		{oa, "POST", "API.OpenAI.com:443", "/v1/responses?x=1", "openai_api", "api-key", "authorization"},
		{oa, "GET", "api.openai.com", "/v2/models", "upstream_not_allowed", "", ""},
		{oa, "GET", "api.openai.com:8443", "/v1/models", "upstream_not_allowed", "", ""},
		{oa, "GET", "evil.example", "/v1/models", "upstream_not_allowed", "", ""},
		// Path guards hold for profile routes.
		{oa, "GET", "api.openai.com", "/v1/../v2/x", "invalid_upstream_url", "", ""},
		{oa, "GET", "api.openai.com", "/v1/%2e%2e/x", "invalid_upstream_url", "", ""},
		{oa, "GET", "api.openai.com", "/v1%2fmodels", "invalid_upstream_url", "", ""},
		{oa, "GET", "api.openai.com", "/v1\\models", "invalid_upstream_url", "", ""},
		{oa, "GET", "api.openai.com", "/v1//models", "invalid_upstream_url", "", ""},
		{oa, "GET", "api.openai.com", "/v1/%6dodels", "invalid_upstream_url", "", ""},
		{oa, "GET", "api.openai.com", "/v1/x;y", "invalid_upstream_url", "", ""},
		{oa, "GET", "api.openai.com", "/V1/models", "upstream_not_allowed", "", ""}, // paths are case-sensitive
		// Variables bind whole segments; another value is denied, never
		// passed to a less specific route.
		{gh, "GET", "github.com", "/acme/widgets.git/info/refs", "git", "token", "authorization"},
		{gh, "POST", "github.com", "/acme/widgets.git/git-upload-pack", "git", "token", "authorization"},
		{gh, "POST", "github.com", "/other/widgets.git/git-receive-pack", "upstream_not_allowed", "", ""},
		{gh, "DELETE", "github.com", "/acme/widgets.git/info/refs", "upstream_not_allowed", "", ""},
		{gh, "GET", "api.github.com", "/repos/acme/widgets/issues", "rest_repo", "token", "x-github-token"},
		{gh, "POST", "api.github.com", "/repos/acme/widgets/issues", "rest_repo", "token", "x-github-token"},
		// Another owner has rest_repo's shape: denied, not the catch-all.
		{gh, "GET", "api.github.com", "/repos/other/widgets/issues", "upstream_not_allowed", "", ""},
		{gh, "GET", "api.github.com", "/user", "rest_other", "token", "authorization"},
		{gh, "POST", "api.github.com", "/user", "upstream_not_allowed", "", ""},
		// The catch-all's guard: rest_repo's shape, loosely (case, format
		// suffix, decoded), is not served by rest_other.
		{gh, "GET", "api.github.com", "/REPOS/other/widgets", "upstream_not_allowed", "", ""},
		{gh, "GET", "api.github.com", "/repos.json/other/x", "rest_other", "token", "authorization"},
		{gh, "GET", "api.github.com", "/repos/acme%3F/widgets", "upstream_not_allowed", "", ""},
	}
	for _, c := range cases {
		r, err := c.pr.Classify(policy.Request{Scheme: "https", Authority: c.host, Path: c.path, Method: c.method}, nil, vars)
		got := string(r.Class)
		switch {
		case errors.Is(err, policy.ErrInvalidUpstreamURL):
			got = "invalid_upstream_url"
		case errors.Is(err, policy.ErrUpstreamNotAllowed):
			got = "upstream_not_allowed"
		case err != nil:
			got = err.Error()
		}
		if got != c.want || r.Slot != c.slot || (c.injected != "" && r.Inject.HeaderName() != c.injected) {
			t.Errorf("%s %s %s%s = %+v, %v; want %s slot %q into %q", c.pr.Name(), c.method, c.host, c.path, r, err, c.want, c.slot, c.injected)
		}
	}
}

// TestParseErrors: each error names the file, the line and the field.
func TestParseErrors(t *testing.T) {
	route := "      - class: a\n        origin: https://api.example.com\n        paths: [\"/a/**\"]\n        credential: key\n        inject: bearer\n"
	head := "profiles:\n  - name: p\n    accept: [bearer]\n    routes:\n"
	cases := []struct{ name, src, want string }{
		{"unknown key", head + route + "        colour: red\n", "line 10: field colour not found"},
		{"unknown top key", "profile: []\n", "field profile not found"},
		{"duplicate key", head + route + "        class: b\n", `line 10: mapping key "class" already defined`},
		{"wrong type", head + "      - class: [a]\n", "line 5"},
		{"empty", "", "empty"},
		{"no profiles", "profiles: []\n", "no profile"},
		{"bad name", "profiles:\n  - name: P!\n    accept: [bearer]\n    routes: []\n", "line 2, profiles[0].name"},
		{"no accept", "profiles:\n  - name: p\n    routes:\n" + route, "profiles[0].accept"},
		{"bad accept", "profiles:\n  - name: p\n    accept: [cookie]\n    routes:\n" + route, "line 3"},
		{"accept host header", "profiles:\n  - name: p\n    accept: [{header: host}]\n    routes:\n" + route, "profiles[0].accept[0].header"},
		{"origin with a path", head + strings.Replace(route, "https://api.example.com", "https://api.example.com/v1", 1), "line 6, profiles[0].routes[0].origin"},
		{"plain http origin", head + strings.Replace(route, "https://api.example.com", "http://api.example.com", 1), "profiles[0].routes[0].origin"},
		{"unknown target", head + strings.Replace(route, "https://api.example.com", "{target: db}", 1), "line 6, profiles[0].routes[0].origin: unknown target"},
		{"bad pattern", head + strings.Replace(route, "/a/**", "/a/**/b", 1), "line 7, profiles[0].routes[0].paths[0]: ** may only be the last segment"},
		{"bad inject", head + strings.Replace(route, "inject: bearer", "inject: {query: key}", 1), "line 9"},
		{"reserved inject header", head + strings.Replace(route, "inject: bearer", "inject: {header: cookie}", 1), "profiles[0].routes[0].inject.header"},
		{"bad method", head + route + "        methods: [get]\n", "profiles[0].routes[0].methods[0]"},
		{"bad guard", head + route + "        guard: sometimes\n", "profiles[0].routes[0].guard"},
		{"lifetime too long", "profiles:\n  - name: p\n    accept: [bearer]\n    maxLifetime: 5h\n    routes:\n" + route, "line 4, profiles[0].maxLifetime"},
		{"ambiguous", head + route + strings.Replace(route, "class: a", "class: b", 1), "line 12, profiles[0].routes[1].paths[0]: takes the same requests as routes[0].paths[0]"},
		{"ambiguous by vars", head + strings.Replace(route, "/a/**", "/a/{x}", 1) + strings.Replace(strings.Replace(route, "class: a", "class: b", 1), "/a/**", "/a/{y}", 1), "takes the same requests"},
		{"twice", "profiles:\n  - name: p\n    accept: [bearer]\n    routes:\n" + route + "  - name: p\n    accept: [bearer]\n    routes:\n" + route, "profiles[1].name: profile \"p\" is declared twice"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse("test.yaml", []byte(c.src), nil)
			if err == nil || !strings.Contains(err.Error(), "profiles file test.yaml") || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Parse = %v; want an error naming test.yaml and %q", err, c.want)
			}
		})
	}
}

// TestNotAmbiguous: routes that differ in methods or in a literal load.
func TestNotAmbiguous(t *testing.T) {
	mustParse(t, `
profiles:
  - name: p
    accept: [bearer]
    routes:
      - {class: a, origin: "https://x.example", paths: ["/a/{v}"], methods: [GET], credential: k, inject: bearer}
      - {class: b, origin: "https://x.example", paths: ["/a/{v}"], methods: [POST], credential: k, inject: bearer}
      - {class: c, origin: "https://x.example", paths: ["/b/{v}"], credential: k, inject: bearer}
      - {class: d, origin: "https://y.example", paths: ["/b/{v}"], credential: k, inject: bearer}
`)
}

func TestLoadFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "p.yaml")
	if err := os.WriteFile(path, []byte(example), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(path, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(filepath.Join(dir, "missing.yaml"), nil); err == nil || !strings.Contains(err.Error(), "missing.yaml") {
		t.Fatalf("Load(missing) = %v", err)
	}
	big := make([]byte, MaxFileSize+1)
	if err := os.WriteFile(path, big, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(path, nil); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Fatalf("Load(too large) = %v", err)
	}
}
