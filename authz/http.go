package authz

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
)

// Response headers of the authorization endpoints.
const (
	// HeaderRouteClass carries the route class of an allow, for access logs.
	HeaderRouteClass = "X-Extauthz-Route-Class"
	// HeaderReason carries the reason slug of a deny, so that a proxy that
	// cannot pass the deny body through (nginx auth_request) can rebuild it.
	HeaderReason = "X-Extauthz-Reason"
	// HeaderProfile carries the route profile of a profile allow.
	HeaderProfile = "X-Extauthz-Profile"
	// HeaderRemove lists, on a profile allow of the forward endpoint, the
	// request headers the proxy must remove before going upstream
	// (comma-separated, lower case): what headerEnvoyRemove tells Envoy.
	HeaderRemove = "X-Extauthz-Remove"
	// headerEnvoyRemove lists request headers Envoy removes before going
	// upstream (ext_authz http_service).
	headerEnvoyRemove = "X-Envoy-Auth-Headers-To-Remove"
)

// forwardedHeaders are read as request attributes by the forward endpoint:
// none of them may carry the caller's identity ("-" ends a prefix).
var forwardedHeaders = []string{"host", "x-forwarded-", "x-original-"}

// HTTPOptions configure the HTTP authorization adapter.
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
}

// HTTPHandler is the HTTP authorization adapter: the forward-auth and Envoy
// http_service endpoints. Every decision goes through Authorizer.Decide, so
// it is logged and counted exactly once.
type HTTPHandler struct {
	core           *Authorizer
	identityHeader string // lower case
	capHeader      string // lower case
	upstreamScheme string
	// envoyRemove is the headerEnvoyRemove value of an allow: the
	// removedOnAllow headers, comma-separated.
	envoyRemove string
}

// NewHTTPHandler returns the HTTP authorization adapter. Any other path,
// the capability API's included, is 404.
func NewHTTPHandler(core *Authorizer, opts HTTPOptions) (*HTTPHandler, error) {
	if core == nil {
		return nil, errors.New("authz: NewHTTPHandler needs an Authorizer")
	}
	capHeader, err := CanonicalCapabilityHeader(opts.CapabilityHeader)
	if err != nil {
		return nil, err
	}
	if opts.IdentityHeader == "" {
		opts.IdentityHeader = DefaultHTTPIdentityHeader
	}
	idHeader, err := identityHeaderName(opts.IdentityHeader, capHeader, forwardedHeaders...)
	if err != nil {
		return nil, err
	}
	if err := CheckUpstreamScheme(opts.UpstreamScheme); err != nil {
		return nil, fmt.Errorf("authz: upstream scheme: %w", err)
	}
	return &HTTPHandler{core: core, identityHeader: idHeader, capHeader: capHeader, upstreamScheme: opts.UpstreamScheme,
		envoyRemove: strings.Join(removedOnAllow(capHeader, idHeader), ",")}, nil
}

// ServeHTTP serves ForwardPath and EnvoyPathPrefix, routed on the raw
// request target (endpoints.go); anything else is 404.
//
// A panic is recovered into a capability_configuration_error deny, with
// every header set so far dropped (an allow may have set Authorization).
func (h *HTTPHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	id, rest := endpointOf(r)
	if id != epForward && id != epEnvoy {
		startJSON(w)
		writeJSONError(w, http.StatusNotFound, "not_found")
		return
	}
	defer h.core.recoverHTTP(r.Context(), w, endpoints[id].Protocol, writeDeny)
	startJSON(w)
	if id == epForward {
		h.decideAndRespond(r.Context(), w, h.forwardInput(r), false)
	} else {
		h.decideAndRespond(r.Context(), w, h.envoyInput(r, rest), true)
	}
}

// forwardInput describes the original request from the forward-auth headers.
// A required attribute that is missing, or given twice with different values,
// leaves Complete false: the decision is invalid_upstream_url (fail closed).
func (h *HTTPHandler) forwardInput(r *http.Request) Input {
	in := h.commonInput(r, ProtocolForward)
	method, ok1 := agreedHeader(r.Header, listForm, "X-Forwarded-Method", "X-Original-Method")
	if method == "" {
		// nginx's auth_request subrequest carries the original method itself.
		method = r.Method
	}
	scheme, ok2 := h.scheme(r.Header)
	authority, ok3 := agreedHeader(r.Header, listForm, "X-Forwarded-Host")
	if authority == "" && ok3 {
		authority = r.Host
	}
	uri, ok4 := agreedHeader(r.Header, wholeForm, "X-Forwarded-Uri", "X-Original-Uri")
	in.Method, in.Scheme, in.Authority, in.Path = method, scheme, authority, uri
	in.Complete = ok1 && ok2 && ok3 && ok4 && scheme != "" && authority != "" && uri != ""
	return in
}

// envoyInput describes the original request of an Envoy http_service check:
// method and authority as received, the path after the prefix.
func (h *HTTPHandler) envoyInput(r *http.Request, path string) Input {
	in := h.commonInput(r, ProtocolEnvoy)
	scheme, ok := h.scheme(r.Header)
	in.Method, in.Scheme, in.Authority, in.Path = r.Method, scheme, r.Host, path
	// An empty path or one that does not start with "/" is left to the
	// policy, which rejects it as invalid_upstream_url after the capability
	// checks, the same order as Check.
	in.Complete = ok && scheme != "" && r.Host != ""
	return in
}

// commonInput reads the capability, in every header where one may arrive,
// and the caller identity.
func (h *HTTPHandler) commonInput(r *http.Request, protocol string) Input {
	id, ok := agreedHeader(r.Header, idForm, h.identityHeader)
	if !ok {
		id = "" // ambiguous identity: unknown caller, container_mismatch
	}
	st := h.core.currentProfiles()
	in := Input{
		Protocol:         protocol,
		Authorization:    r.Header.Values("Authorization"),
		Capability:       r.Header.Values(h.capHeader),
		CapabilityHeader: h.capHeader,
		CallerID:         id,
		profiles:         st,
	}
	if len(st.headers) > 0 {
		in.Named = make([][]string, len(st.headers))
		for i, name := range st.headers {
			in.Named[i] = r.Header.Values(name)
		}
	}
	return in
}

// scheme is the configured upstream scheme, else X-Forwarded-Proto.
func (h *HTTPHandler) scheme(hd http.Header) (string, bool) {
	if h.upstreamScheme != "" {
		return h.upstreamScheme, true
	}
	return agreedHeader(hd, listForm, "X-Forwarded-Proto")
}

// decideAndRespond runs the decision and answers the proxy.
func (h *HTTPHandler) decideAndRespond(ctx context.Context, w http.ResponseWriter, in Input, envoy bool) {
	d := h.core.Decide(ctx, in)
	if !d.Allowed() {
		writeDenyWith(w, d.Reason, d.wwwAuthenticate())
		return
	}
	hd := w.Header()
	hd.Set(HeaderRouteClass, string(d.Route.Class))
	if d.inject.header == "" {
		hd.Set(credentialHeaderKey, bearer(d.Credential()))
		if envoy {
			hd.Set(headerEnvoyRemove, h.envoyRemove)
		}
		w.WriteHeader(http.StatusOK)
		return
	}
	// A profile allow: the header its route injects into, and every
	// header to remove, the profile's other capability headers with them.
	hd.Set(d.inject.header, d.inject.prefix+d.inject.value)
	hd.Set(HeaderProfile, d.Profile)
	remove := h.envoyRemove
	if len(d.inject.remove) > 0 {
		remove += "," + strings.Join(d.inject.remove, ",")
	}
	if envoy {
		hd.Set(headerEnvoyRemove, remove)
	} else {
		hd.Set(HeaderRemove, remove)
	}
	w.WriteHeader(http.StatusOK)
}

// credentialHeaderKey is credentialHeader in http.Header's canonical form,
// which Header.Set keeps without allocating.
var credentialHeaderKey = http.CanonicalHeaderKey(credentialHeader)

// writeDeny answers a deny: the status, JSON body and challenge of the reason
// table, and the reason slug as a header.
func writeDeny(w http.ResponseWriter, r Reason) {
	writeDenyWith(w, r, r.asDeny().WWWAuthenticate())
}

// writeDenyWith is writeDeny with the challenge c ("" for none).
func writeDenyWith(w http.ResponseWriter, r Reason, c string) {
	r = r.asDeny()
	hd := w.Header()
	hd.Set(HeaderReason, string(r))
	if c != "" {
		hd.Set("WWW-Authenticate", c)
	}
	writeJSON(w, r.HTTPStatus(), r.Body())
}
