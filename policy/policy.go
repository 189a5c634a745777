package policy

import (
	"fmt"
	"strings"
)

// DefaultDevHTTPHosts are the hosts a request or target may reach over plain
// http. Every other host requires https.
var DefaultDevHTTPHosts = []string{"localhost", "127.0.0.1", "host.docker.internal"}

// Policy classifies upstream requests. Its only setting is the list of hosts
// allowed over plain http; it never comes from a capability. A Policy is
// immutable and safe for concurrent use. A nil *Policy behaves like the
// default policy.
type Policy struct {
	devHTTPHosts []host
}

var defaultPolicy = func() *Policy {
	p, err := New()
	if err != nil {
		panic(err) // DefaultDevHTTPHosts is a constant list.
	}
	return p
}()

// New returns a policy whose plain-http allowance is DefaultDevHTTPHosts plus
// extra. Each extra host is a host name, a canonical IPv4 address or a
// bracketed IPv6 literal, without a port; anything else is an error.
func New(extraDevHTTPHosts ...string) (*Policy, error) {
	p := &Policy{}
	for _, list := range [][]string{DefaultDevHTTPHosts, extraDevHTTPHosts} {
		for _, s := range list {
			h, err := parseDevHost(s)
			if err != nil {
				return nil, fmt.Errorf("policy: invalid development http host %q: %s", s, reasonOf(err))
			}
			p.devHTTPHosts = append(p.devHTTPHosts, h)
		}
	}
	return p, nil
}

func parseDevHost(s string) (host, error) {
	if strings.HasPrefix(s, "[") && strings.HasSuffix(s, "]") {
		return parseIPv6(s[1 : len(s)-1])
	}
	if strings.IndexByte(s, ':') >= 0 {
		return host{}, errAuthorityChar
	}
	return parseHostName(s)
}

func (p *Policy) orDefault() *Policy {
	if p == nil {
		return defaultPolicy
	}
	return p
}

func (p *Policy) allowsPlainHTTP(h host) bool {
	for _, d := range p.devHTTPHosts {
		if d.equal(h) {
			return true
		}
	}
	return false
}

// checkScheme applies the URL-shape rule: https, or http to a development host.
func (p *Policy) checkScheme(u parsedURL) error {
	if !u.https && !p.allowsPlainHTTP(u.host) {
		return errPlainHTTP
	}
	return nil
}

// parseRequest applies the request-shape, path-safety and URL-shape rules.
func (p *Policy) parseRequest(req Request) (parsedURL, error) {
	if strings.IndexByte(req.Path, '#') >= 0 {
		return parsedURL{}, errFragment
	}
	u, err := parseParts(req.Scheme, req.Authority, req.Path)
	if err != nil {
		return u, err
	}
	return u, p.checkScheme(u)
}

// parsedTargets are the targets after parseTarget, indexed by Target.
type parsedTargets [numTargets]parsedURL

// parseTargets parses every target; the error names the first bad one (in
// Target order) and wraps kind.
func (p *Policy) parseTargets(t Targets, kind error) (parsedTargets, error) {
	var pt parsedTargets
	raw := [numTargets]string{
		TargetBackend:       t.BackendBaseURL,
		TargetProvider:      t.ProviderBaseURL,
		TargetSessionIngest: t.SessionIngestBaseURL,
	}
	for i := TargetBackend; i < numTargets; i++ {
		var err error
		if pt[i], err = p.parseTarget(raw[i]); err != nil {
			return pt, &targetError{kind: kind, target: i.String(), err: err}
		}
	}
	return pt, nil
}

func (p *Policy) parseTarget(raw string) (parsedURL, error) {
	if raw == "" {
		return parsedURL{}, errEmptyTarget
	}
	u, err := parseTarget(raw)
	if err != nil {
		return u, err
	}
	return u, p.checkScheme(u)
}

// ValidateTargets reports whether every target is usable: an absolute https
// URL (http only for a development host) with a well-formed authority, no
// userinfo, query or fragment, and a path that passes the path-safety rule.
// Errors wrap ErrInvalidTargets and name the failing target.
func (p *Policy) ValidateTargets(t Targets) error {
	_, err := p.orDefault().parseTargets(t, ErrInvalidTargets)
	return err
}

// Validate is ValidateTargets with the default policy.
func (t Targets) Validate() error {
	return defaultPolicy.ValidateTargets(t)
}

// Classify decides whether req may go upstream under a capability with
// targets t bound to the session kiloSessionID, and with which credential.
// Errors wrap ErrInvalidUpstreamURL (unsafe or malformed request, or a bad
// target) or ErrUpstreamNotAllowed.
func (p *Policy) Classify(req Request, t Targets, kiloSessionID string) (Route, error) {
	p = p.orDefault()
	pt, err := p.parseTargets(t, ErrInvalidUpstreamURL)
	return p.classifyParsed(req, pt, err, kiloSessionID)
}

// classifyParsed is Classify once the targets are parsed (targetsErr: they
// did not parse): the request's error comes first.
func (p *Policy) classifyParsed(req Request, pt parsedTargets, targetsErr error, kiloSessionID string) (Route, error) {
	r, err := p.parseRequest(req)
	if err != nil {
		return Route{}, err
	}
	if targetsErr != nil {
		return Route{}, targetsErr
	}
	vars := [...]Var{{Name: kiloVar, Value: kiloSessionID}}
	return kiloTable.classify(r, req.Method, (*[numTargets]parsedURL)(&pt), vars[:])
}

// Prepared are targets parsed once by Prepare, so that requests under the
// same targets are classified without parsing them again. A Prepared is
// immutable and safe for concurrent use.
type Prepared struct {
	policy  *Policy
	targets parsedTargets
	err     error // what Classify would report for the targets
}

// Prepare parses t for ClassifyPrepared. Bad targets are not an error here:
// ClassifyPrepared reports them, after the request, exactly as Classify.
func (p *Policy) Prepare(t Targets) *Prepared {
	p = p.orDefault()
	pt, err := p.parseTargets(t, ErrInvalidUpstreamURL)
	return &Prepared{policy: p, targets: pt, err: err}
}

// ClassifyPrepared is Classify with targets from Prepare: the same answer
// for every request. t must come from this policy's Prepare.
func (p *Policy) ClassifyPrepared(req Request, t *Prepared, kiloSessionID string) (Route, error) {
	p = p.orDefault()
	if t.policy != p {
		return Route{}, errForeignPrepared
	}
	return p.classifyParsed(req, t.targets, t.err, kiloSessionID)
}

// Prepare is Policy.Prepare with the default policy.
func Prepare(t Targets) *Prepared {
	return defaultPolicy.Prepare(t)
}

// Classify is Policy.Classify with the default policy.
func Classify(req Request, t Targets, kiloSessionID string) (Route, error) {
	return defaultPolicy.Classify(req, t, kiloSessionID)
}
