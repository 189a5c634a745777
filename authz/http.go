package authz

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/rs/zerolog"
)

// Paths served by the HTTP handler.
const (
	// ForwardPath is the forward-auth endpoint (nginx auth_request, Traefik
	// forwardAuth, Caddy forward_auth): the original request is described by
	// X-Forwarded-* / X-Original-* headers.
	ForwardPath = "/v1/authz/forward"
	// EnvoyPathPrefix is the Envoy ext_authz http_service endpoint: Envoy
	// sends the original method, authority and headers, and the original path
	// after this prefix (http_service.path_prefix).
	EnvoyPathPrefix = "/v1/authz/envoy"
	// IssuePath and RedeemPath are the capability API, guarded by the admin
	// token.
	IssuePath  = "/v1/capabilities:issue"
	RedeemPath = "/v1/capabilities:redeem"
)

// DefaultHTTPIdentityHeader is the trusted header that carries the caller's
// container id in the HTTP authorization mode.
const DefaultHTTPIdentityHeader = "x-outbound-container-id"

// Response headers of the authorization endpoints.
const (
	// HeaderRouteClass carries the route class of an allow, for access logs.
	HeaderRouteClass = "X-Extauthz-Route-Class"
	// HeaderReason carries the reason slug of a deny, so that a proxy that
	// cannot pass the deny body through (nginx auth_request) can rebuild it.
	HeaderReason = "X-Extauthz-Reason"
	// headerEnvoyRemove lists request headers Envoy removes before going
	// upstream (ext_authz http_service).
	headerEnvoyRemove = "X-Envoy-Auth-Headers-To-Remove"
)

// Protocol names recorded in logs and metrics.
const (
	protocolForward = "http-forward"
	protocolEnvoy   = "http-envoy"
	protocolRedeem  = "api-redeem"
)

// HTTPOptions configure the HTTP adapter.
type HTTPOptions struct {
	// IdentityHeader is the trusted request header that carries the caller's
	// container id; "" means DefaultHTTPIdentityHeader. The proxy must set it
	// from its own knowledge and never pass a client's value through.
	IdentityHeader string
	// CapabilityHeader is the dedicated capability header; "" means
	// DefaultCapabilityHeader.
	CapabilityHeader string
	// UpstreamScheme, when set ("https" or "http"), is the upstream scheme for
	// proxies that originate TLS; it overrides X-Forwarded-Proto.
	UpstreamScheme string
	// APIToken is the bearer token that guards the issue and redeem API. ""
	// disables the API (404). It must be at least MinAPITokenLen bytes of
	// visible ASCII.
	APIToken string
}

// MinAPITokenLen is the shortest admin token accepted.
const MinAPITokenLen = 16

// httpHandler serves the HTTP authorization endpoints and the capability API.
type httpHandler struct {
	core           *Authorizer
	log            zerolog.Logger
	identityHeader string // lower case
	capHeader      string // lower case
	upstreamScheme string
	apiEnabled     bool
	apiTokenHash   [sha256.Size]byte
}

// NewHTTPHandler returns the handler for --http-addr: the forward-auth and
// Envoy http_service endpoints, and the issue/redeem API. Every decision goes
// through core.Decide, so it is logged and counted exactly once.
func NewHTTPHandler(core *Authorizer, opts HTTPOptions) (http.Handler, error) {
	if core == nil {
		return nil, errors.New("authz: NewHTTPHandler needs an Authorizer")
	}
	capHeader, err := CanonicalCapabilityHeader(opts.CapabilityHeader)
	if err != nil {
		return nil, err
	}
	idHeader := strings.ToLower(opts.IdentityHeader)
	if idHeader == "" {
		idHeader = DefaultHTTPIdentityHeader
	}
	switch {
	case !validHeaderName(idHeader):
		return nil, fmt.Errorf("authz: container id header %q is not a valid header name", opts.IdentityHeader)
	case idHeader == "authorization" || idHeader == capHeader || idHeader == "host" || strings.HasPrefix(idHeader, "x-forwarded-") || strings.HasPrefix(idHeader, "x-original-"):
		return nil, fmt.Errorf("authz: container id header %q cannot carry an identity: it has another meaning", opts.IdentityHeader)
	}
	switch opts.UpstreamScheme {
	case "", "http", "https":
	default:
		return nil, fmt.Errorf("authz: upstream scheme must be http or https, got %q", opts.UpstreamScheme)
	}
	h := &httpHandler{
		core:           core,
		log:            core.log,
		identityHeader: idHeader,
		capHeader:      capHeader,
		upstreamScheme: opts.UpstreamScheme,
	}
	if opts.APIToken != "" {
		if err := checkAPIToken(opts.APIToken); err != nil {
			return nil, err
		}
		h.apiEnabled = true
		h.apiTokenHash = sha256.Sum256([]byte(opts.APIToken))
	}
	return h, nil
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

// ServeHTTP dispatches on the raw request target. It does not use
// http.ServeMux, which cleans paths and redirects: the Envoy endpoint must see
// the original path exactly as received, dot segments and double slashes
// included, so that the policy can reject them.
//
// A panic is recovered into a capability_configuration_error deny, with
// every header set so far dropped (an allow may have set Authorization).
func (h *httpHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	defer func() {
		if p := recover(); p != nil {
			if p == http.ErrAbortHandler {
				panic(p)
			}
			h.core.recordPanic("http", p)
			clear(w.Header())
			w.Header().Set("Cache-Control", "no-store")
			w.Header().Set("X-Content-Type-Options", "nosniff")
			writeDeny(w, ReasonConfigurationError)
		}
	}()
	hd := w.Header()
	hd.Set("Cache-Control", "no-store")
	hd.Set("X-Content-Type-Options", "nosniff")
	uri := r.RequestURI
	if uri == "" {
		uri = r.URL.RequestURI()
	}
	path, _, _ := strings.Cut(uri, "?")
	switch {
	case path == ForwardPath:
		h.decideAndRespond(w, h.forwardInput(r), false)
	case strings.HasPrefix(uri, EnvoyPathPrefix):
		h.decideAndRespond(w, h.envoyInput(r, uri[len(EnvoyPathPrefix):]), true)
	case path == IssuePath:
		h.api(w, r, h.issue)
	case path == RedeemPath:
		h.api(w, r, h.redeem)
	default:
		writeJSONError(w, http.StatusNotFound, "not_found")
	}
}

// forwardInput describes the original request from the forward-auth headers.
// A required attribute that is missing, or given twice with different values,
// leaves HasHTTP false: the decision is invalid_upstream_url (fail closed).
func (h *httpHandler) forwardInput(r *http.Request) Input {
	in := h.commonInput(r, protocolForward)
	method, ok1 := tokenAttr(r.Header, "X-Forwarded-Method", "X-Original-Method")
	if method == "" {
		// nginx's auth_request subrequest carries the original method itself.
		method = r.Method
	}
	scheme, ok2 := h.scheme(r.Header)
	authority, ok3 := tokenAttr(r.Header, "X-Forwarded-Host")
	if authority == "" && ok3 {
		authority = r.Host
	}
	uri, ok4 := exactAttr(r.Header, "X-Forwarded-Uri", "X-Original-Uri")
	in.Method, in.Scheme, in.Authority, in.Path = method, scheme, authority, uri
	in.HasHTTP = ok1 && ok2 && ok3 && ok4 && scheme != "" && authority != "" && uri != ""
	return in
}

// envoyInput describes the original request of an Envoy http_service check:
// method and authority as received, the path after the prefix.
func (h *httpHandler) envoyInput(r *http.Request, path string) Input {
	in := h.commonInput(r, protocolEnvoy)
	scheme, ok := h.scheme(r.Header)
	in.Method, in.Scheme, in.Authority, in.Path = r.Method, scheme, r.Host, path
	// An empty path or one that does not start with "/" is left to the
	// policy, which rejects it as invalid_upstream_url after the capability
	// checks, the same order as Check.
	in.HasHTTP = ok && scheme != "" && r.Host != ""
	return in
}

// commonInput reads the capability and the caller identity.
func (h *httpHandler) commonInput(r *http.Request, protocol string) Input {
	id, ok := tokenAttr(r.Header, h.identityHeader)
	if !ok {
		id = "" // ambiguous identity: unknown caller, container_mismatch
	}
	return Input{
		Protocol:      protocol,
		Authorization: r.Header.Values("Authorization"),
		Capability:    r.Header.Values(h.capHeader),
		CallerID:      id,
	}
}

// scheme is the configured upstream scheme, else X-Forwarded-Proto.
func (h *httpHandler) scheme(hd http.Header) (string, bool) {
	if h.upstreamScheme != "" {
		return h.upstreamScheme, true
	}
	return tokenAttr(hd, "X-Forwarded-Proto")
}

// tokenAttr returns the one value the named headers agree on (see agree).
// ok is false when two values differ; v is "" when none is present.
func tokenAttr(hd http.Header, names ...string) (v string, ok bool) {
	lists := make([][]string, len(names))
	for i, n := range names {
		lists[i] = hd.Values(n)
	}
	return agree(nil, lists...)
}

// exactAttr is tokenAttr for values that may contain commas (a URI): every
// occurrence must be identical, and none is split.
func exactAttr(hd http.Header, names ...string) (v string, ok bool) {
	for _, n := range names {
		for _, raw := range hd.Values(n) {
			raw = strings.TrimSpace(raw)
			switch {
			case raw == "":
			case v == "":
				v = raw
			case v != raw:
				return "", false
			}
		}
	}
	return v, true
}

// decideAndRespond runs the decision and answers the proxy.
func (h *httpHandler) decideAndRespond(w http.ResponseWriter, in Input, envoy bool) {
	d := h.core.Decide(in)
	if !d.Allowed() {
		writeDeny(w, d.Reason)
		return
	}
	hd := w.Header()
	hd.Set("Authorization", "Bearer "+d.Credential())
	hd.Set(HeaderRouteClass, string(d.Route.Class))
	if envoy {
		hd.Set(headerEnvoyRemove, h.capHeader+","+h.identityHeader)
	}
	w.WriteHeader(http.StatusOK)
}

// writeDeny answers a deny: the status, JSON body and challenge of the reason
// table, and the reason slug as a header.
func writeDeny(w http.ResponseWriter, r Reason) {
	r = r.asDeny()
	hd := w.Header()
	hd.Set(HeaderReason, string(r))
	if c := r.WWWAuthenticate(); c != "" {
		hd.Set("WWW-Authenticate", c)
	}
	writeJSON(w, r.HTTPStatus(), r.Body())
}

// writeJSONError answers with {"error":"<slug>"}; slugs are fixed ASCII.
func writeJSONError(w http.ResponseWriter, status int, slug string) {
	writeJSON(w, status, `{"error":"`+slug+`"}`)
}

func writeJSON(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, body)
}
