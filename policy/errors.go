package policy

// reasonError is a sentinel plus a fixed, non-secret reason. The values below
// are allocated once, so a deny on the hot path does not allocate.
type reasonError struct {
	kind   error
	reason string
}

func (e *reasonError) Error() string { return e.kind.Error() + ": " + e.reason }
func (e *reasonError) Unwrap() error { return e.kind }

func invalidURL(reason string) *reasonError {
	return &reasonError{kind: ErrInvalidUpstreamURL, reason: reason}
}

func notAllowed(reason string) *reasonError {
	return &reasonError{kind: ErrUpstreamNotAllowed, reason: reason}
}

// Reasons for ErrInvalidUpstreamURL.
var (
	errScheme            = invalidURL("scheme is not http or https")
	errPlainHTTP         = invalidURL("plain http to a host that is not a development host")
	errNotAbsolute       = invalidURL("not an absolute scheme:// URL")
	errFragment          = invalidURL("fragment")
	errEmptyHost         = invalidURL("empty host")
	errUserinfo          = invalidURL("userinfo in authority")
	errHostPercent       = invalidURL("percent sign in host")
	errAuthorityChar     = invalidURL("character not allowed in authority")
	errHostLabel         = invalidURL("empty host label")
	errIPv4              = invalidURL("non-canonical IPv4 address")
	errIPv6              = invalidURL("malformed IPv6 literal")
	errPort              = invalidURL("malformed port")
	errPathStart         = invalidURL("path does not start with /")
	errPathChar          = invalidURL("character not allowed in path")
	errSemicolon         = invalidURL("';' in path")
	errSpace             = invalidURL("space in path")
	errControl           = invalidURL("control character in path")
	errBackslash         = invalidURL("backslash in path")
	errEmptySegment      = invalidURL("empty path segment")
	errDotSegment        = invalidURL("dot segment in path")
	errMalformedEscape   = invalidURL("malformed percent escape in path")
	errEncodedSeparator  = invalidURL("encoded / or \\ in path")
	errEncodedUnreserved = invalidURL("percent-encoded unreserved character in path")
	errInvalidUTF8       = invalidURL("path decodes to invalid UTF-8")
	errTooManyEncodings  = invalidURL("path still encoded after 4 decoding rounds")
	errQueryChar         = invalidURL("character not allowed in query")
	errTargetQuery       = invalidURL("target has a query")
	errEmptyTarget       = invalidURL("target is empty")
)

// Reasons for ErrUpstreamNotAllowed.
var (
	errNoRoute = notAllowed("no target route matches")
	// errForeignPrepared: ClassifyPrepared got targets another policy
	// prepared (a programming error; fail closed).
	errForeignPrepared = invalidURL("targets prepared by another policy")
)

// targetError reports which target failed. It wraps kind (ErrInvalidTargets
// from ValidateTargets, ErrInvalidUpstreamURL from Classify), not the inner
// reason's sentinel, so exactly one reason slug matches.
type targetError struct {
	kind   error
	target string // claim name, e.g. "backendBaseUrl"
	err    error
}

func (e *targetError) Error() string {
	return e.kind.Error() + ": " + e.target + ": " + reasonOf(e.err)
}

// reasonOf returns the reason of a *reasonError without its sentinel prefix.
func reasonOf(err error) string {
	if r, ok := err.(*reasonError); ok {
		return r.reason
	}
	return err.Error()
}

func (e *targetError) Unwrap() error { return e.kind }
