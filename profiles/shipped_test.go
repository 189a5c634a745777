package profiles

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/extauthz/extauthz/policy"
)

// TestShippedProfiles loads this directory, as --profiles-file would, and
// checks each shipped profile on the requests its provider's clients send.
func TestShippedProfiles(t *testing.T) {
	s, err := Load(".", nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := s.Names(); !slices.Equal(got, []string{"kilo", "openai", "anthropic", "gemini", "github"}) {
		t.Fatalf("shipped profiles = %v", got)
	}
	vars := []policy.Var{{Name: "owner", Value: "acme"}, {Name: "repo", Value: "widgets.git"}}
	for _, c := range []struct {
		profile, method, host, path string
		want, header                string
	}{
		{"openai", "POST", "api.openai.com", "/v1/chat/completions", "openai_api", "authorization"},
		{"openai", "POST", "api.openai.com", "/v1/responses", "openai_api", "authorization"},
		{"openai", "GET", "api.openai.com", "/dashboard", "upstream_not_allowed", ""},
		{"anthropic", "POST", "api.anthropic.com", "/v1/messages", "anthropic_api", "x-api-key"},
		{"anthropic", "POST", "api.anthropic.com", "/v1/messages/count_tokens", "anthropic_api", "x-api-key"},
		{"anthropic", "POST", "api.openai.com", "/v1/messages", "upstream_not_allowed", ""},
		{"gemini", "POST", "generativelanguage.googleapis.com", "/v1beta/models/gemini-2.5-flash:generateContent", "gemini_api", "x-goog-api-key"},
		{"gemini", "POST", "generativelanguage.googleapis.com", "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse", "gemini_api", "x-goog-api-key"},
		{"github", "GET", "github.com", "/acme/widgets.git/info/refs?service=git-upload-pack", "github_git", "authorization"},
		{"github", "POST", "github.com", "/acme/widgets.git/git-receive-pack", "github_git", "authorization"},
		{"github", "POST", "github.com", "/other/widgets.git/git-upload-pack", "upstream_not_allowed", ""},
		{"github", "POST", "github.com", "/acme/other.git/git-upload-pack", "upstream_not_allowed", ""},
		{"github", "GET", "api.github.com", "/repos/acme/widgets/pulls", "github_api", "authorization"},
		{"github", "GET", "api.github.com", "/repos/other/widgets/pulls", "upstream_not_allowed", ""},
		{"github", "GET", "api.github.com", "/user", "upstream_not_allowed", ""},
	} {
		pr, ok := s.Profile(c.profile)
		if !ok {
			t.Fatalf("no profile %s", c.profile)
		}
		r, err := pr.Classify(policy.Request{Scheme: "https", Authority: c.host, Path: c.path, Method: c.method}, nil, vars)
		got := string(r.Class)
		if errors.Is(err, policy.ErrUpstreamNotAllowed) {
			got = "upstream_not_allowed"
		} else if err != nil {
			got = err.Error()
		}
		if got != c.want || (c.header != "" && r.Inject.HeaderName() != c.header) {
			t.Errorf("%s: %s %s%s = %+v, %v; want %s into %s", c.profile, c.method, c.host, c.path, r, err, c.want, c.header)
		}
	}
}

// TestLoadDirectory: a directory is read as one file set, as a ConfigMap is
// mounted (its ..data entries skipped), and a name declared twice across
// files is refused.
func TestLoadDirectory(t *testing.T) {
	dir := t.TempDir()
	one := "profiles:\n  - name: %s\n    accept: [bearer]\n    routes:\n      - {class: a, origin: \"https://x.example\", paths: [\"/**\"], credential: k, inject: bearer}\n"
	write := func(name, content string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("b.yaml", strings.ReplaceAll(one, "%s", "second"))
	write("a.yml", strings.ReplaceAll(one, "%s", "first"))
	write("notes.txt", "not a profile")
	if err := os.Mkdir(filepath.Join(dir, "..data"), 0o700); err != nil {
		t.Fatal(err)
	}
	s, err := Load(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := s.Names(); !slices.Equal(got, []string{"first", "second"}) {
		t.Fatalf("Names() = %v", got)
	}
	write("c.yaml", strings.ReplaceAll(one, "%s", "first"))
	if _, err := Load(dir, nil); err == nil || !strings.Contains(err.Error(), `"first" is also declared`) {
		t.Fatalf("a name twice across files: %v", err)
	}
}

// TestShippedInjectedHeaders: each shipped profile sets its credential in
// the header its provider reads, which the proxy configs must copy from an
// allow (e2e TestProxyConfigsPassProfileHeaders).
func TestShippedInjectedHeaders(t *testing.T) {
	s, err := Load(".", nil)
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string][]string{
		"kilo":      {"authorization"},
		"openai":    {"authorization"},
		"anthropic": {"x-api-key"},
		"gemini":    {"x-goog-api-key"},
		"github":    {"authorization"},
	} {
		pr, ok := s.Profile(name)
		if !ok {
			t.Fatalf("no profile %s", name)
		}
		var got []string
		for _, in := range pr.Injections() {
			if h := in.HeaderName(); !slices.Contains(got, h) {
				got = append(got, h)
			}
		}
		if !slices.Equal(got, want) {
			t.Errorf("%s: injected headers %q; want %q", name, got, want)
		}
	}
}
