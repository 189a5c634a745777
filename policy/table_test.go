package policy

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
)

// oracleOutcome classifies with the old classifier (oracle_test.go).
func oracleOutcome(req Request, targets Targets, sess string) (Route, error) {
	p := defaultPolicy
	pt, err := p.parseTargets(targets, ErrInvalidUpstreamURL)
	r, rerr := p.parseRequest(req)
	if rerr != nil {
		return Route{}, rerr
	}
	if err != nil {
		return Route{}, err
	}
	return oldClassify(r, oldTargets{backend: pt[TargetBackend], provider: pt[TargetProvider], ingest: pt[TargetSessionIngest]}, sess)
}

// routesOfSeveralTargets reports whether routes on two different targets
// both have the request's shape: the one case where the table's precedence
// (the more specific route wins) and the old first-match order may differ,
// by design (docs/decisions.md, section 4.5).
func routesOfSeveralTargets(req Request, targets Targets, sess string) bool {
	p := defaultPolicy
	pt, err := p.parseTargets(targets, ErrInvalidUpstreamURL)
	r, rerr := p.parseRequest(req)
	if err != nil || rerr != nil {
		return false
	}
	vars := []Var{{Name: kiloVar, Value: sess}}
	seen := map[Target]bool{}
	for _, rt := range kiloTable.routes {
		tg := pt[rt.Target]
		if !r.origin.equal(tg.origin) || !strings.HasPrefix(r.path, tg.path) {
			continue
		}
		for i := range rt.pats {
			if match(r.path[len(tg.path):], rt.pats[i].segs[absorbed(&rt.pats[i], tg.path):], vars) != noMatch {
				seen[rt.Target] = true
			}
		}
	}
	return len(seen) > 1
}

// checkOracle fails unless the table and the old classifier agree on req
// (same route, or the same reason slug), outside routesOfSeveralTargets.
func checkOracle(t *testing.T, req Request, targets Targets, sess string) {
	t.Helper()
	got, gerr := Classify(req, targets, sess)
	want, werr := oracleOutcome(req, targets, sess)
	if outcome(got, gerr) == outcome(want, werr) && got == want {
		return
	}
	if routesOfSeveralTargets(req, targets, sess) {
		return
	}
	t.Fatalf("Classify(%+v, %+v, %q) = %v, %v; old classifier: %v, %v", req, targets, sess, got, gerr, want, werr)
}

// TestTableMatchesOracle runs every rule and attack case against every
// target shape, through the table and the old classifier.
func TestTableMatchesOracle(t *testing.T) {
	n := 0
	for _, tc := range slices.Concat(ruleCases, attackCases) {
		for _, name := range shapeNames {
			scheme := tc.scheme
			if scheme == "" {
				scheme = "https"
			}
			for _, sess := range []string{sessionID, "sess-2", tc.session} {
				req := Request{Scheme: scheme, Authority: tc.authority, Path: tc.path}
				checkOracle(t, req, shapes[name], sess)
				n++
			}
		}
	}
	t.Logf("%d classifications agree", n)
}

func FuzzTableMatchesOracle(f *testing.F) {
	for i, tc := range slices.Concat(ruleCases, attackCases) {
		sel := uint8(slices.Index(shapeNames, tc.shape))
		f.Add(tc.scheme, tc.authority, tc.path, tc.session, sel, "")
		t := shapes[tc.shape]
		target := []string{t.BackendBaseURL, t.ProviderBaseURL, t.SessionIngestBaseURL}[i%3]
		f.Add(tc.scheme, tc.authority, tc.path, tc.session, sel|0x80|uint8(i%3)<<4, target)
	}
	f.Add("https", "app.example.com", "/API/openrouter.json", "s", uint8(0x80), "https://app.example.com/API")
	f.Fuzz(func(t *testing.T, scheme, authority, path, sess string, sel uint8, target string) {
		if scheme == "" {
			scheme = "https"
		}
		checkOracle(t, Request{Scheme: scheme, Authority: authority, Path: path}, fuzzTargets(sel, target), sess)
	})
}

// TestPrecedenceAcrossTargets pins the one deliberate difference from the
// old first-match order: when targets nest, the more specific route wins,
// and a path with the shape of a more specific route but another bound
// value is denied instead of falling to a less specific route.
func TestPrecedenceAcrossTargets(t *testing.T) {
	nested := Targets{
		BackendBaseURL:       "https://api.example.com",
		ProviderBaseURL:      "https://app.example.com",
		SessionIngestBaseURL: "https://app.example.com/api/openrouter/ingest",
	}
	for _, tc := range []struct {
		path, want string
		overlap    bool
	}{
		{"/api/openrouter/ingest/api/session/sess-1/export", "session_ingest", true},
		{"/api/openrouter/ingest/api/session/sess-2/export", denied, true},
		{"/api/openrouter/ingest/other", "provider_model", false},
	} {
		req := Request{Scheme: "https", Authority: "app.example.com", Path: tc.path}
		r, err := Classify(req, nested, sessionID)
		if got := outcome(r, err); got != tc.want {
			t.Errorf("Classify(%q) = %v; want %v", tc.path, got, tc.want)
		}
		if got := routesOfSeveralTargets(req, nested, sessionID); got != tc.overlap {
			t.Errorf("routesOfSeveralTargets(%q) = %v; want %v", tc.path, got, tc.overlap)
		}
	}
}

// instantiate writes a concrete path for segs: literals as they are,
// variables from val, * as "x", ** as nothing.
func instantiate(segs []segment, val string) string {
	var b strings.Builder
	for _, g := range segs {
		switch g.kind {
		case segLiteral:
			b.WriteString("/" + g.text)
		case segVar:
			b.WriteString("/" + val)
		case segAny:
			b.WriteString("/x")
		}
	}
	return b.String()
}

// TestShadowingEveryRoute proves the shadowing rule for every route of the
// table and every target shape: a path with the shape of a route whose
// bound variables do not match is denied, and never falls back to a less
// specific route; with the bound value it is that route.
func TestShadowingEveryRoute(t *testing.T) {
	checked := 0
	for _, rt := range kiloTable.routes {
		for pi, p := range rt.pats {
			for _, name := range shapeNames {
				targets := shapes[name]
				pt, err := defaultPolicy.parseTargets(targets, ErrInvalidUpstreamURL)
				if err != nil {
					t.Fatal(err)
				}
				tg := pt[rt.Target]
				if collapsed(&rt, tg.path) && absorbed(&p, tg.path) != p.shared {
					continue // this pattern does not apply below this base
				}
				rest := instantiate(p.segs[absorbed(&p, tg.path):], sessionID)
				if rest == "" {
					rest = "/"
				}
				authority := tg.host.name
				if tg.host.ip6.IsValid() {
					authority = "[" + tg.host.ip6.String() + "]"
				}
				if tg.port != 0 {
					authority += fmt.Sprintf(":%d", tg.port)
				}
				scheme := map[bool]string{true: "https", false: "http"}[tg.https]
				own := Request{Scheme: scheme, Authority: authority, Path: tg.path + rest}
				if r, err := Classify(own, targets, sessionID); err != nil || r.Class != rt.Class {
					t.Errorf("%s/%s pattern %d: Classify(%q) = %v, %v; want %s", name, rt.Class, pi, own.Path, r, err, rt.Class)
				}
				hasVar := slices.ContainsFunc(p.segs, func(g segment) bool { return g.kind == segVar })
				if !hasVar {
					continue
				}
				other := own
				other.Path = tg.path + instantiate(p.segs[absorbed(&p, tg.path):], "other-value")
				r, err := Classify(other, targets, sessionID)
				if !errors.Is(err, ErrUpstreamNotAllowed) {
					t.Errorf("%s/%s: Classify(%q) with another bound value = %v, %v; want upstream_not_allowed", name, rt.Class, other.Path, r, err)
				}
				checked++
			}
		}
	}
	if checked == 0 {
		t.Fatal("no route with a variable was checked")
	}
}

// TestNewRouteNeedsOnlyItsEntry adds a route class to a copy of the table and
// shows that the catch-all's guard covers it with nothing else edited.
func TestNewRouteNeedsOnlyItsEntry(t *testing.T) {
	entries := append(slices.Clone(kiloRoutes), RouteEntry{
		Class: "admin_export", Credential: CredentialProvider, Target: TargetBackend,
		Patterns: []string{"/admin/{kiloSessionId}/dump"},
	})
	tb, err := compileTable(entries, kiloVar)
	if err != nil {
		t.Fatal(err)
	}
	pt, err := defaultPolicy.parseTargets(shapes["shared"], ErrInvalidUpstreamURL)
	if err != nil {
		t.Fatal(err)
	}
	vars := []Var{{Name: kiloVar, Value: sessionID}}
	for path, want := range map[string]string{
		"/admin/sess-1/dump":      "admin_export",
		"/admin/sess-2/dump":      denied, // shadowed
		"/ADMIN/sess-2/Dump.json": denied, // the catch-all's guard, derived
		"/admin/sess-1/other":     "backend_api",
	} {
		r, err := parseParts("https", "app.example.com", path)
		if err != nil {
			t.Fatal(err)
		}
		route, err := tb.classify(r, "", (*[numTargets]parsedURL)(&pt), vars)
		if got := outcome(route, err); got != want {
			t.Errorf("classify(%q) = %s; want %s", path, got, want)
		}
	}
}

func TestCompileTableRefuses(t *testing.T) {
	for _, p := range []string{
		"", "api", "/a/**/b", "[/a", "[/a]b", "[/{kiloSessionId}]/x", "/{other}", "/a//b", "/a/../b", "/a%2fb", "/a b",
	} {
		e := RouteEntry{Class: "x", Credential: CredentialUser, Target: TargetBackend, Patterns: []string{p}}
		if _, err := compileTable([]RouteEntry{e}, kiloVar); err == nil {
			t.Errorf("compileTable(pattern %q) = nil error; want an error", p)
		}
	}
	if _, err := compileTable(nil); err == nil {
		t.Error("compileTable(nil) = nil error")
	}
	bad := RouteEntry{Class: "x", Credential: CredentialUser, Target: numTargets, Patterns: []string{"/**"}}
	if _, err := compileTable([]RouteEntry{bad}); err == nil {
		t.Error("compileTable(unknown target) = nil error")
	}
}

// routeTableMarkdown renders the table as docs/decisions.md shows it.
func routeTableMarkdown(entries []RouteEntry) string {
	var b strings.Builder
	b.WriteString("| class | credential | target | patterns | guard |\n|---|---|---|---|---|\n")
	cred := map[Credential]string{CredentialUser: "user", CredentialProvider: "provider"}
	guard := map[Guard]string{GuardOwnTarget: "own target", GuardEveryTarget: "every target", GuardNone: "none"}
	for _, e := range entries {
		pats := make([]string, len(e.Patterns))
		for i, p := range e.Patterns {
			pats[i] = "`" + p + "`"
		}
		g := guard[e.Guard]
		if slices.Equal(e.Patterns, []string{"/**"}) {
			g = "— (catch-all)"
		}
		fmt.Fprintf(&b, "| `%s` | %s | `%s` | %s | %s |\n", e.Class, cred[e.Credential], e.Target, strings.Join(pats, "<br>"), g)
	}
	return b.String()
}

// TestDocsRouteTable keeps the route table of docs/decisions.md equal to
// kiloRoutes.
func TestDocsRouteTable(t *testing.T) {
	doc, err := os.ReadFile("../docs/decisions.md")
	if err != nil {
		t.Fatal(err)
	}
	want := routeTableMarkdown(kiloRoutes)
	if !strings.Contains(string(doc), want) {
		t.Errorf("docs/decisions.md, section 4.5, must hold the route table exactly as policy/table.go declares it:\n%s", want)
	}
}
