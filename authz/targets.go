package authz

import (
	"sync"

	"github.com/extauthz/extauthz/capability"
	"github.com/extauthz/extauthz/policy"
)

// maxPreparedTargets bounds preparedTargets. A deployment issues
// capabilities for a handful of target sets (its backend, provider and
// ingest URLs), so this is far more than it uses.
const maxPreparedTargets = 256

// preparedTargets memoizes policy.Prepare by the targets' text, so that the
// route policy does not parse the same three base URLs on every request.
// Preparing is a pure function of the policy and the text, so a cached
// entry gives exactly the answer a fresh one would. Target URLs are not
// secret. When full, it starts again empty.
type preparedTargets struct {
	policy *policy.Policy
	mu     sync.RWMutex
	m      map[capability.Targets]*policy.Prepared
}

func newPreparedTargets(p *policy.Policy) *preparedTargets {
	return &preparedTargets{policy: p, m: make(map[capability.Targets]*policy.Prepared)}
}

// get returns the prepared policy for a capability's targets, which it
// hands to the policy as policy.Targets (the same fields).
func (c *preparedTargets) get(t capability.Targets) *policy.Prepared {
	c.mu.RLock()
	p := c.m[t]
	c.mu.RUnlock()
	if p != nil {
		return p
	}
	p = c.policy.Prepare(policy.Targets(t))
	c.mu.Lock()
	if len(c.m) >= maxPreparedTargets {
		clear(c.m)
	}
	c.m[t] = p
	c.mu.Unlock()
	return p
}
