package authz

import (
	"errors"
	"net/http"

	"google.golang.org/grpc/codes"

	"github.com/extauthz/extauthz/capability"
	"github.com/extauthz/extauthz/policy"
	"github.com/extauthz/extauthz/revocation"
)

// Reason is the slug that names why a request was denied. The empty Reason
// means allowed.
type Reason string

// Reasons, as in the decision table of docs/decisions.md.
const (
	ReasonNone               Reason = ""
	ReasonMissingCapability  Reason = "missing_capability"
	ReasonInvalidCapability  Reason = "invalid_capability"
	ReasonExpiredCapability  Reason = "expired_capability"
	ReasonContainerMismatch  Reason = "container_mismatch"
	ReasonInvalidUpstreamURL Reason = "invalid_upstream_url"
	ReasonUpstreamNotAllowed Reason = "upstream_not_allowed"
	ReasonConfigurationError Reason = "capability_configuration_error"
	ReasonInvalidTargets     Reason = "invalid_targets"
	// ReasonRevokedCapability: the capability, its session, container or
	// user was revoked (revocation package).
	ReasonRevokedCapability Reason = "revoked_capability"
	// ReasonRevocationUnavailable: the revocation set is too stale to
	// trust; fail closed until it is fresh again.
	ReasonRevocationUnavailable Reason = "revocation_unavailable"
)

// reasonInfo is the one table that maps a reason to what clients see.
type reasonInfo struct {
	httpStatus int
	grpcCode   codes.Code
}

var reasons = map[Reason]reasonInfo{
	ReasonMissingCapability:  {http.StatusUnauthorized, codes.Unauthenticated},
	ReasonInvalidCapability:  {http.StatusUnauthorized, codes.Unauthenticated},
	ReasonExpiredCapability:  {http.StatusUnauthorized, codes.Unauthenticated},
	ReasonContainerMismatch:  {http.StatusForbidden, codes.PermissionDenied},
	ReasonInvalidUpstreamURL: {http.StatusForbidden, codes.PermissionDenied},
	ReasonUpstreamNotAllowed: {http.StatusForbidden, codes.PermissionDenied},
	ReasonConfigurationError: {http.StatusServiceUnavailable, codes.Unavailable},
	ReasonRevokedCapability:  {http.StatusUnauthorized, codes.Unauthenticated},
	// A server-side condition that heals: 503, retried by clients.
	ReasonRevocationUnavailable: {http.StatusServiceUnavailable, codes.Unavailable},
	// invalid_targets only arises when issuing; it is the caller's fault.
	ReasonInvalidTargets: {http.StatusBadRequest, codes.InvalidArgument},
}

// HTTPStatus is the status the client gets for a deny with this reason.
// An unknown reason is a server fault: 503, so that it is never mistaken for
// an allow and is retried once the server is fixed.
func (r Reason) HTTPStatus() int {
	if r == ReasonNone {
		return http.StatusOK
	}
	if info, ok := reasons[r]; ok {
		return info.httpStatus
	}
	return http.StatusServiceUnavailable
}

// GRPCCode is the google.rpc.Status code that carries this reason in a
// CheckResponse.
func (r Reason) GRPCCode() codes.Code {
	if r == ReasonNone {
		return codes.OK
	}
	if info, ok := reasons[r]; ok {
		return info.grpcCode
	}
	return codes.Unavailable
}

// WWWAuthenticate is the RFC 6750 challenge for a 401, or "" for other
// statuses. No capability presented gets the bare challenge; a presented one
// that failed gets error="invalid_token".
func (r Reason) WWWAuthenticate() string {
	switch {
	case r.HTTPStatus() != http.StatusUnauthorized:
		return ""
	case r == ReasonMissingCapability:
		return `Bearer realm="extauthz"`
	default:
		return `Bearer realm="extauthz", error="invalid_token"`
	}
}

// asDeny is the reason a deny carries: r itself when it is in the reason
// table, else capability_configuration_error. A deny must never be encoded
// with ReasonNone (gRPC OK, HTTP 200: an allow without the credential swap)
// nor with a slug outside the table.
func (r Reason) asDeny() Reason {
	if _, ok := reasons[r]; ok {
		return r
	}
	return ReasonConfigurationError
}

// Body is the JSON deny body, {"error":"<reason>"}. Reasons are fixed ASCII
// slugs, so no escaping is needed.
func (r Reason) Body() string {
	return `{"error":"` + string(r) + `"}`
}

// ReasonOf maps a package sentinel error to its reason. Anything it does not
// know is a configuration error: fail closed, and loudly.
func ReasonOf(err error) Reason {
	switch {
	case err == nil:
		return ReasonNone
	case errors.Is(err, revocation.ErrRevoked):
		return ReasonRevokedCapability
	case errors.Is(err, revocation.ErrUnavailable):
		return ReasonRevocationUnavailable
	case errors.Is(err, capability.ErrExpired):
		return ReasonExpiredCapability
	case errors.Is(err, capability.ErrConfig):
		return ReasonConfigurationError
	case errors.Is(err, policy.ErrInvalidTargets):
		return ReasonInvalidTargets
	case errors.Is(err, capability.ErrInvalid):
		return ReasonInvalidCapability
	case errors.Is(err, policy.ErrInvalidUpstreamURL):
		return ReasonInvalidUpstreamURL
	case errors.Is(err, policy.ErrUpstreamNotAllowed):
		return ReasonUpstreamNotAllowed
	default:
		return ReasonConfigurationError
	}
}
