package authz

import (
	"fmt"
	"regexp"
	"strings"
)

// IdentityKind says where the caller's container identity comes from.
type IdentityKind int

// Identity sources, in the order of trust of docs/decisions.md.
const (
	// IdentityContextExtension reads a gRPC context extension that the proxy's
	// route configuration sets (the default: outbound_container_id).
	IdentityContextExtension IdentityKind = iota + 1
	// IdentityPrincipal reads the mTLS peer principal (Istio: a SPIFFE id) and
	// takes the first capture group of a pattern.
	IdentityPrincipal
	// IdentityHeader reads a request header that the proxy sets and strips from
	// clients. Only safe when the proxy guarantees that.
	IdentityHeader
)

// DefaultIdentitySpec is the default --container-id-from value.
const DefaultIdentitySpec = "context-extension:outbound_container_id"

// IdentitySource is a parsed --container-id-from value. Exactly one source is
// used: falling back to a less trusted one would let a client supply its own
// identity whenever the trusted one is missing.
type IdentitySource struct {
	Kind    IdentityKind
	Key     string // context extension key or lower-case header name
	Pattern *regexp.Regexp
}

// ParseIdentitySource parses "context-extension:KEY", "principal:REGEX" or
// "header:NAME".
func ParseIdentitySource(spec string) (IdentitySource, error) {
	kind, arg, ok := strings.Cut(spec, ":")
	if !ok || arg == "" {
		return IdentitySource{}, fmt.Errorf("container id source %q: want context-extension:KEY, principal:REGEX or header:NAME", spec)
	}
	switch kind {
	case "context-extension":
		return IdentitySource{Kind: IdentityContextExtension, Key: arg}, nil
	case "principal":
		re, err := regexp.Compile(arg)
		if err != nil {
			return IdentitySource{}, fmt.Errorf("container id source %q: bad pattern: %w", spec, err)
		}
		if re.NumSubexp() < 1 {
			return IdentitySource{}, fmt.Errorf("container id source %q: the pattern needs a capture group for the container id", spec)
		}
		return IdentitySource{Kind: IdentityPrincipal, Pattern: re}.canonical("")
	case "header":
		name, err := identityHeaderName(arg, "")
		if err != nil {
			return IdentitySource{}, fmt.Errorf("container id source %q: %w", spec, err)
		}
		return IdentitySource{Kind: IdentityHeader, Key: name}, nil
	default:
		return IdentitySource{}, fmt.Errorf("container id source %q: unknown kind %q (want context-extension, principal or header)", spec, kind)
	}
}

// canonical checks a source that may not come from ParseIdentitySource (a
// struct literal) the way ParseIdentitySource would, lower-cases a header
// name and refuses the capability header capHeader as the identity header.
func (s IdentitySource) canonical(capHeader string) (IdentitySource, error) {
	switch s.Kind {
	case IdentityContextExtension:
		if s.Key == "" {
			return s, fmt.Errorf("container id source: context extension key is empty")
		}
	case IdentityPrincipal:
		if s.Pattern == nil || s.Pattern.NumSubexp() < 1 {
			return s, fmt.Errorf("container id source: the principal pattern needs a capture group for the container id")
		}
		s.Pattern = anchored(s.Pattern)
	case IdentityHeader:
		key, err := identityHeaderName(s.Key, capHeader)
		if err != nil {
			return s, fmt.Errorf("container id source: %w", err)
		}
		s.Key = key
	default:
		return s, fmt.Errorf("container id source: unknown kind %d", s.Kind)
	}
	return s, nil
}

// String returns the spec the source was parsed from.
func (s IdentitySource) String() string {
	switch s.Kind {
	case IdentityContextExtension:
		return "context-extension:" + s.Key
	case IdentityPrincipal:
		if s.Pattern == nil {
			return "principal:"
		}
		return "principal:" + s.Pattern.String()
	case IdentityHeader:
		return "header:" + s.Key
	default:
		return "none"
	}
}

// anchored returns re matching only whole strings: a principal pattern
// that matched a part (`…/sa/id/extra`, or a SPIFFE id of another trust
// domain that ends in an allowed one) would let another workload claim a
// sandbox's id. Wrapping an anchored pattern again changes nothing.
func anchored(re *regexp.Regexp) *regexp.Regexp {
	return regexp.MustCompile(`^(?:` + re.String() + `)$`) // a valid pattern stays valid
}

// fromPrincipal extracts the container id from a principal, or "".
func (s IdentitySource) fromPrincipal(principal string) string {
	if principal == "" {
		return ""
	}
	m := s.Pattern.FindStringSubmatch(principal)
	if len(m) < 2 {
		return ""
	}
	return m[1]
}
