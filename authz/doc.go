// Package authz decides whether a sandboxed container may make an upstream
// request with the capability it presents, and translates that decision for the
// proxies that ask: Envoy's gRPC ext_authz Check (Server) and plain HTTP
// authorization endpoints.
//
// The decision core (Authorizer.Decide) is protocol independent. It runs the
// checks in the order DESIGN.md fixes — request attributes present, capability
// presented, capability opens, caller is the bound container, upstream URL
// classified — and the first failure decides.
//
// Security invariants:
//   - Fail closed: every error, every unknown input and every ambiguity
//     (duplicate headers with different values, an unknown caller) is a deny.
//   - A Decision carries the real credential only when it allows; it is reachable
//     only through Decision.Credential and is never logged, never put in metadata
//     and never part of a deny.
//   - The capability header is removed and authorization overwritten on allow,
//     so the upstream never sees a capability.
//   - Check never returns a Go error for a decision: a deny is an OK RPC with a
//     non-OK Status, so failure_mode_allow can never turn a deny into an allow.
//   - Logs carry one line per decision with non-secret facts only: never a token,
//     a key, a capability, an authorization value or a query string.
package authz
