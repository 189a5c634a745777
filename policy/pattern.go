package policy

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
)

// This file compiles a route table (table.go) and matches requests against
// it. Matching allocates nothing.

type segKind uint8

const (
	segLiteral segKind = iota // a literal segment
	segVar                    // {name}
	segAny                    // *
	segRest                   // ** (last only)
)

// rank orders segment kinds for precedence: literal beats variable, which
// beats any-segment, which beats rest-of-path. A pattern that has ended
// ranks as a literal (it is exact where the other continues).
var rank = [...]int{segLiteral: 4, segVar: 3, segAny: 2, segRest: 1}

type segment struct {
	kind segKind
	text string // the literal, or the variable's name
}

// pattern is one compiled path pattern of a route.
type pattern struct {
	segs []segment
	// shared is how many leading literal segments were in brackets: the
	// base path may already end in the first k of them (see absorbed).
	shared int
	// sharedPath[k] is "/" + the first k segments joined by "/", k >= 1.
	sharedPath []string
}

// route is a RouteEntry compiled.
type route struct {
	RouteEntry
	pats     []pattern
	catchAll bool         // the only pattern is /**
	shaped   *reasonError // a catch-all refused a path shaped like this route
	shadowed *reasonError // the path has this route's shape with other values bound
	method   *reasonError // the path is this route's, the method is not
	// origin is the parsed Origin of a route that has one (fixed is true).
	origin parsedURL
	fixed  bool
}

// table is a compiled route table.
type table struct {
	routes []route
}

// compileTable compiles entries; vars are the variable names a capability
// binds (none given: any name, for profiles, whose capabilities carry the
// variables their routes need). It refuses a malformed pattern or origin, an
// unknown variable, a route without a credential and a table with no route.
func compileTable(entries []RouteEntry, vars ...string) (*table, error) {
	if len(entries) == 0 {
		return nil, errors.New("policy: route table has no route")
	}
	t := &table{routes: make([]route, len(entries))}
	for i, e := range entries {
		r := route{RouteEntry: e}
		if e.Class == "" || e.Target >= numTargets || (e.Target == 0) == (e.Origin == "") || (e.Credential == 0) == (e.Slot == "") || e.Guard > GuardNone || len(e.Patterns) == 0 {
			return nil, fmt.Errorf("policy: route %d (%q): class, target or origin (one), credential or slot (one), guard or patterns missing or out of range", i, e.Class)
		}
		if e.Origin != "" {
			o, err := parseTarget(e.Origin)
			if err != nil || o.path != "" {
				return nil, fmt.Errorf("policy: route %q: origin: want scheme://host[:port]", e.Class)
			}
			r.origin, r.fixed = o, true
		}
		for j, src := range e.Patterns {
			p, err := parsePattern(src, vars)
			if err != nil {
				return nil, &ProfileError{Field: fmt.Sprintf("routes[%d].paths[%d]", i, j), Err: err}
			}
			if p.shared > 0 && r.fixed {
				return nil, &ProfileError{Field: fmt.Sprintf("routes[%d].paths[%d]", i, j), Err: errors.New("[...] is for routes below a target's base path; an exact origin has none")}
			}
			r.pats = append(r.pats, p)
		}
		r.method = notAllowed("method not allowed on " + string(e.Class))
		r.catchAll = len(r.pats) == 1 && len(r.pats[0].segs) == 1 && r.pats[0].segs[0].kind == segRest
		r.shaped = notAllowed("path shaped like " + string(e.Class) + " on a catch-all route")
		r.shadowed = notAllowed("path shaped like " + string(e.Class) + " with another bound value")
		t.routes[i] = r
	}
	return t, nil
}

// parsePattern parses one pattern (see RouteEntry.Patterns).
func parsePattern(src string, vars []string) (pattern, error) {
	var p pattern
	s := src
	if strings.HasPrefix(s, "[") {
		end := strings.IndexByte(s, ']')
		if end < 0 {
			return p, errors.New("unclosed [")
		}
		shared := s[1:end]
		s = s[end+1:]
		if s != "" && s[0] != '/' {
			return p, errors.New("] must be followed by / or end the pattern")
		}
		segs, err := parseSegments(shared, vars)
		if err != nil {
			return p, err
		}
		for _, g := range segs {
			if g.kind != segLiteral {
				return p, errors.New("[...] holds literal segments only")
			}
		}
		p.segs = segs
		p.shared = len(segs)
		p.sharedPath = make([]string, len(segs)+1)
		for k := 1; k <= len(segs); k++ {
			p.sharedPath[k] = p.sharedPath[k-1] + "/" + segs[k-1].text
		}
	}
	if s != "" || p.shared == 0 {
		segs, err := parseSegments(s, vars)
		if err != nil {
			return p, err
		}
		p.segs = append(p.segs, segs...)
	}
	for i, g := range p.segs {
		if g.kind == segRest && i != len(p.segs)-1 {
			return p, errors.New("** may only be the last segment")
		}
	}
	return p, nil
}

// varName is what a variable may be called.
var varName = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_]{0,62}$`)

// parseSegments parses "/seg/seg…" (a non-empty string starting with '/').
func parseSegments(s string, vars []string) ([]segment, error) {
	if s == "" || s[0] != '/' {
		return nil, errors.New("a pattern starts with /")
	}
	var segs []segment
	for _, text := range strings.Split(s[1:], "/") {
		g, err := parseSegment(text, vars)
		if err != nil {
			return nil, err
		}
		segs = append(segs, g)
	}
	return segs, nil
}

func parseSegment(text string, vars []string) (segment, error) {
	switch {
	case text == "**":
		return segment{kind: segRest}, nil
	case text == "*":
		return segment{kind: segAny}, nil
	case strings.HasPrefix(text, "{") && strings.HasSuffix(text, "}"):
		name := text[1 : len(text)-1]
		if len(vars) == 0 && varName.MatchString(name) {
			return segment{kind: segVar, text: name}, nil
		}
		for _, v := range vars {
			if v == name {
				return segment{kind: segVar, text: name}, nil
			}
		}
		return segment{}, fmt.Errorf("unknown or malformed variable {%s}", name)
	case text == "" || strings.Trim(text, ".") == "":
		return segment{}, errors.New("empty or dot segment")
	}
	for i := 0; i < len(text); i++ {
		if c := text[i]; !isUnreserved(c) {
			return segment{}, fmt.Errorf("literal segment %q: only letters, digits and - . _ ~ may appear", text)
		}
	}
	return segment{kind: segLiteral, text: text}, nil
}

// absorbed returns how many of the pattern's bracketed segments the base
// path already ends in: the largest k <= shared with base ending in
// sharedPath[k], compared exactly.
func absorbed[S string | []byte](p *pattern, base S) int {
	for k := p.shared; k > 0; k-- {
		if s := p.sharedPath[k]; len(base) >= len(s) && string(base[len(base)-len(s):]) == s {
			return k
		}
	}
	return 0
}

// collapsed reports whether base ends in the whole bracket of one of r's
// patterns, so that only those patterns apply.
func collapsed[S string | []byte](r *route, base S) bool {
	for i := range r.pats {
		if p := &r.pats[i]; p.shared > 0 && absorbed(p, base) == p.shared {
			return true
		}
	}
	return false
}

// Var binds a pattern variable to a value.
type Var struct {
	Name, Value string
}

func lookup(vars []Var, name string) string {
	for _, v := range vars {
		if v.Name == name {
			return v.Value
		}
	}
	return ""
}

type matchKind uint8

const (
	noMatch   matchKind = iota
	shapeOnly           // every segment matches, but a bound variable differs
	exact
)

// match matches rest (the path after the base path: empty or starting with
// '/') against segs.
func match(rest string, segs []segment, vars []Var) matchKind {
	m := exact
	for _, g := range segs {
		if g.kind == segRest {
			if rest == "" || rest[0] == '/' {
				return m
			}
			return noMatch
		}
		if rest == "" || rest[0] != '/' {
			return noMatch
		}
		var seg string
		seg, rest = cutSegment(rest[1:])
		switch g.kind {
		case segLiteral:
			if seg != g.text {
				return noMatch
			}
		case segAny:
			if seg == "" || hasTerminatorEscape(seg) {
				return noMatch
			}
		case segVar:
			if seg == "" {
				return noMatch
			}
			if !matchURIComponent(seg, lookup(vars, g.text)) {
				m = shapeOnly
			}
		}
	}
	if rest != "" {
		return noMatch
	}
	return m
}

// candidate is a route pattern that matched, with the base path it
// resolved against.
type candidate struct {
	route, pat int
	k          int // bracketed segments absorbed by base
	base       string
}

// resolvedKinds yields, for the pattern resolved against its base (the
// base's segments are literals), the number of leading literal segments
// and the segments after them.
func (t *table) resolved(c candidate) (literals int, tail []segment) {
	segs := t.routes[c.route].pats[c.pat].segs[c.k:]
	literals = strings.Count(c.base, "/")
	for len(segs) > 0 && segs[0].kind == segLiteral {
		literals++
		segs = segs[1:]
	}
	return literals, segs
}

// outranks reports whether a takes precedence over b for a request both
// match (docs/decisions.md, section 4.5): the longer literal prefix wins;
// then, segment by segment, literal beats {var}, which beats *, which beats
// **. Equal ones do not outrank each other (the table's order decides).
func (t *table) outranks(a, b candidate) bool {
	la, ta := t.resolved(a)
	lb, tb := t.resolved(b)
	if la != lb {
		return la > lb
	}
	for i := 0; i < len(ta) || i < len(tb); i++ {
		ra, rb := rank[segLiteral], rank[segLiteral] // an ended pattern ranks as a literal
		if i < len(ta) {
			ra = rank[ta[i].kind]
		}
		if i < len(tb) {
			rb = rank[tb[i].kind]
		}
		if ra != rb {
			return ra > rb
		}
	}
	return false
}

// classify finds the route for r (with method) under the parsed targets
// (nil for a table whose routes all have exact origins): the exact match of
// highest precedence, unless a path of higher precedence has a route's shape
// with another value bound, or is a route's with another method (then that
// route denies), and, for a catch-all, unless a guard refuses the path.
func (t *table) classify(r parsedURL, method string, targets *[numTargets]parsedURL, vars []Var) (Route, error) {
	var best, shadow candidate
	var shadowErr *reasonError
	found := false
	for i := range t.routes {
		rt := &t.routes[i]
		tg := &rt.origin
		if !rt.fixed {
			if targets == nil {
				continue
			}
			tg = &targets[rt.Target]
		}
		if !r.origin.equal(tg.origin) || !strings.HasPrefix(r.path, tg.path) {
			continue
		}
		rest := r.path[len(tg.path):]
		collapsed := collapsed(rt, tg.path)
		for j := range rt.pats {
			p := &rt.pats[j]
			k := absorbed(p, tg.path)
			if collapsed && k != p.shared {
				continue
			}
			c := candidate{route: i, pat: j, k: k, base: tg.path}
			m := match(rest, p.segs[k:], vars)
			if m == exact && len(rt.Methods) > 0 && !containsString(rt.Methods, method) {
				if shadowErr == nil || t.outranks(c, shadow) {
					shadow, shadowErr = c, rt.method
				}
				continue
			}
			switch m {
			case exact:
				if !found || t.outranks(c, best) {
					best, found = c, true
				}
			case shapeOnly:
				if shadowErr == nil || t.outranks(c, shadow) {
					shadow, shadowErr = c, rt.shadowed
				}
			}
		}
	}
	if shadowErr != nil && (!found || t.outranks(shadow, best)) {
		if !found && shadowErr != t.routes[shadow.route].method {
			return Route{}, errNoRoute
		}
		return Route{}, shadowErr
	}
	if !found {
		return Route{}, errNoRoute
	}
	win := &t.routes[best.route]
	if win.catchAll {
		if err := t.guard(r, targets, win); err != nil {
			return Route{}, err
		}
	}
	return Route{Class: win.Class, Credential: win.Credential, Slot: win.Slot, Inject: win.Inject}, nil
}

func containsString(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// checkAmbiguity refuses a table in which two routes on the same exact
// origin could take the same request with equal precedence: patterns of the
// same shape (the same kinds at every position, the same literals where both
// are literal) whose methods overlap. Routes below capability targets are
// compared only when they name the same target.
func (t *table) checkAmbiguity() error {
	for i := range t.routes {
		for j := i + 1; j < len(t.routes); j++ {
			a, b := &t.routes[i], &t.routes[j]
			if a.fixed != b.fixed || (a.fixed && !a.origin.origin.equal(b.origin.origin)) || (!a.fixed && a.Target != b.Target) {
				continue
			}
			if len(a.Methods) > 0 && len(b.Methods) > 0 && !slicesOverlap(a.Methods, b.Methods) {
				continue
			}
			for pi := range a.pats {
				for pj := range b.pats {
					if sameShape(a.pats[pi].segs, b.pats[pj].segs) {
						return &ProfileError{Field: fmt.Sprintf("routes[%d].paths[%d]", j, pj),
							Err: fmt.Errorf("takes the same requests as routes[%d].paths[%d] (%s) with equal precedence", i, pi, a.Class)}
					}
				}
			}
		}
	}
	return nil
}

func sameShape(a, b []segment) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].kind != b[i].kind || (a[i].kind == segLiteral && a[i].text != b[i].text) {
			return false
		}
	}
	return true
}

func slicesOverlap(a, b []string) bool {
	for _, v := range a {
		if containsString(b, v) {
			return true
		}
	}
	return false
}
