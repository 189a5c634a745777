package capability

import "slices"

// The claims' members (docs/decisions.md, section 2) in one table: their
// names, the kind of value each holds, and where it lives in Claims. The
// encoder (appendMembers), the two decoders (claimsDecoder for Open,
// readSubjectMember for subject documents) and the validator
// (Claims.validate) all read it; adding or renaming a member is an edit
// here and in the field binding below it.

// memberKind is the kind of value a member holds: the "value" column of the
// specification's claims table.
type memberKind uint8

const (
	kindVersion        memberKind = iota + 1 // the number 1 (Version)
	kindPurpose                              // the string Purpose
	kindString                               // a non-empty string
	kindSecret                               // a non-empty string, never rendered
	kindOptionalSecret                       // a kindSecret that may be absent, never empty
	kindTargets                              // the object of the target members
	kindURL                                  // an absolute URL (a target)
	kindTime                                 // milliseconds since the Unix epoch, a safe integer >= 0
)

// member is one entry of the table.
type member struct {
	name string
	kind memberKind
}

// Member indexes. The top-level members come in the order the issuer writes
// them (the decoder tries that order first, the encoder writes it); the
// subject's members are userId to targets.
const (
	claimVersion = iota
	claimPurpose
	claimUserID
	claimCloudAgentSessionID
	claimKiloSessionID
	claimOutboundContainerID
	claimUserToken
	claimProviderToken
	claimTargets
	claimIssuedAt
	claimExpiresAt
	numClaims

	firstSubjectClaim = claimUserID
	endSubjectClaims  = claimTargets + 1
)

// Target member indexes, in the targets object; member numClaims+i of the
// table is target i.
const (
	targetBackend = iota
	targetProvider
	targetIngest
	numTargets

	numMembers = numClaims + numTargets
)

// members is the table, indexed as above.
var members = [numMembers]member{
	claimVersion:               {"version", kindVersion},
	claimPurpose:               {"purpose", kindPurpose},
	claimUserID:                {"userId", kindString},
	claimCloudAgentSessionID:   {"cloudAgentSessionId", kindString},
	claimKiloSessionID:         {"kiloSessionId", kindString},
	claimOutboundContainerID:   {"outboundContainerId", kindString},
	claimUserToken:             {"userToken", kindSecret},
	claimProviderToken:         {"providerToken", kindOptionalSecret},
	claimTargets:               {"targets", kindTargets},
	claimIssuedAt:              {"issuedAt", kindTime},
	claimExpiresAt:             {"expiresAt", kindTime},
	numClaims + targetBackend:  {"backendBaseUrl", kindURL},
	numClaims + targetProvider: {"providerBaseUrl", kindURL},
	numClaims + targetIngest:   {"sessionIngestBaseUrl", kindURL},
}

// Derived from members: the names of each object's members, in index order,
// as the decoders look them up; and the top-level members a capability must
// have.
var (
	claimNames     = memberNames(0, numClaims)
	targetNames    = memberNames(numClaims, numMembers)
	subjectNames   = claimNames[firstSubjectClaim:endSubjectClaims]
	requiredClaims = func() (bits uint64) {
		for k := range numClaims {
			if members[k].kind != kindOptionalSecret {
				bits |= 1 << k
			}
		}
		return bits
	}()
)

// Derived from members: the members of each kind that Claims.validate
// checks one by one (version and purpose are single values it compares),
// in table order.
var (
	stringMembers   = membersOf(kindString, kindSecret)
	optionalMembers = membersOf(kindOptionalSecret)
	urlMembers      = membersOf(kindURL)
	timeMembers     = membersOf(kindTime)
)

func memberNames(lo, hi int) []string {
	names := make([]string, 0, hi-lo)
	for _, m := range members[lo:hi] {
		names = append(names, m.name)
	}
	return names
}

func membersOf(kinds ...memberKind) []int {
	var ks []int
	for k, m := range members {
		if slices.Contains(kinds, m.kind) {
			ks = append(ks, k)
		}
	}
	return ks
}

// pointer is the JSON Pointer of member k, for errors.
func pointer(k int) string {
	if k >= numClaims {
		return "/" + members[claimTargets].name + "/" + members[k].name
	}
	return "/" + members[k].name
}

// The field binding: where each member lives in Subject and Claims.

// stringFields returns where each string member of s lives, by member index
// (nil for members that are not the subject's strings).
func (s *Subject) stringFields() [numMembers]*string {
	return [numMembers]*string{
		claimUserID:                &s.UserID,
		claimCloudAgentSessionID:   &s.CloudAgentSessionID,
		claimKiloSessionID:         &s.KiloSessionID,
		claimOutboundContainerID:   &s.OutboundContainerID,
		claimUserToken:             &s.UserToken,
		claimProviderToken:         &s.ProviderToken,
		numClaims + targetBackend:  &s.Targets.BackendBaseURL,
		numClaims + targetProvider: &s.Targets.ProviderBaseURL,
		numClaims + targetIngest:   &s.Targets.SessionIngestBaseURL,
	}
}

// stringFields returns where each string member of c lives, by member index
// (nil for the others).
func (c *Claims) stringFields() [numMembers]*string {
	f := c.Subject.stringFields()
	f[claimPurpose] = &c.Purpose
	return f
}

// intField returns the value of the integer member k of c (0 for a member
// that is not one).
func (c *Claims) intField(k int) int64 {
	switch k {
	case claimVersion:
		return int64(c.Version)
	case claimIssuedAt:
		return c.IssuedAt
	case claimExpiresAt:
		return c.ExpiresAt
	}
	return 0
}

// setIntField sets the integer member k of c to v (nothing for a member
// that is not one).
func (c *Claims) setIntField(k int, v int64) {
	switch k {
	case claimVersion:
		c.Version = int(v)
	case claimIssuedAt:
		c.IssuedAt = v
	case claimExpiresAt:
		c.ExpiresAt = v
	}
}
