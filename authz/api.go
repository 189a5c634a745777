package authz

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"io"
	"math"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"

	"github.com/extauthz/extauthz/capability"
	"github.com/extauthz/extauthz/policy"
)

// MaxAPIBodyBytes bounds an issue or redeem request body.
const MaxAPIBodyBytes = 64 << 10

// apiBodyTimeout bounds the time to read an API request body.
var apiBodyTimeout = 10 * time.Second

// API error slugs that are not decisions.
const (
	apiErrUnauthorized     = "unauthorized"
	apiErrMethod           = "method_not_allowed"
	apiErrInvalidRequest   = "invalid_request"
	apiErrRequestTooLarge  = "request_too_large"
	apiErrRequestTimeout   = "request_timeout"
	apiErrNotFound         = "not_found"
	apiAuthChallenge       = `Bearer realm="extauthz-api"`
	apiAuthChallengeFailed = `Bearer realm="extauthz-api", error="invalid_token"`
)

// api guards an API endpoint: enabled, authorised, POST, body within bounds.
func (h *httpHandler) api(w http.ResponseWriter, r *http.Request, serve func(http.ResponseWriter, []byte)) {
	if !h.apiEnabled {
		writeJSONError(w, http.StatusNotFound, apiErrNotFound)
		return
	}
	// The server has no ReadTimeout (the authorization endpoints serve
	// long-lived proxy connections): bound the body read here, including
	// the discard of an unread body after an early answer. Not every
	// ResponseWriter supports it (httptest), hence the ignored error.
	_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(apiBodyTimeout))
	if presented, ok := h.authorized(r); !ok {
		challenge := apiAuthChallenge
		if presented {
			challenge = apiAuthChallengeFailed
			// Never the token; who tried is enough to investigate.
			h.log.Warn().Str("path", r.URL.Path).Str("remote_addr", r.RemoteAddr).Msg("API call with a wrong admin token")
		}
		w.Header().Set("WWW-Authenticate", challenge)
		writeJSONError(w, http.StatusUnauthorized, apiErrUnauthorized)
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		writeJSONError(w, http.StatusMethodNotAllowed, apiErrMethod)
		return
	}
	if r.ContentLength > MaxAPIBodyBytes {
		// Refused before reading: a declared length over the limit is
		// never served, whatever the body turns out to be.
		w.Header().Set("Connection", "close")
		writeJSONError(w, http.StatusRequestEntityTooLarge, apiErrRequestTooLarge)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxAPIBodyBytes))
	if err != nil {
		if _, tooLarge := errors.AsType[*http.MaxBytesError](err); tooLarge {
			writeJSONError(w, http.StatusRequestEntityTooLarge, apiErrRequestTooLarge)
			return
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			w.Header().Set("Connection", "close")
			writeJSONError(w, http.StatusRequestTimeout, apiErrRequestTimeout)
			return
		}
		writeJSONError(w, http.StatusBadRequest, apiErrInvalidRequest)
		return
	}
	serve(w, body)
}

// authorized compares the presented admin token in constant time (hashes of
// equal length, so neither the content nor the length leaks). presented
// reports whether a bearer token was sent at all.
func (h *httpHandler) authorized(r *http.Request) (presented, ok bool) {
	values := r.Header.Values("Authorization")
	if len(values) != 1 {
		return len(values) > 1, false
	}
	scheme, tok, found := strings.Cut(strings.TrimSpace(values[0]), " ")
	tok = strings.TrimSpace(tok)
	if !found || !strings.EqualFold(scheme, "bearer") || tok == "" {
		return values[0] != "", false
	}
	got := sha256.Sum256([]byte(tok))
	return true, subtle.ConstantTimeCompare(got[:], h.apiTokenHash[:]) == 1
}

// jsonString is a request string field: a JSON string and nothing else (null,
// numbers and objects are rejected). set records whether it was present.
type jsonString struct {
	v   string
	set bool
}

var errNotString = errors.New("not a JSON string")

// UnmarshalJSON accepts a JSON string only.
func (s *jsonString) UnmarshalJSON(b []byte) error {
	if len(b) == 0 || b[0] != '"' {
		return errNotString
	}
	s.set = true
	return json.Unmarshal(b, &s.v)
}

// decodeStrict decodes exactly one JSON object: unknown or duplicate members
// (names match exactly), invalid UTF-8 and trailing data are errors.
func decodeStrict(body []byte, v any) error {
	return json.Unmarshal(body, v, json.RejectUnknownMembers(true))
}

// issueRequest is the body of POST /v1/capabilities:issue: a subject
// document (capability.DecodeSubject) with one more member, an optional
// lifetime. The body is decoded once: ttlSeconds here, every other member
// collected into Subject as a JSON object, which DecodeSubject then checks.
type issueRequest struct {
	// TTLSeconds is the lifetime; absent means capability.MaxLifetime.
	TTLSeconds *int64 `json:"ttlSeconds"`
	// Subject collects every other member as one JSON object: the "embed"
	// fallback of this library (which ignores a ",unknown" tag).
	Subject jsontext.Value `json:",embed"`
}

// issue seals a capability for the subject in the body (Authorizer.Issue):
// a malformed body or subject is invalid_request, a broken claim rule
// invalid_capability, unusable targets invalid_targets, all 400; no key is
// 503.
func (h *httpHandler) issue(w http.ResponseWriter, body []byte) {
	// Duplicate names (at any level), invalid UTF-8 and trailing data fail
	// here already; Issue checks the rest.
	var req issueRequest
	if err := json.Unmarshal(body, &req); err != nil {
		writeJSONError(w, http.StatusBadRequest, apiErrInvalidRequest)
		return
	}
	if len(req.Subject) == 0 {
		req.Subject = jsontext.Value("{}") // no subject member: Issue says which is missing
	}
	ttl := capability.MaxLifetime
	if req.TTLSeconds != nil {
		ttl = -1 // refused by the lifetime rule, as is 0
		if n := *req.TTLSeconds; n >= 0 && n <= math.MaxInt64/int64(time.Second) {
			ttl = time.Duration(n) * time.Second
		}
	}
	tok, err := h.core.Issue(req.Subject, ttl)
	if err != nil {
		if _, malformed := errors.AsType[*capability.SubjectError](err); malformed {
			writeJSONError(w, http.StatusBadRequest, apiErrInvalidRequest)
			return
		}
		reason := ReasonOf(err)
		status := http.StatusBadRequest
		if reason == ReasonConfigurationError {
			status = reason.HTTPStatus()
		}
		writeJSONError(w, status, string(reason))
		return
	}
	writeJSONValue(w, http.StatusOK, struct {
		Capability string `json:"capability"`
	}{tok})
}

// redeemRequest is the body of POST /v1/capabilities:redeem: the question a
// proxy would ask, as plain JSON. Every member is required.
type redeemRequest struct {
	Capability          jsonString `json:"capability"`
	OutboundContainerID jsonString `json:"outboundContainerId"`
	RequestMethod       jsonString `json:"requestMethod"`
	RequestURL          jsonString `json:"requestUrl"`
}

// redeem answers the same question as Check, for a caller that is not a
// proxy: which credential may this container send to this URL?
func (h *httpHandler) redeem(w http.ResponseWriter, body []byte) {
	var req redeemRequest
	if err := decodeStrict(body, &req); err != nil ||
		!req.Capability.set || !req.OutboundContainerID.set || !req.RequestURL.set ||
		!req.RequestMethod.set || !validHeaderName(req.RequestMethod.v) {
		writeJSONError(w, http.StatusBadRequest, apiErrInvalidRequest)
		return
	}
	in := Input{
		Protocol:   protocolRedeem,
		HasHTTP:    true,
		Method:     req.RequestMethod.v,
		Capability: []string{req.Capability.v},
		CallerID:   req.OutboundContainerID.v,
	}
	// A URL that does not parse leaves scheme, authority and path empty: the
	// policy rejects that as invalid_upstream_url, after the capability and
	// identity checks, in the same order as Check.
	if u, err := policy.ParseURL(req.RequestURL.v); err == nil {
		in.Scheme, in.Authority, in.Path = u.Scheme, u.Authority, u.Path
	}
	d := h.core.Decide(in)
	if !d.Allowed() {
		if c := d.Reason.WWWAuthenticate(); c != "" {
			w.Header().Set("WWW-Authenticate", c)
		}
		writeJSON(w, d.Reason.HTTPStatus(), d.Reason.Body())
		return
	}
	writeJSONValue(w, http.StatusOK, struct {
		Authorization string `json:"authorization"`
		RouteClass    string `json:"routeClass"`
	}{"Bearer " + d.Credential(), string(d.Route.Class)})
}

// writeJSONValue answers with v encoded as JSON.
func writeJSONValue(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		// Unreachable: the values are plain strings (invalid UTF-8 is
		// rejected before it gets here). Fail closed without details.
		writeJSONError(w, http.StatusInternalServerError, "internal_error")
		return
	}
	writeJSON(w, status, string(b))
}
