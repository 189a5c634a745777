// Package envoy holds the Envoy configurations for extauthz and the tests that
// keep them correct: the egress Envoy config (envoy.yaml), the same egress
// with ext_authz over HTTP (envoy-http-service.yaml), and the docker compose
// demo's Envoy config (envoy-compose.yaml, mounted by
// deploy/compose/docker-compose.yaml).
//
// Every Envoy config is parsed strictly into the go-control-plane protos
// (unknown fields fail), validated with ValidateAll both at the top level and
// inside every typed_config (which ValidateAll does not enter), and held to
// this project's security invariants:
//
//   - the ext_authz filter runs before the router and fails closed;
//   - every route that forwards tells extauthz which container is calling
//     (outbound_container_id) and the real upstream scheme (upstream_scheme);
//   - the capability header is never forwarded upstream;
//   - every upstream cluster originates TLS with SNI and verifies the
//     certificate, except clusters explicitly marked as local demo clusters in
//     the compose demo config.
//
// edges_test.go holds every config, the HTTP mode's too, to what an Envoy
// user expects of it: a cap on downstream connections, a JSON deny for a host
// no route serves, and an ext_authz call that survives a crashed extauthz
// replica (a retry policy on the service that avoids the replica that
// failed, enough retries for every check in flight, outlier detection on
// local-origin errors applied at once, and health checks within extauthz's
// drain delay).
//
// Then the real Envoy (the version CI installs) validates each config as
// shipped (envoy --mode validate), and refuses the broken fixtures in
// testdata/. The end-to-end tests in e2e/ run the configs with traffic.
//
// Its one piece of non-test code embeds envoy-compose.yaml for `extauthz
// demo` (ComposeConfig).
package envoy
