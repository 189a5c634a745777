package policy

import "errors"

// Targets are the three base URLs a capability allows. JSON names match the
// kka1 claim names.
type Targets struct {
	BackendBaseURL       string `json:"backendBaseUrl"`
	ProviderBaseURL      string `json:"providerBaseUrl"`
	SessionIngestBaseURL string `json:"sessionIngestBaseUrl"`
}

// Request is an upstream request exactly as the proxy saw it: nothing is
// decoded or normalised before Classify sees it.
type Request struct {
	Scheme    string // "https" or "http"
	Authority string // host[:port], as received
	Path      string // raw path including the query, as received
	// Method is the request's method, for routes that name methods; kka1
	// routes take any.
	Method string
}

// RouteClass names the kind of upstream route an allowed request is for.
type RouteClass string

// Route classes.
const (
	ProviderModel      RouteClass = "provider_model"
	OrganizationModels RouteClass = "organization_models"
	SessionIngest      RouteClass = "session_ingest"
	BackendAPI         RouteClass = "backend_api"
)

// Credential says which of the capability's tokens goes upstream.
type Credential int

// Credential kinds.
const (
	// CredentialUser is the capability's userToken.
	CredentialUser Credential = iota + 1
	// CredentialProvider is the providerToken when present, else userToken.
	CredentialProvider
)

// Route is the result of an allowed classification.
type Route struct {
	Class RouteClass
	// Credential is a kka1 route's credential kind.
	Credential Credential
	// Slot and Inject are a profile route's credential slot and how it is
	// set upstream.
	Slot   string
	Inject Injection
}

// Sentinel errors. Classify wraps one of them with non-secret context.
var (
	// ErrInvalidUpstreamURL: the request URL (or a target) is unsafe or malformed.
	ErrInvalidUpstreamURL = errors.New("invalid_upstream_url")
	// ErrUpstreamNotAllowed: the request is well formed but no route allows it.
	ErrUpstreamNotAllowed = errors.New("upstream_not_allowed")
	// ErrInvalidTargets: Targets.Validate rejected a target.
	ErrInvalidTargets = errors.New("invalid_targets")
)
