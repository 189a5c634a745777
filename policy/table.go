package policy

// This file is the one home of the route classes: each is one entry of
// kiloRoutes. Classification (classify, in pattern.go), the catch-all's
// exclusions (its guards) and the table in docs/decisions.md, section 4.5
// (checked by TestDocsRouteTable), are all derived from it. To add a route
// class, add an entry and its test cases; nothing else names a class.

// Target names the capability target a route lives under: the route's origin
// is the target's origin, and its patterns are below the target's base path.
type Target uint8

// Targets of a kka1 capability, in the order their errors are reported.
// The zero Target is none: a route that has an exact origin instead.
const (
	TargetBackend Target = iota + 1
	TargetProvider
	TargetSessionIngest
	numTargets // one more than the last target: the size of a table by target
)

// String returns the target's claim name, e.g. "backendBaseUrl".
func (t Target) String() string {
	if 0 < t && t < numTargets {
		return targetClaims[t]
	}
	return "no target"
}

// TargetNamed returns the target whose claim name is name.
func TargetNamed(name string) (Target, bool) {
	for t := TargetBackend; t < numTargets; t++ {
		if targetClaims[t] == name {
			return t, true
		}
	}
	return 0, false
}

var targetClaims = [numTargets]string{"", "backendBaseUrl", "providerBaseUrl", "sessionIngestBaseUrl"}

// Guard says where a catch-all route (one whose only pattern is /**) refuses
// paths shaped like a route, so that it never serves, with its own
// credential, what some upstream router would send to that route. The
// comparison is loose (see loose.go): decoded, case-folded, the route's last
// literal segment also matching with a format suffix, variables and * as any
// segment, at or below the route's pattern.
type Guard uint8

const (
	// GuardOwnTarget, the zero value, so that a new entry is guarded unless
	// it says otherwise: a catch-all refuses this route's shape, below this
	// route's target base path, on every origin that may reach the same
	// server as that target.
	GuardOwnTarget Guard = iota
	// GuardEveryTarget is GuardOwnTarget, and also this route's shape below
	// the catch-all's own base path, on the catch-all's origin: for routes
	// that the catch-all's server itself may serve under the same name.
	GuardEveryTarget
	// GuardNone: a request that misses this route may go to the catch-all.
	// Only for a route whose catch-all sends its credential to the same
	// server anyway; the entry says why.
	GuardNone
)

// RouteEntry declares one route class.
type RouteEntry struct {
	Class RouteClass
	// Credential is what an allow on this route sends upstream.
	Credential Credential
	// Target supplies the route's origin and base path (or Origin does).
	Target Target
	// Patterns are the route's paths below the target's base path, any one
	// of which matches. Segments, '/'-separated:
	//   - a literal segment matches itself, case-sensitively;
	//   - {name} matches one segment equal to the variable name bound by the
	//     capability, encoded as JavaScript's encodeURIComponent encodes it;
	//   - * matches any one non-empty segment that hides no encoded '?', '#',
	//     ';' or '%' (an upstream that decodes first would split there);
	//   - ** (last only) matches the rest of the path, possibly nothing: the
	//     pattern's path and everything below it.
	// A leading [/a/b] holds literal segments that the base path may already
	// end in: those that it ends in are not repeated (base /v1/api and
	// [/api]/organizations give /v1/api/organizations). When the base path
	// ends in the whole bracket of one of the patterns, that pattern alone
	// applies (base /x/api/openrouter gives /x/api/openrouter/** only).
	Patterns []string
	// Guard keeps the catch-all off this route's paths (see Guard).
	Guard Guard

	// The fields below are the route language's (profile.go).

	// Origin, when set, is the route's exact origin, scheme://host[:port],
	// and Target is not used: the route's base path is empty.
	Origin string
	// Methods, when set, are the only methods the route takes; a request
	// with another method on the route's path is denied, never passed to
	// a less specific route.
	Methods []string
	// Slot names the capability's credential the route sends (instead of
	// Credential, which only kka1 routes use).
	Slot string
	// Inject says how the credential is set upstream.
	Inject Injection
}

// kiloRoutes is the kka1 route table (docs/decisions.md, section 4.5).
// Precedence between routes that match the same request is computed from
// their patterns (see outranks), not from this order; the order only breaks
// exact ties.
var kiloRoutes = []RouteEntry{
	{
		Class: ProviderModel, Credential: CredentialProvider, Target: TargetProvider,
		Patterns: []string{"[/api/openrouter]/**", "[/api/gateway]/**"},
		// The backend's own server hosts the provider routes under its
		// base path too.
		Guard: GuardEveryTarget,
	},
	{
		Class: OrganizationModels, Credential: CredentialProvider, Target: TargetBackend,
		Patterns: []string{"[/api]/organizations/*/models/**"},
		// A path that misses it (e.g. an organization segment hiding an
		// encoded '?') goes to the backend's catch-all, on the same
		// server, with the user credential that the catch-all sends
		// there anyway.
		Guard: GuardNone,
	},
	{
		Class: SessionIngest, Credential: CredentialUser, Target: TargetSessionIngest,
		Patterns: []string{
			"/api/session/{kiloSessionId}/export",
			"/api/session/{kiloSessionId}/import",
			"/api/session/{kiloSessionId}/ingest",
		},
	},
	{
		Class: BackendAPI, Credential: CredentialUser, Target: TargetBackend,
		Patterns: []string{"/**"},
	},
}

// kiloVar is the one variable kka1 routes bind: the capability's
// kiloSessionId.
const kiloVar = "kiloSessionId"

// kiloTable is kiloRoutes compiled; the built-in table is a constant, so a
// failure is a programming error.
var kiloTable = func() *table {
	t, err := compileTable(kiloRoutes, kiloVar)
	if err != nil {
		panic(err)
	}
	return t
}()

// RouteClasses lists the classes of the kka1 route table, in table order:
// for metrics that export every known label set from the start.
func RouteClasses() []RouteClass {
	out := make([]RouteClass, len(kiloRoutes))
	for i, e := range kiloRoutes {
		out[i] = e.Class
	}
	return out
}
