// Package envoy holds the deployment configuration for extauthz and the tests
// that keep it correct: the egress Envoy config (envoy.yaml), the docker-compose
// demo's Envoy config (envoy-compose.yaml), the Istio manifests (istio/), and
// structural checks of the repository's Dockerfile and docker-compose.yaml.
//
// No Envoy binary or container engine runs in the tests, so they check what can
// be checked without one: every Envoy config is parsed strictly into the
// go-control-plane protos (unknown fields fail), validated with ValidateAll both
// at the top level and inside every typed_config (which ValidateAll does not
// enter), and held to this project's security invariants:
//
//   - the ext_authz filter runs before the router and fails closed;
//   - every route that forwards tells extauthz which container is calling
//     (outbound_container_id) and the real upstream scheme (upstream_scheme);
//   - the capability header is never forwarded upstream;
//   - every upstream cluster originates TLS with SNI and verifies the
//     certificate, except clusters explicitly marked as local demo clusters in
//     the compose demo config.
//
// The Istio and Kubernetes manifests are also decoded strictly with istio.io/api
// and k8s.io/api types by istio/schema, a module of its own (run `go test ./...`
// there) so that those dependencies stay out of the root module.
//
// The package has no non-test code.
package envoy
