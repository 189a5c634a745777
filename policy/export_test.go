package policy

// What the external tests (package policy_test, which may import packages
// that import policy, such as profiles) use of this package's test corpus.

// CorpusCase is one rule or attack case: a request, the target shape it is
// made against, and the session it is bound to.
type CorpusCase struct {
	Shape, Scheme, Authority, Path, Session string
}

// Corpus returns the target shapes and every rule and attack case.
func Corpus() (map[string]Targets, []CorpusCase) {
	var out []CorpusCase
	for _, c := range append(append([]classifyCase{}, ruleCases...), attackCases...) {
		out = append(out, CorpusCase{Shape: c.shape, Scheme: c.scheme, Authority: c.authority, Path: c.path, Session: c.session})
	}
	return shapes, out
}

// FuzzTargets is fuzzTargets: a shape picked by sel, one target replaced by
// target when sel's high bit is set.
var FuzzTargets = fuzzTargets

// SessionID is the corpus's default session.
const SessionID = sessionID
