// Package schema decodes Kubernetes and Istio manifests strictly, with
// Istio's and Kubernetes' own API types: a field those APIs do not have, a
// misspelt or mis-cased name, or a value of the wrong type is an error. Its
// tests decode the manifests in deploy/istio and deploy/istio/profiles;
// deploy/helm/test decodes the Helm chart's renders with the same Decoder.
//
// It is a module of its own so that istio.io/api and k8s.io/api stay out of
// the extauthz binary and the root module. The root module's `go test ./...`
// does not enter it; run it from this directory:
//
//	go test ./...
package schema
