// Package istio holds the Istio manifests for extauthz and the tests that
// keep them correct: the extauthz Deployment with its Service, policies and
// budgets (extauthz.yaml), the egress gateway's routes, TLS origination and
// retries of a crashed replica's checks (egress.yaml), and the mesh config
// that names extauthz as an ext_authz provider (mesh-config.yaml); and, in
// profiles/, the egress wiring of the route profiles' origins
// (profiles/egress.yaml), held to profiles/providers.yaml by
// TestIstioProfilesWiring.
//
// The tests read the manifests as plain data and hold them to this project's
// rules: the provider fails closed, only the egress gateway may ask extauthz,
// the container identity is the sandbox's pinned SPIFFE principal, the pods
// run non-root and read-only, the liveness probe stays off the admin port,
// and the gateway retries and ejects the way deploy/envoy/envoy.yaml does
// (the EnvoyFilter's patch values decoded with Envoy's own types). The same manifests are also decoded
// strictly with istio.io/api and k8s.io/api types by schema/, a module of its
// own (run `go test ./...` there) so that those dependencies stay out of the
// root module.
//
// The package has no non-test code.
package istio
