package authz

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"

	"google.golang.org/grpc/codes"

	"github.com/extauthz/extauthz/capability"
	"github.com/extauthz/extauthz/policy"
	"github.com/extauthz/extauthz/revocation"
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
		{ReasonRevokedCapability, 401, codes.Unauthenticated, `Bearer realm="extauthz", error="invalid_token"`},
		{ReasonRevocationUnavailable, 503, codes.Unavailable, ""},
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
		{wrap(revocation.ErrRevoked), ReasonRevokedCapability},
		{wrap(revocation.ErrUnavailable), ReasonRevocationUnavailable},
		{errors.New("unexpected"), ReasonConfigurationError},
	}
	for _, tc := range tests {
		if got := ReasonOf(tc.err); got != tc.want {
			t.Errorf("ReasonOf(%v) = %q; want %q", tc.err, got, tc.want)
		}
	}
}

// TestDenyNeverEncodesAllow: the deny encoders never produce an OK
// status or a 2xx, and never a slug outside the reason table, whatever
// Reason they are given (ReasonNone was encoded as gRPC OK / HTTP 200: an
// allow without the credential swap or the capability removal).
func TestDenyNeverEncodesAllow(t *testing.T) {
	for _, r := range []Reason{ReasonNone, Reason("bogus"), Reason(`x","y`)} {
		resp := deniedResponse(&Decision{Reason: r})
		if codes.Code(resp.GetStatus().GetCode()) == codes.OK {
			t.Errorf("deniedResponse(%q): status OK", r)
		}
		if _, known := reasons[Reason(resp.GetStatus().GetMessage())]; !known {
			t.Errorf("deniedResponse(%q): message %q is not a reason slug", r, resp.GetStatus().GetMessage())
		}
		if c := resp.GetDeniedResponse().GetStatus().GetCode(); c < 400 {
			t.Errorf("deniedResponse(%q): HTTP %d", r, c)
		}
		w := httptest.NewRecorder()
		writeDeny(w, r)
		if w.Code < 400 {
			t.Errorf("writeDeny(%q): HTTP %d", r, w.Code)
		}
		var body map[string]string
		if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil {
			t.Errorf("writeDeny(%q): body %q is not JSON", r, w.Body)
		} else if _, known := reasons[Reason(body["error"])]; !known {
			t.Errorf("writeDeny(%q): body %q is not a reason slug", r, w.Body)
		}
	}
}
