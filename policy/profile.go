package policy

import (
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"time"
)

// This file is the route language operators write (docs/profiles.md): a
// profile names where a sandbox may present its capability and the routes
// the capability opens, each with its origin, path patterns, methods,
// credential slot and how the credential is injected. A profile compiles
// to the same table the kka1 routes use (table.go), so matching,
// precedence, shadowing and the catch-all's guards are the same code.

// InjectKind says how a route's credential goes upstream.
type InjectKind uint8

// Injection kinds.
const (
	// InjectBearer sets authorization: Bearer <secret>.
	InjectBearer InjectKind = iota + 1
	// InjectHeader sets the named header to the secret.
	InjectHeader
	// InjectBasic sets authorization: Basic base64(<username>:<secret>).
	InjectBasic
)

// Injection is how a route's credential is set upstream.
type Injection struct {
	Kind InjectKind
	// Header is the header InjectHeader sets, lower-case.
	Header string
	// Username is InjectBasic's fixed user name.
	Username string
}

// HeaderName is the header the injection sets.
func (i Injection) HeaderName() string { return namedOrAuthorization(i.Kind == InjectHeader, i.Header) }

// namedOrAuthorization is header when a kind names its own header, else
// authorization, where bearer and basic go.
func namedOrAuthorization(named bool, header string) string {
	if named {
		return header
	}
	return "authorization"
}

// PresentKind says where a sandbox may present its capability.
type PresentKind uint8

// Presentation kinds.
const (
	// PresentBearer: authorization: Bearer <capability>.
	PresentBearer PresentKind = iota + 1
	// PresentBasic: authorization: Basic with the capability as the
	// password and any user name (git sends it after a 401 challenge).
	PresentBasic
	// PresentHeader: the capability alone in a named header.
	PresentHeader
)

// Presentation is one place a capability may arrive in.
type Presentation struct {
	Kind PresentKind
	// Header is PresentHeader's header name, lower-case.
	Header string
}

// HeaderName is the header the capability arrives in.
func (p Presentation) HeaderName() string {
	return namedOrAuthorization(p.Kind == PresentHeader, p.Header)
}

// DefaultMaxLifetime is a profile's longest capability lifetime unless the
// profile sets a shorter one; no profile may set a longer one.
const DefaultMaxLifetime = 4 * time.Hour

// ProfileSpec is a profile as an operator declares it, before compiling.
type ProfileSpec struct {
	Name string
	// Accept lists where the capability may be presented.
	Accept []Presentation
	// MaxLifetime bounds the capabilities issued for the profile; 0 means
	// DefaultMaxLifetime.
	MaxLifetime time.Duration
	Routes      []RouteEntry
}

// Profile is a compiled profile: immutable and safe for concurrent use.
type Profile struct {
	name        string
	accept      []Presentation
	maxLifetime time.Duration
	table       *table
	vars        []string // every variable the routes bind, sorted
	slots       []string // every credential slot the routes use, sorted
	policy      *Policy
}

// ProfileError is a compile error that names the field at fault, as a path
// such as "routes[2].paths[0]", so that a loader can point at the line.
type ProfileError struct {
	Field string
	Err   error
}

func (e *ProfileError) Error() string { return e.Field + ": " + e.Err.Error() }
func (e *ProfileError) Unwrap() error { return e.Err }

func fieldErr(field string, format string, args ...any) error {
	return &ProfileError{Field: field, Err: fmt.Errorf(format, args...)}
}

var (
	profileName = regexp.MustCompile(`^[a-z][a-z0-9_-]{0,62}$`)
	className   = regexp.MustCompile(`^[a-z][a-z0-9_]{0,62}$`)
	slotName    = regexp.MustCompile(`^[a-z][a-z0-9_-]{0,62}$`)
	userName    = regexp.MustCompile(`^[A-Za-z0-9._~-]{1,64}$`)
)

// CompileProfile checks spec and compiles it with policy p (nil: the
// default). Every route's origin passes the target rules (section 4.4 of
// docs/decisions.md) and every pattern the route language's; two routes
// that could take the same request with equal precedence are refused.
func (p *Policy) CompileProfile(spec ProfileSpec) (*Profile, error) {
	p = p.orDefault()
	if !profileName.MatchString(spec.Name) {
		return nil, fieldErr("name", "want 1 to 63 of a-z, 0-9, '-' and '_', starting with a letter")
	}
	pr := &Profile{name: spec.Name, maxLifetime: spec.MaxLifetime, policy: p}
	if err := compileAccept(pr, spec.Accept); err != nil {
		return nil, err
	}
	switch {
	case spec.MaxLifetime == 0:
		pr.maxLifetime = DefaultMaxLifetime
	case spec.MaxLifetime < time.Second || spec.MaxLifetime > DefaultMaxLifetime:
		return nil, fieldErr("maxLifetime", "want 1s to %v, got %v", DefaultMaxLifetime, spec.MaxLifetime)
	}
	if len(spec.Routes) == 0 {
		return nil, fieldErr("routes", "a profile needs at least one route")
	}
	for i, r := range spec.Routes {
		if err := p.checkProfileRoute(r, fmt.Sprintf("routes[%d]", i)); err != nil {
			return nil, err
		}
	}
	t, err := compileTable(spec.Routes)
	if err != nil {
		var fe *ProfileError
		if errors.As(err, &fe) {
			return nil, err
		}
		return nil, &ProfileError{Field: "routes", Err: err}
	}
	if err := t.checkAmbiguity(); err != nil {
		return nil, err
	}
	pr.table = t
	for _, r := range t.routes {
		pr.slots = append(pr.slots, r.Slot)
		for _, pt := range r.pats {
			for _, g := range pt.segs {
				if g.kind == segVar {
					pr.vars = append(pr.vars, g.text)
				}
			}
		}
	}
	slices.Sort(pr.slots)
	pr.slots = slices.Compact(pr.slots)
	slices.Sort(pr.vars)
	pr.vars = slices.Compact(pr.vars)
	return pr, nil
}

func compileAccept(pr *Profile, accept []Presentation) error {
	if len(accept) == 0 {
		return fieldErr("accept", "name at least one place the capability may arrive in")
	}
	for i, a := range accept {
		field := fmt.Sprintf("accept[%d]", i)
		switch a.Kind {
		case PresentBearer, PresentBasic:
			if a.Header != "" {
				return fieldErr(field, "bearer and basic are read from authorization; a header name goes with header")
			}
		case PresentHeader:
			h := strings.ToLower(a.Header)
			if err := checkCapabilityHeader(h); err != nil {
				return &ProfileError{Field: field + ".header", Err: err}
			}
			a.Header = h
		default:
			return fieldErr(field, "want bearer, basic or header")
		}
		for _, b := range pr.accept {
			if b == a {
				return fieldErr(field, "named twice")
			}
		}
		pr.accept = append(pr.accept, a)
	}
	return nil
}

// checkProfileRoute applies the rules a profile route has beyond the
// table's: a class name, an exact origin that passes the target rules, a
// credential slot, an injection, known methods.
func (p *Policy) checkProfileRoute(r RouteEntry, field string) error {
	if !className.MatchString(string(r.Class)) {
		return fieldErr(field+".class", "want 1 to 63 of a-z, 0-9 and '_', starting with a letter")
	}
	switch {
	case r.Origin != "" && r.Target != 0:
		return fieldErr(field+".origin", "an exact origin or a target, not both")
	case r.Origin == "" && (r.Target == 0 || r.Target >= numTargets):
		return fieldErr(field+".origin", "want https://host[:port], or target: %s, %s or %s", TargetBackend, TargetProvider, TargetSessionIngest)
	case r.Origin != "":
		if err := p.checkOrigin(r.Origin); err != nil {
			return &ProfileError{Field: field + ".origin", Err: err}
		}
	}
	if !slotName.MatchString(r.Slot) {
		return fieldErr(field+".credential", "want a slot name: 1 to 63 of a-z, 0-9, '-' and '_'")
	}
	switch r.Inject.Kind {
	case InjectBearer:
	case InjectHeader:
		if err := checkInjectedHeader(r.Inject.Header); err != nil {
			return &ProfileError{Field: field + ".inject.header", Err: err}
		}
	case InjectBasic:
		if !userName.MatchString(r.Inject.Username) {
			return fieldErr(field+".inject.basic", "want a user name of 1 to 64 letters, digits, '.', '_', '~' or '-'")
		}
	default:
		return fieldErr(field+".inject", "want bearer, header: NAME or basic: USERNAME")
	}
	for j, m := range r.Methods {
		if !knownMethods[m] {
			return fieldErr(fmt.Sprintf("%s.methods[%d]", field, j), "unknown method %q (upper case, e.g. GET)", m)
		}
	}
	return nil
}

var knownMethods = map[string]bool{
	http.MethodGet: true, http.MethodHead: true, http.MethodPost: true, http.MethodPut: true,
	http.MethodPatch: true, http.MethodDelete: true, http.MethodOptions: true,
}

// checkOrigin accepts exactly scheme://host[:port]: no path (not even "/"),
// query, fragment or userinfo, https unless the host is a development host.
func (p *Policy) checkOrigin(raw string) error {
	scheme, authority, rest, err := splitAbsolute(raw)
	if err != nil {
		return errors.New(reasonOf(err))
	}
	if rest != "" {
		return errors.New("an origin is scheme://host[:port], with no path, query or fragment")
	}
	u, err := parseParts(scheme, authority, "/")
	if err != nil {
		return errors.New(reasonOf(err))
	}
	if err := p.checkScheme(u); err != nil {
		return errors.New(reasonOf(err))
	}
	return nil
}

// Headers a capability or a credential may never travel in: they mean
// something to proxies, or carry the request's identity.
var reservedHeaders = map[string]bool{
	"host": true, "cookie": true, "set-cookie": true, "connection": true, "keep-alive": true,
	"proxy-authorization": true, "proxy-authenticate": true, "proxy-connection": true, "te": true,
	"trailer": true, "transfer-encoding": true, "upgrade": true, "content-length": true,
	"content-type": true, "forwarded": true, "x-forwarded-for": true, "x-forwarded-host": true,
	"x-forwarded-proto": true, "x-real-ip": true, "x-envoy-original-path": true,
}

var headerToken = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,126}$`)

func checkInjectedHeader(h string) error {
	if !headerToken.MatchString(h) || reservedHeaders[h] || strings.HasPrefix(h, ":") {
		return fmt.Errorf("%q: want a lower-case header name that is not a proxy's (host, cookie, hop-by-hop, forwarding)", h)
	}
	return nil
}

func checkCapabilityHeader(h string) error {
	if h == "authorization" {
		return errors.New("authorization is named with bearer or basic")
	}
	return checkInjectedHeader(h)
}

// Name is the profile's name.
func (pr *Profile) Name() string { return pr.name }

// Accept lists where the capability may arrive, in the profile's order.
func (pr *Profile) Accept() []Presentation { return slices.Clone(pr.accept) }

// Accepts reports whether the capability may arrive at place.
func (pr *Profile) Accepts(place Presentation) bool { return slices.Contains(pr.accept, place) }

// MaxLifetime bounds a capability of the profile.
func (pr *Profile) MaxLifetime() time.Duration { return pr.maxLifetime }

// Vars lists the variables the profile's routes bind, sorted.
func (pr *Profile) Vars() []string { return slices.Clone(pr.vars) }

// Origins lists the exact origins of the profile's routes, in route order,
// each once.
func (pr *Profile) Origins() []string {
	var out []string
	for i := range pr.table.routes {
		if o := pr.table.routes[i].Origin; o != "" && !slices.Contains(out, o) {
			out = append(out, o)
		}
	}
	return out
}

// ServesOrigin reports whether a route of the profile has the request's
// origin (scheme and authority; the path is not looked at). A request that
// does not parse serves nothing.
func (pr *Profile) ServesOrigin(req Request) bool {
	u, err := parseParts(req.Scheme, req.Authority, "/")
	if err != nil {
		return false
	}
	for i := range pr.table.routes {
		if r := &pr.table.routes[i]; r.fixed && r.origin.origin.equal(u.origin) {
			return true
		}
	}
	return false
}

// RouteClasses lists the classes of the profile's routes, each once, in
// route order.
func (pr *Profile) RouteClasses() []RouteClass {
	var out []RouteClass
	for i := range pr.table.routes {
		if c := pr.table.routes[i].Class; !slices.Contains(out, c) {
			out = append(out, c)
		}
	}
	return out
}

// Injections lists the injections of the profile's routes, each once, in
// route order.
func (pr *Profile) Injections() []Injection {
	var out []Injection
	for i := range pr.table.routes {
		if in := pr.table.routes[i].Inject; in.Kind != 0 && !slices.Contains(out, in) {
			out = append(out, in)
		}
	}
	return out
}

// Slots lists the credential slots the profile's routes use, sorted.
func (pr *Profile) Slots() []string { return slices.Clone(pr.slots) }

// UsesTargets reports whether a route of the profile lives below a
// capability target (a kka1 profile, such as kilo).
func (pr *Profile) UsesTargets() bool {
	for i := range pr.table.routes {
		if !pr.table.routes[i].fixed {
			return true
		}
	}
	return false
}

// Classify finds the route of the profile that req takes, with vars bound
// (the capability's variables) and, for routes below capability targets,
// the targets t prepared by the profile's policy (nil: no target, so such
// routes match nothing). The request passes the same shape and path safety
// rules as a kka1 request first, and bad targets deny as in
// Policy.Classify. Errors wrap ErrInvalidUpstreamURL or
// ErrUpstreamNotAllowed. It allocates nothing.
func (pr *Profile) Classify(req Request, t *Prepared, vars []Var) (Route, error) {
	r, err := pr.policy.parseRequest(req)
	if err != nil {
		return Route{}, err
	}
	if t == nil {
		return pr.table.classify(r, req.Method, nil, vars)
	}
	if t.policy != pr.policy {
		return Route{}, errForeignPrepared
	}
	if t.err != nil {
		return Route{}, t.err
	}
	return pr.table.classify(r, req.Method, (*[numTargets]parsedURL)(&t.targets), vars)
}
