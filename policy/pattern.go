package policy

import (
	"errors"
	"fmt"
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
}

// table is a compiled route table.
type table struct {
	routes []route
}

// compileTable compiles entries; vars are the variable names a capability
// binds. It refuses a malformed pattern, an unknown variable, a table whose
// catch-all is not last in rank (it must be a single /** pattern) and a
// table with no route.
func compileTable(entries []RouteEntry, vars ...string) (*table, error) {
	if len(entries) == 0 {
		return nil, errors.New("policy: route table has no route")
	}
	t := &table{routes: make([]route, len(entries))}
	for i, e := range entries {
		r := route{RouteEntry: e}
		if e.Class == "" || e.Target >= numTargets || e.Credential == 0 || e.Guard > GuardNone || len(e.Patterns) == 0 {
			return nil, fmt.Errorf("policy: route %d (%q): class, target, credential, guard or patterns missing or out of range", i, e.Class)
		}
		for _, src := range e.Patterns {
			p, err := parsePattern(src, vars)
			if err != nil {
				return nil, fmt.Errorf("policy: route %q: pattern %q: %w", e.Class, src, err)
			}
			r.pats = append(r.pats, p)
		}
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
		for _, v := range vars {
			if v == name {
				return segment{kind: segVar, text: name}, nil
			}
		}
		return segment{}, fmt.Errorf("unknown variable {%s}", name)
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

// classify finds the route for r under the parsed targets: the exact match
// of highest precedence, unless a path of higher precedence has a route's
// shape with another value bound (then that route's shadow denies), and,
// for a catch-all, unless a guard refuses the path.
func (t *table) classify(r parsedURL, targets *[numTargets]parsedURL, vars []Var) (Route, error) {
	var best, shadow candidate
	found, shadowed := false, false
	for i := range t.routes {
		rt := &t.routes[i]
		tg := &targets[rt.Target]
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
			switch match(rest, p.segs[k:], vars) {
			case exact:
				if !found || t.outranks(c, best) {
					best, found = c, true
				}
			case shapeOnly:
				if !shadowed || t.outranks(c, shadow) {
					shadow, shadowed = c, true
				}
			}
		}
	}
	if !found {
		return Route{}, errNoRoute
	}
	if shadowed && t.outranks(shadow, best) {
		return Route{}, t.routes[shadow.route].shadowed
	}
	win := &t.routes[best.route]
	if win.catchAll {
		if err := t.guard(r, targets, win); err != nil {
			return Route{}, err
		}
	}
	return Route{Class: win.Class, Credential: win.Credential}, nil
}
