package policy

import (
	"net/netip"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

var shapeNames = func() []string {
	var names []string
	for n := range shapes {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}()

// fuzzTargets picks a shape and, when the high bit of sel is set, replaces
// one of its targets with the fuzzed string.
func fuzzTargets(sel uint8, target string) Targets {
	t := shapes[shapeNames[int(sel&0x0f)%len(shapeNames)]]
	if sel&0x80 != 0 {
		switch (sel >> 4 & 0x07) % 3 {
		case 0:
			t.BackendBaseURL = target
		case 1:
			t.ProviderBaseURL = target
		case 2:
			t.SessionIngestBaseURL = target
		}
	}
	return t
}

func FuzzClassify(f *testing.F) {
	for i, tc := range slices.Concat(ruleCases, attackCases) {
		scheme := tc.scheme
		if scheme == "" {
			scheme = "https"
		}
		sel := uint8(slices.Index(shapeNames, tc.shape))
		sess := tc.session
		if sess == "" {
			sess = sessionID
		}
		f.Add(scheme, tc.authority, tc.path, sess, sel, "")
		// The same request against a fuzzed copy of one of its own targets.
		t := shapes[tc.shape]
		target := []string{t.BackendBaseURL, t.ProviderBaseURL, t.SessionIngestBaseURL}[i%3]
		f.Add(scheme, tc.authority, tc.path, sess, sel|0x80|uint8(i%3)<<4, target)
	}
	f.Add("https", "app.example.com", "/api/session/x/export", "x", uint8(0x80), "https://app.example.com/%2e%2e")
	f.Add("https", "app.example.com", "/a/b", "s", uint8(0x80), "https://APP.example.com:443/a/")
	f.Add("http", "[::1]:80", "/", "s", uint8(0x90), "http://[0::1]/")

	f.Fuzz(func(t *testing.T, scheme, authority, path, sess string, sel uint8, target string) {
		targets := fuzzTargets(sel, target)
		req := Request{Scheme: scheme, Authority: authority, Path: path}
		r, err := Classify(req, targets, sess)
		// Targets prepared once classify the same.
		if pr, perr := defaultPolicy.ClassifyPrepared(req, defaultPolicy.Prepare(targets), sess); pr != r || !sameError(perr, err) {
			t.Fatalf("ClassifyPrepared(%+v) = %v, %v; Classify = %v, %v", req, pr, perr, r, err)
		}
		if err != nil {
			if r != (Route{}) {
				t.Fatalf("Classify(%+v) = %v, %v; want zero Route on error", req, r, err)
			}
			return
		}
		checkAllowInvariants(t, req, targets, sess, r)
	})
}

// ingestShapedRE matches a loose path below the ingest base that some
// router may send to a session-ingest route: a format suffix ('.' and
// anything) may follow the action.
var ingestShapedRE = regexp.MustCompile(`^/api/session/[^/]+/(export|import|ingest)([/?#;.]|$)`)

// checkAllowInvariants re-derives, with net/url and independent code, what
// an allow promises.
func checkAllowInvariants(t *testing.T, req Request, targets Targets, sess string, r Route) {
	t.Helper()
	var target string
	switch r.Class {
	case ProviderModel:
		target = targets.ProviderBaseURL
	case OrganizationModels, BackendAPI:
		target = targets.BackendBaseURL
	case SessionIngest:
		target = targets.SessionIngestBaseURL
	default:
		t.Fatalf("Classify(%+v) = unknown class %q", req, r.Class)
	}
	if r.Credential != credentialFor(r.Class) {
		t.Fatalf("Classify(%+v) = %v; wrong credential", req, r)
	}
	ru, err := url.Parse(req.Scheme + "://" + req.Authority + "/")
	if err != nil {
		t.Fatalf("allowed request %+v does not parse: %v", req, err)
	}
	tu, err := url.Parse(target)
	if err != nil {
		t.Fatalf("allowed with target %q that does not parse: %v", target, err)
	}
	if ro, to := refOrigin(ru), refOrigin(tu); ro != to {
		t.Fatalf("Classify(%+v) = %v; origin %q != target origin %q", req, r, ro, to)
	}
	if ro := refOrigin(ru); strings.HasPrefix(ro, "http://") && !strings.HasPrefix(ro, "http://localhost:") &&
		!strings.HasPrefix(ro, "http://127.0.0.1:") && !strings.HasPrefix(ro, "http://host.docker.internal:") {
		t.Fatalf("Classify(%+v) = %v; plain http to %q", req, r, ro)
	}
	if ru.User != nil || tu.User != nil {
		t.Fatalf("Classify(%+v) = %v; userinfo", req, r)
	}
	path, _, _ := strings.Cut(req.Path, "?")
	rawTarget := target[strings.Index(target, "://")+3:]
	base := ""
	if i := strings.IndexByte(rawTarget, '/'); i >= 0 {
		base = strings.TrimRight(rawTarget[i:], "/")
	}
	if path != base && !strings.HasPrefix(path, base+"/") {
		t.Fatalf("Classify(%+v) = %v; path not within base %q", req, r, base)
	}
	// Decode fully: no decoding may fail, add a separator or leave a dot
	// segment, a backslash or an escape.
	dec := path
	for range 10 {
		next, err := url.PathUnescape(dec)
		if err != nil {
			t.Fatalf("Classify(%+v) = %v; path fails to decode: %v", req, r, err)
		}
		if next == dec {
			break
		}
		dec = next
	}
	if strings.Count(dec, "/") != strings.Count(path, "/") || strings.ContainsAny(dec, "\\%") {
		t.Fatalf("Classify(%+v) = %v; decoded path %q has an encoded separator or escape", req, r, dec)
	}
	for _, seg := range strings.Split(dec, "/") {
		if seg != "" && strings.Trim(seg, ".") == "" {
			t.Fatalf("Classify(%+v) = %v; decoded path %q has a dot segment", req, r, dec)
		}
	}
	switch r.Class {
	case SessionIngest:
		ok := false
		for _, action := range []string{"export", "import", "ingest"} {
			ok = ok || path == base+"/api/session/"+jsEncodeURIComponent(sess)+"/"+action
		}
		if !ok || sess == "" {
			t.Fatalf("Classify(%+v) = %v; not the bound session %q", req, r, sess)
		}
	case OrganizationModels:
		// The organization segment must not decode to something an upstream
		// would split at.
		rest := strings.TrimPrefix(path, base)
		rest = strings.TrimPrefix(strings.TrimPrefix(rest, "/api"), "/organizations/")
		seg, _, _ := strings.Cut(rest, "/")
		if strings.ContainsAny(refLoose(seg), "?#;") {
			t.Fatalf("Classify(%+v) = %v; organization segment %q hides a terminator", req, r, seg)
		}
	case BackendAPI:
		// The exclusions, in the loosest form any upstream router might use:
		// fully decoded, Unicode case-insensitive, '?', '#' and ';' ending a
		// segment, '.' starting a format suffix after an excluded name, on
		// any origin reaching the same server.
		lp := refLoose(path)
		if ou, err := url.Parse(targets.SessionIngestBaseURL); err == nil && refSameServer(ou, ru) {
			lbase := refLoose(strings.TrimRight(ou.EscapedPath(), "/"))
			if strings.HasPrefix(lp, lbase) && ingestShapedRE.MatchString(lp[len(lbase):]) {
				t.Fatalf("Classify(%+v) = %v; session-ingest-shaped path on a shared server", req, r)
			}
		}
		bases := []string{base}
		if pu, err := url.Parse(targets.ProviderBaseURL); err == nil && refSameServer(pu, ru) {
			bases = append(bases, strings.TrimRight(pu.EscapedPath(), "/"))
		}
		for _, b := range bases {
			for _, p := range slices.Concat(refProviderPrefixes(b), refProviderPrefixes(refLoose(b))) {
				p = refLoose(p)
				if lp == p || strings.HasPrefix(lp, p) && strings.ContainsRune("/?#;.", rune(lp[len(p)])) {
					t.Fatalf("Classify(%+v) = %v; provider-shaped path %q on the backend", req, r, p)
				}
			}
		}
	}
}

// refLoose decodes p fully and folds it the way the loosest case-insensitive
// router would: every rune that some Unicode case mapping or folding takes to
// an ASCII letter becomes that letter, lower-case.
func refLoose(p string) string {
	for range 10 {
		next, err := url.PathUnescape(p)
		if err != nil || next == p {
			break
		}
		p = next
	}
	return strings.Map(func(r rune) rune {
		cands := []rune{r, unicode.ToUpper(r), unicode.ToLower(r)}
		for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
			cands = append(cands, f)
		}
		for _, c := range cands {
			if c < utf8.RuneSelf && unicode.IsLetter(c) {
				return unicode.ToLower(c)
			}
		}
		return r
	}, p)
}

// refSameServer reports whether two URLs reach the same host and port.
func refSameServer(a, b *url.URL) bool {
	return refServer(a) == refServer(b)
}

func refServer(u *url.URL) string {
	h := strings.TrimSuffix(strings.ToLower(u.Hostname()), ".")
	if ip, err := netip.ParseAddr(h); err == nil {
		h = ip.Unmap().String()
	}
	port := u.Port()
	if port == "" {
		port = map[string]string{"https": "443", "http": "80"}[strings.ToLower(u.Scheme)]
	}
	return h + ":" + port
}

// refProviderPrefixes derives the provider prefixes (docs/decisions.md, 4.5)
// from base.
func refProviderPrefixes(base string) []string {
	switch {
	case strings.HasSuffix(base, "/api/openrouter"), strings.HasSuffix(base, "/api/gateway"):
		return []string{base}
	case strings.HasSuffix(base, "/api"):
		return []string{base + "/openrouter", base + "/gateway"}
	}
	return []string{base + "/api/openrouter", base + "/api/gateway"}
}

// refOrigin serialises an origin the way a browser would.
func refOrigin(u *url.URL) string {
	scheme := strings.ToLower(u.Scheme)
	h := strings.ToLower(u.Hostname())
	if ip, err := netip.ParseAddr(h); err == nil {
		h = ip.String()
	}
	port := u.Port()
	if (scheme == "https" && port == "443") || (scheme == "http" && port == "80") {
		port = ""
	}
	return scheme + "://" + h + ":" + port
}

// jsEncodeURIComponent is a reference encodeURIComponent for valid UTF-8.
func jsEncodeURIComponent(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("-_.!~*'()", c) >= 0 {
			b.WriteByte(c)
			continue
		}
		b.WriteString("%" + strings.ToUpper(string("0123456789abcdef"[c>>4])+string("0123456789abcdef"[c&15])))
	}
	return b.String()
}

func TestJSEncodeURIComponent(t *testing.T) {
	// Expected values from node -p 'encodeURIComponent(...)'.
	for in, want := range map[string]string{
		"sess-1":        "sess-1",
		"a b/c?d#e":     "a%20b%2Fc%3Fd%23e",
		"ü€😀":           "%C3%BC%E2%82%AC%F0%9F%98%80",
		"!~*'()":        "!~*'()",
		"a+b:c@d,e;f=g": "a%2Bb%3Ac%40d%2Ce%3Bf%3Dg",
	} {
		if got := jsEncodeURIComponent(in); got != want {
			t.Errorf("jsEncodeURIComponent(%q) = %q; want %q", in, got, want)
		}
		if !matchURIComponent(want, in) {
			t.Errorf("matchURIComponent(%q, %q) = false; want true", want, in)
		}
	}
	if matchURIComponent("%FF", "\xff") || matchURIComponent("", "") {
		t.Errorf("matchURIComponent accepted an invalid or empty id")
	}
}

func sameError(a, b error) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Error() == b.Error()
}
