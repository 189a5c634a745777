package authz

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
)

// This file holds every header rule the adapters share: which names may
// carry a capability or an identity, and how the values of a header that
// arrives more than once must agree. No adapter has a rule of its own.

// DefaultCapabilityHeader is the dedicated header that may carry a capability.
const DefaultCapabilityHeader = "x-kilo-capability"

// DefaultHTTPIdentityHeader is the trusted header that carries the caller's
// container id in the HTTP authorization mode.
const DefaultHTTPIdentityHeader = "x-outbound-container-id"

// valueForm says how agree reads each value of a header.
type valueForm int

const (
	// listForm: a value is a comma-separated list, since a proxy joins a
	// repeated header with commas; each trimmed, non-empty part counts. For
	// values that never contain a comma: a capability, a host, a method, an
	// id, a scheme.
	listForm valueForm = iota
	// wholeForm: a value counts as received, neither split nor trimmed. For
	// values that may contain a comma (a path) and must be checked exactly as
	// the proxy forwards them.
	wholeForm
	// idForm: listForm without leniency, for the caller's identity: an empty
	// occurrence or an empty part (`id,`, `,id`, an empty header beside a
	// full one) makes the value ambiguous, never skipped.
	idForm
)

// agree returns the one value that every occurrence in every list agrees on;
// empty occurrences do not count. pick, when not nil, maps an occurrence to
// the value it stands for, or skips it. ok is false when two values differ
// (the request is ambiguous: the caller denies); v is "" when there is none.
func agree(form valueForm, pick func(string) (string, bool), lists ...[]string) (v string, ok bool) {
	take := func(part string) bool {
		if pick != nil {
			var keep bool
			if part, keep = pick(part); !keep {
				return true
			}
		}
		switch {
		case v == "":
			v = part
		case v != part:
			return false
		}
		return true
	}
	for _, list := range lists {
		for _, raw := range list {
			if form == wholeForm {
				if raw != "" && !take(raw) {
					return "", false
				}
				continue
			}
			for part := range strings.SplitSeq(raw, ",") {
				part = strings.TrimSpace(part)
				if part == "" && form == idForm {
					return "", false
				}
				if part != "" && !take(part) {
					return "", false
				}
			}
		}
	}
	return v, true
}

// agreedHeader is agree over every value of the named request headers.
func agreedHeader(h http.Header, form valueForm, names ...string) (string, bool) {
	var buf [4][]string
	lists := buf[:0]
	for _, n := range names {
		lists = append(lists, h.Values(n))
	}
	return agree(form, nil, lists...)
}

// credentialHeader is the header an allow sets, to bearer(credential),
// replacing whatever the container sent (docs/decisions.md section 5).
const credentialHeader = "authorization"

// bearerPrefix starts an allow's credentialHeader value; bearer writes it,
// and appendAllow (grpc.go) has checkwire append the same two parts.
const bearerPrefix = "Bearer "

// bearer is the value of credentialHeader that carries credential.
func bearer(credential string) string { return bearerPrefix + credential }

// removedOnAllow lists the headers an allow removes (docs/decisions.md
// section 5): the capability header, and identityHeader when the caller's
// identity came from a header ("" when it did not). Never
// credentialHeader, which an allow sets: Envoy removes after it sets
// (section 7).
func removedOnAllow(capHeader, identityHeader string) []string {
	if identityHeader == "" {
		return []string{capHeader}
	}
	return []string{capHeader, identityHeader}
}

// validHeaderName reports whether name is an RFC 9110 token.
func validHeaderName(name string) bool {
	if name == "" {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// reservedHeaders may not carry a capability: the allow removes the capability
// header, and removing one of these breaks the request (or makes Envoy with
// validate_mutations reject every allow).
var reservedHeaders = map[string]bool{
	"host": true, "connection": true, "keep-alive": true, "proxy-connection": true,
	"te": true, "trailer": true, "transfer-encoding": true, "upgrade": true,
	"content-length": true, "content-type": true, "cookie": true,
	"proxy-authorization": true, "x-envoy-auth-headers-to-remove": true,
}

// traceHeaders are the trace context headers: W3C trace context, and B3
// single and multiple; every header tracePropagator reads (trace.go). No
// identity is ever read from one (proxyHeaders).
var traceHeaders = []string{"traceparent", "tracestate", "b3", "x-b3-traceid", "x-b3-spanid", "x-b3-sampled", "x-b3-flags", "x-b3-parentspanid"}

// proxyHeaders are set or appended by proxies on the way (an entry ending in
// "-" stands for every name with that prefix, here every B3 header, known
// or not): a client can send them, and a proxy adds to them rather than
// replacing them, so none can be trusted to carry an identity.
var proxyHeaders = append([]string{"forwarded", "x-forwarded-", "x-real-ip", "via", "x-envoy-", "x-request-id", "x-b3-"}, traceHeaders...)

// CanonicalCapabilityHeader validates a dedicated capability header name and
// returns it lower-case; "" means DefaultCapabilityHeader.
func CanonicalCapabilityHeader(name string) (string, error) {
	if name == "" {
		return DefaultCapabilityHeader, nil
	}
	h := strings.ToLower(name)
	switch {
	case !validHeaderName(h):
		return "", fmt.Errorf("authz: capability header %q is not a valid header name", name)
	case h == "authorization":
		return "", errors.New("authz: the capability header may not be authorization: it is overwritten with the real credential")
	case reservedHeaders[h]:
		return "", fmt.Errorf("authz: capability header %q has a meaning to proxies; removing it would break requests", name)
	}
	return h, nil
}

// identityHeaderName validates the name of a header that carries the
// caller's identity and returns it lower-case. It may not be authorization
// (overwritten on allow), the capability header capHeader (when known), nor
// a header the adapter reads for something else: taken lists such names, an
// entry ending in "-" standing for every name with that prefix.
func identityHeaderName(name, capHeader string, taken ...string) (string, error) {
	h := strings.ToLower(name)
	if !validHeaderName(h) {
		return "", fmt.Errorf("authz: identity header %q is not a valid header name", name)
	}
	if h == "authorization" || h == capHeader {
		return "", fmt.Errorf("authz: identity header %q cannot carry an identity: it carries a credential", name)
	}
	if reservedHeaders[h] {
		return "", fmt.Errorf("authz: identity header %q has a meaning to proxies; an allow removes the identity header, which would break requests", name)
	}
	for _, t := range append(proxyHeaders, taken...) {
		if h == t || (strings.HasSuffix(t, "-") && strings.HasPrefix(h, t)) {
			return "", fmt.Errorf("authz: identity header %q cannot carry an identity: it has another meaning", name)
		}
	}
	return h, nil
}

// CheckUpstreamScheme validates a configured upstream scheme: "" (take the
// request's), "https" or "http".
func CheckUpstreamScheme(s string) error {
	switch s {
	case "", "http", "https":
		return nil
	default:
		return fmt.Errorf("want http or https, got %q", s)
	}
}
