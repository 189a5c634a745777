package policy

import (
	"strings"
	"testing"
)

// refMatch is a plain reference for match: the path split on '/', each
// pattern segment compared in turn, ** taking whatever remains.
func refMatch(rest string, segs []segment, vars []Var) matchKind {
	if rest != "" && rest[0] != '/' {
		return noMatch
	}
	var parts []string
	if rest != "" {
		parts = strings.Split(rest[1:], "/")
	}
	m := exact
	for i, g := range segs {
		if g.kind == segRest {
			return m
		}
		if i >= len(parts) {
			return noMatch
		}
		p := parts[i]
		switch g.kind {
		case segLiteral:
			if p != g.text {
				return noMatch
			}
		case segAny:
			l := strings.ToLower(p)
			if p == "" || strings.Contains(l, "%3f") || strings.Contains(l, "%23") || strings.Contains(l, "%3b") || strings.Contains(l, "%25") {
				return noMatch
			}
		case segVar:
			if p == "" {
				return noMatch
			}
			v := lookup(vars, g.text)
			if v == "" || p != jsEncodeURIComponent(v) || !validUTF8(v) {
				m = shapeOnly
			}
		}
	}
	if len(parts) != len(segs) {
		return noMatch
	}
	return m
}

func validUTF8(s string) bool { return strings.ToValidUTF8(s, "\uFFFD") == s }

// FuzzPatternMatch holds the matcher to refMatch on any pattern that
// compiles and any path.
func FuzzPatternMatch(f *testing.F) {
	for _, c := range []struct{ pat, path, val string }{
		{"/a/{v}/b", "/a/x/b", "x"},
		{"/a/{v}/b", "/a/y/b", "x"},
		{"/a/*/**", "/a/x%3Fy/z", ""},
		{"/**", "/", ""},
		{"/a/**", "/a", ""},
		{"/a/**", "/ab", ""},
		{"/{v}", "/a%20b", "a b"},
		{"/v1/{v}/x", "/v1//x", "x"},
	} {
		f.Add(c.pat, c.path, c.val)
	}
	f.Fuzz(func(t *testing.T, src, path, val string) {
		p, err := parsePattern(src, nil)
		if err != nil || p.shared > 0 {
			return
		}
		vars := []Var{{Name: "v", Value: val}}
		if got, want := match(path, p.segs, vars), refMatch(path, p.segs, vars); got != want {
			t.Fatalf("match(%q, %q, v=%q) = %d; reference %d", path, src, val, got, want)
		}
	})
}

// benchProfile is an OpenAI- and GitHub-like profile.
func benchProfile(b *testing.B) *Profile {
	pr, err := (*Policy)(nil).CompileProfile(ProfileSpec{
		Name:   "bench",
		Accept: []Presentation{{Kind: PresentBearer}},
		Routes: []RouteEntry{
			{Class: "openai", Origin: "https://api.openai.com", Patterns: []string{"/v1/**"}, Slot: "key", Inject: Injection{Kind: InjectBearer}},
			{Class: "git", Origin: "https://github.com", Patterns: []string{"/{owner}/{repo}/info/refs", "/{owner}/{repo}/git-upload-pack"}, Methods: []string{"GET", "POST"}, Slot: "token", Inject: Injection{Kind: InjectBasic, Username: "x-access-token"}},
			{Class: "repo", Origin: "https://api.github.com", Patterns: []string{"/repos/{owner}/*/**"}, Slot: "token", Inject: Injection{Kind: InjectBearer}},
			{Class: "rest", Origin: "https://api.github.com", Patterns: []string{"/**"}, Methods: []string{"GET"}, Slot: "token", Inject: Injection{Kind: InjectBearer}},
		},
	})
	if err != nil {
		b.Fatal(err)
	}
	return pr
}

// BenchmarkProfileClassify: route matching for a profile allocates nothing.
func BenchmarkProfileClassify(b *testing.B) {
	pr := benchProfile(b)
	vars := []Var{{Name: "owner", Value: "acme"}, {Name: "repo", Value: "widgets.git"}}
	for _, bb := range []struct {
		name string
		req  Request
	}{
		{"openai", Request{Scheme: "https", Authority: "api.openai.com", Path: "/v1/chat/completions", Method: "POST"}},
		{"git", Request{Scheme: "https", Authority: "github.com", Path: "/acme/widgets.git/git-upload-pack", Method: "POST"}},
		{"repo", Request{Scheme: "https", Authority: "api.github.com", Path: "/repos/acme/widgets/pulls?state=open", Method: "GET"}},
		{"catch_all_guarded", Request{Scheme: "https", Authority: "api.github.com", Path: "/user/repos", Method: "GET"}},
		{"deny_other_owner", Request{Scheme: "https", Authority: "api.github.com", Path: "/repos/other/widgets", Method: "GET"}},
	} {
		b.Run(bb.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				pr.Classify(bb.req, nil, vars)
			}
		})
	}
}

// TestProfileClassifyAllocs: the same, as a test that fails if matching
// starts to allocate.
func TestProfileClassifyAllocs(t *testing.T) {
	pr := benchProfile(&testing.B{})
	vars := []Var{{Name: "owner", Value: "acme"}, {Name: "repo", Value: "widgets.git"}}
	for _, req := range []Request{
		{Scheme: "https", Authority: "github.com", Path: "/acme/widgets.git/info/refs", Method: "GET"},
		{Scheme: "https", Authority: "api.github.com", Path: "/user/repos", Method: "GET"},
		{Scheme: "https", Authority: "api.github.com", Path: "/repos/other/widgets", Method: "GET"},
	} {
		if n := testing.AllocsPerRun(100, func() { pr.Classify(req, nil, vars) }); n != 0 {
			t.Errorf("Classify(%s%s) allocates %.0f times; want 0", req.Authority, req.Path, n)
		}
	}
}
