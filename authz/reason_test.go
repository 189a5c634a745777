package authz

import (
	"errors"
	"fmt"
	"net/http"
	"testing"

	"google.golang.org/grpc/codes"

	"github.com/extauthz/extauthz/capability"
	"github.com/extauthz/extauthz/policy"
)

func TestReasonTable(t *testing.T) {
	tests := []struct {
		reason Reason
		status int
		code   codes.Code
		wa     string
	}{
		{ReasonNone, http.StatusOK, codes.OK, ""},
		{ReasonMissingCapability, 401, codes.Unauthenticated, `Bearer realm="extauthz"`},
		{ReasonInvalidCapability, 401, codes.Unauthenticated, `Bearer realm="extauthz", error="invalid_token"`},
		{ReasonExpiredCapability, 401, codes.Unauthenticated, `Bearer realm="extauthz", error="invalid_token"`},
		{ReasonContainerMismatch, 403, codes.PermissionDenied, ""},
		{ReasonInvalidUpstreamURL, 403, codes.PermissionDenied, ""},
		{ReasonUpstreamNotAllowed, 403, codes.PermissionDenied, ""},
		{ReasonConfigurationError, 503, codes.Unavailable, ""},
		{ReasonInvalidTargets, 400, codes.InvalidArgument, ""},
		{Reason("something_new"), 503, codes.Unavailable, ""},
	}
	for _, tc := range tests {
		t.Run(string(tc.reason), func(t *testing.T) {
			if got := tc.reason.HTTPStatus(); got != tc.status {
				t.Errorf("%q.HTTPStatus() = %d; want %d", tc.reason, got, tc.status)
			}
			if got := tc.reason.GRPCCode(); got != tc.code {
				t.Errorf("%q.GRPCCode() = %v; want %v", tc.reason, got, tc.code)
			}
			if got := tc.reason.WWWAuthenticate(); got != tc.wa {
				t.Errorf("%q.WWWAuthenticate() = %q; want %q", tc.reason, got, tc.wa)
			}
			if want := `{"error":"` + string(tc.reason) + `"}`; tc.reason != ReasonNone && tc.reason.Body() != want {
				t.Errorf("%q.Body() = %q; want %q", tc.reason, tc.reason.Body(), want)
			}
		})
	}
}

func TestReasonOf(t *testing.T) {
	wrap := func(err error) error { return fmt.Errorf("context: %w", err) }
	tests := []struct {
		err  error
		want Reason
	}{
		{nil, ReasonNone},
		{wrap(capability.ErrInvalid), ReasonInvalidCapability},
		{wrap(capability.ErrExpired), ReasonExpiredCapability},
		{wrap(capability.ErrConfig), ReasonConfigurationError},
		{wrap(policy.ErrInvalidUpstreamURL), ReasonInvalidUpstreamURL},
		{wrap(policy.ErrUpstreamNotAllowed), ReasonUpstreamNotAllowed},
		{wrap(policy.ErrInvalidTargets), ReasonInvalidTargets},
		{errors.New("unexpected"), ReasonConfigurationError},
	}
	for _, tc := range tests {
		if got := ReasonOf(tc.err); got != tc.want {
			t.Errorf("ReasonOf(%v) = %q; want %q", tc.err, got, tc.want)
		}
	}
}
