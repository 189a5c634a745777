// Package authz decides whether a sandboxed container may make an upstream
// request with the capability it presents, issues capabilities, and
// translates decisions for the callers that ask.
//
// The decision core (Authorizer, core.go) is protocol independent. Decide
// runs the checks in the order docs/decisions.md fixes — request attributes
// present, capability presented, capability opens, capability not revoked
// (Config.Revocations, one in-memory lookup), caller is the bound container,
// upstream URL classified — and the first failure decides. Issue
// (issue.go) is the one issuance sequence. The adapters sit side by side on
// the core, each in its own file with its own type, and none uses another:
//
//   - grpc.go: GRPCServer, Envoy's ext_authz Check. Register adds it to a
//     grpc.Server made with ServerOptions; the request is read from its
//     encoding and an allow encoded directly by internal/checkwire, the
//     one production path, behind a package boundary. Its test oracle is
//     the same Check on protobuf-go's decoded messages (oracle_test.go),
//     held equal by differential fuzzers (FuzzWireFields, FuzzAppendOK);
//   - http.go: HTTPHandler, the forward-auth and Envoy http_service
//     endpoints;
//   - api.go: APIHandler, the admin capability API (issue, redeem), with
//     the revocation endpoints in revoke.go.
//
// Every decision has one observer (observe.go): it writes the decision
// line (Config.LogAllows says which allows; every deny), counts the
// metrics and annotates the span in the request's context. trace.go
// starts those spans when a tracer provider is given: the Check span in
// the gRPC adapter, the HTTP listener's through otelhttp (TraceHTTP). No
// one reads an answer back to learn what was decided.
//
// What they share lives in one file each: header rules (headers.go; the
// rule of a CheckRequest's header_map in checkwire), the reason table
// (reason.go), caller identity sources (identity.go), the HTTP listener's
// route table (endpoints.go), JSON answers over HTTP (respond.go).
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
//   - Logs carry one line per deny, and per allow unless Config.LogAllows
//     says otherwise, with non-secret facts only: never a token, a key, a
//     capability, an authorization value or a query string. Spans carry the
//     same facts and the trace context, nothing else a client sent.
package authz
