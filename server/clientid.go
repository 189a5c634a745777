package server

import (
	"crypto/tls"
	"errors"
	"fmt"
	"regexp"
	"strings"
)

// ClientIdentities is the allow-list of client certificates that may ask for
// decisions over mTLS. A certificate the client CA signed is not enough: a
// mesh CA also signs the sandboxes' certificates, and a sandbox that can ask
// extauthz directly gets real tokens. So the certificate must also name an
// allowed identity: one of its URI SANs (a SPIFFE id) or DNS SANs must match
// an entry.
type ClientIdentities []identityMatcher

// identityMatcher matches one kind of subject-alt-name, exactly or with a
// regular expression that must match the whole name.
type identityMatcher struct {
	kind  string // "uri" or "dns"
	exact string
	re    *regexp.Regexp
}

// ParseClientIdentities reads --tls-client-identities: comma-separated
// entries `uri:VALUE` or `dns:VALUE`, where VALUE is an exact name or, after
// `~`, a regular expression that is always matched against the whole name.
func ParseClientIdentities(list string) (ClientIdentities, error) {
	var ids ClientIdentities
	for entry := range strings.SplitSeq(list, ",") {
		entry = strings.TrimSpace(entry)
		if entry == "" {
			continue
		}
		kind, value, ok := strings.Cut(entry, ":")
		if !ok || (kind != "uri" && kind != "dns") || value == "" {
			return nil, fmt.Errorf("%q: want uri:NAME, dns:NAME, uri:~REGEX or dns:~REGEX", entry)
		}
		m := identityMatcher{kind: kind}
		if expr, isRE := strings.CutPrefix(value, "~"); isRE {
			re, err := regexp.Compile(`^(?:` + expr + `)$`)
			if err != nil {
				return nil, fmt.Errorf("%q: %w", entry, err)
			}
			m.re = re
		} else {
			m.exact = value
		}
		ids = append(ids, m)
	}
	return ids, nil
}

func (m identityMatcher) match(name string) bool {
	if m.re != nil {
		return m.re.MatchString(name)
	}
	return name == m.exact
}

// errClientIdentity refuses a verified client certificate that names no
// allowed identity. Its text names no certificate content.
var errClientIdentity = errors.New("client certificate names no identity allowed by --tls-client-identities")

// verify is a tls.Config.VerifyConnection: after the chain is verified, the
// leaf must carry an allowed URI or DNS name.
func (ids ClientIdentities) verify(cs tls.ConnectionState) error {
	if len(cs.PeerCertificates) == 0 {
		return errClientIdentity
	}
	leaf := cs.PeerCertificates[0]
	for _, m := range ids {
		switch m.kind {
		case "uri":
			for _, u := range leaf.URIs {
				if m.match(u.String()) {
					return nil
				}
			}
		case "dns":
			for _, d := range leaf.DNSNames {
				if m.match(d) {
					return nil
				}
			}
		}
	}
	return errClientIdentity
}
