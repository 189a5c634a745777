package authz

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/extauthz/extauthz/capability"
	"github.com/extauthz/extauthz/internal/strictjson"
	"github.com/extauthz/extauthz/policy"
	"github.com/extauthz/extauthz/revocation"
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

// MinAPITokenLen is the shortest admin token accepted.
const MinAPITokenLen = 16

// APIOptions configure the capability API.
type APIOptions struct {
	// Token is the bearer token that guards the API. It must be at least
	// MinAPITokenLen bytes of visible ASCII.
	Token string
	// Revocations serves RevokePath and RevocationsPath; nil: they are 404.
	Revocations revocation.Store
}

// APIHandler serves the capability API: issue (Authorizer.Issue) and redeem
// (Authorizer.Decide for a caller that is not a proxy). It stands beside the
// authorization adapters and is composed with them by the binary, so that it
// can move to a listener of its own.
type APIHandler struct {
	core      *Authorizer
	tokenHash [sha256.Size]byte
	store     revocation.Store
	now       func() time.Time
}

// NewAPIHandler returns the capability API. Errors never contain the token.
func NewAPIHandler(core *Authorizer, opts APIOptions) (*APIHandler, error) {
	if core == nil {
		return nil, errors.New("authz: NewAPIHandler needs an Authorizer")
	}
	if err := checkAPIToken(opts.Token); err != nil {
		return nil, err
	}
	return &APIHandler{core: core, tokenHash: sha256.Sum256([]byte(opts.Token)), store: opts.Revocations, now: time.Now}, nil
}

// checkAPIToken rejects admin tokens that are too short or that cannot travel
// in an Authorization header. The error never contains the token.
func checkAPIToken(tok string) error {
	if len(tok) < MinAPITokenLen {
		return fmt.Errorf("authz: the API token must be at least %d bytes long", MinAPITokenLen)
	}
	for i := 0; i < len(tok); i++ {
		if c := tok[i]; c <= ' ' || c >= 0x7f {
			return errors.New("authz: the API token must be visible ASCII without spaces")
		}
	}
	return nil
}

// ServeHTTP serves IssuePath, RedeemPath, RevokePath and RevocationsPath,
// routed on the raw request target (endpoints.go); anything else is 404.
// A panic is recovered into a capability_configuration_error answer.
func (h *APIHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	id, _ := endpointOf(r)
	revocation := id == epRevoke || id == epRevocations
	if id == epNone || !endpoints[id].API || revocation && h.store == nil {
		startJSON(w)
		writeJSONError(w, http.StatusNotFound, apiErrNotFound)
		return
	}
	// The answer is observed after the recovery below has written one.
	ans := &apiAnswer{ResponseWriter: w}
	defer h.core.answered(r.Context(), endpoints[id].Protocol, ans)
	defer h.core.recoverHTTP(r.Context(), ans, endpoints[id].Protocol, writeAPIDeny)
	w = ans
	startJSON(w)
	switch id {
	case epIssue:
		h.serve(w, r, http.MethodPost, h.issue)
	case epRedeem:
		h.serve(w, r, http.MethodPost, func(w http.ResponseWriter, body []byte) { h.redeem(w, r, body) })
	case epRevoke:
		h.serve(w, r, http.MethodPost, func(w http.ResponseWriter, body []byte) { h.revoke(w, r, body) })
	case epRevocations:
		h.serve(w, r, http.MethodGet, func(w http.ResponseWriter, _ []byte) { h.list(w, r) })
	}
}

// serve guards an API endpoint: authorised, the method, body within bounds.
func (h *APIHandler) serve(w http.ResponseWriter, r *http.Request, method string, serve func(http.ResponseWriter, []byte)) {
	// The listener's ReadTimeout (30 s in serve: httpReadTimeout in
	// cmd/extauthz/limits.go) bounds reading a whole request; an API body
	// is held to the shorter apiBodyTimeout here, and to it alone where
	// APIHandler is served without a ReadTimeout. The deadline also bounds
	// the discard of an unread body after an early answer. Not every
	// ResponseWriter supports it (httptest), hence the ignored error.
	_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(apiBodyTimeout))
	if presented, ok := h.authorized(r); !ok {
		challenge := apiAuthChallenge
		if presented {
			challenge = apiAuthChallengeFailed
			// Never the token; who tried is enough to investigate.
			h.core.log.Warn().Str("path", r.URL.Path).Str("remote_addr", r.RemoteAddr).Msg("API call with a wrong admin token")
		}
		w.Header().Set("WWW-Authenticate", challenge)
		writeJSONError(w, http.StatusUnauthorized, apiErrUnauthorized)
		return
	}
	if r.Method != method {
		w.Header().Set("Allow", method)
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
func (h *APIHandler) authorized(r *http.Request) (presented, ok bool) {
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
	return true, subtle.ConstantTimeCompare(got[:], h.tokenHash[:]) == 1
}

// issue seals a capability for the subject in the body. A body with a
// top-level profile member asks for a profile capability: a profile subject
// document (capability.DecodeProfileSubject), sealed by
// Authorizer.IssueProfile; any other body a kka1 subject document
// (capability.DecodeSubject), sealed by Authorizer.IssueSubject. Both may
// carry ttlSeconds, the optional lifetime (absent: capability.DefaultLifetime,
// or for a profile its default, IssueProfile's). A malformed body is
// invalid_request; then the issuer decides: a broken claim or profile rule
// is invalid_capability, unusable targets invalid_targets, both 400; no key
// is 503.
func (h *APIHandler) issue(w http.ResponseWriter, body []byte) {
	var ttl ttlSeconds
	var tok string
	var err error
	if strictjson.HasMember(body, "profile") {
		var s capability.ProfileSubject
		if s, err = capability.DecodeProfileSubject(body, ttl.member()); err == nil {
			tok, err = h.core.IssueProfile(s, ttl.lifetime(0))
		}
	} else {
		var s capability.Subject
		if s, err = capability.DecodeSubjectWith(body, ttl.member()); err == nil {
			tok, err = h.core.IssueSubject(s, ttl.lifetime(capability.DefaultLifetime))
		}
	}
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

// ttlSeconds is the issue bodies' optional lifetime member.
type ttlSeconds struct{ n *int64 }

func (t *ttlSeconds) member() capability.ExtraMember {
	return capability.ExtraMember{Name: "ttlSeconds", Read: func(rd *strictjson.Reader, p strictjson.Pointer) error {
		n, err := rd.Int(p)
		t.n = &n
		return err
	}}
}

// lifetime is the lifetime asked for, def when absent. Zero, a negative
// number or one too large for a Duration asks for -1, which the lifetime
// rule refuses (0 is never "the default").
func (t *ttlSeconds) lifetime(def time.Duration) time.Duration {
	switch {
	case t.n == nil:
		return def
	case *t.n > 0 && *t.n <= math.MaxInt64/int64(time.Second):
		return time.Duration(*t.n) * time.Second
	}
	return -1
}

// redeemNames are the members of a redeem body, all required strings: the
// question a proxy would ask, as plain JSON.
var redeemNames = []string{"capability", "outboundContainerId", "requestMethod", "requestUrl"}

// redeem answers the same question as Check, for a caller that is not a
// proxy: which credential may this container send to this URL?
func (h *APIHandler) redeem(w http.ResponseWriter, r *http.Request, body []byte) {
	var v [4]string
	err := strictjson.Decode(body, "request", func(rd *strictjson.Reader) error {
		seen, err := rd.Object("", redeemNames, func(i int, p strictjson.Pointer) (err error) {
			v[i], err = rd.String(p)
			return err
		})
		if err == nil && seen != 1<<len(redeemNames)-1 {
			err = errors.New("a member is missing")
		}
		return err
	})
	if err != nil || !validHeaderName(v[2]) {
		writeJSONError(w, http.StatusBadRequest, apiErrInvalidRequest)
		return
	}
	in := Input{
		Protocol:   ProtocolRedeem,
		Complete:   true,
		Method:     v[2],
		Capability: []string{v[0]},
		CallerID:   v[1],
	}
	// A URL that does not parse leaves scheme, authority and path empty: the
	// policy rejects that as invalid_upstream_url, after the capability and
	// identity checks, in the same order as Check.
	if u, err := policy.ParseURL(v[3]); err == nil {
		in.Scheme, in.Authority, in.Path = u.Scheme, u.Authority, u.Path
	}
	d := h.core.Decide(r.Context(), in)
	if !d.Allowed() {
		writeAPIDeny(w, d.Reason)
		return
	}
	if d.inject.header != "" {
		// A profile capability: the header to set, with its value, and the
		// headers to remove, for a caller to apply without a proxy.
		writeJSONValue(w, http.StatusOK, struct {
			Header     string   `json:"header"`
			Value      string   `json:"value"`
			Remove     []string `json:"remove"`
			RouteClass string   `json:"routeClass"`
			Profile    string   `json:"profile"`
		}{d.inject.header, d.inject.prefix + d.inject.value, d.inject.remove, string(d.Route.Class), d.Profile})
		return
	}
	writeJSONValue(w, http.StatusOK, struct {
		Authorization string `json:"authorization"`
		RouteClass    string `json:"routeClass"`
	}{bearer(d.Credential()), string(d.Route.Class)})
}

// writeAPIDeny answers a deny of the API: the status, JSON body and
// challenge of the reason table (r is already a deny reason: Decide and
// recoverHTTP give no other).
func writeAPIDeny(w http.ResponseWriter, r Reason) {
	noteSlug(w, string(r))
	if c := r.WWWAuthenticate(); c != "" {
		w.Header().Set("WWW-Authenticate", c)
	}
	writeJSON(w, r.HTTPStatus(), r.Body())
}
