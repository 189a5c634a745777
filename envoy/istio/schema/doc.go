// Package schema holds the tests that decode the Istio and Kubernetes
// manifests in envoy/istio strictly, with Istio's and Kubernetes' own API
// types: a field those APIs do not have, a misspelt or mis-cased name, or a
// value of the wrong type fails the test.
//
// It is a module of its own so that istio.io/api and k8s.io/api stay out of
// the extauthz binary and the root module. The root module's `go test ./...`
// does not enter it; run it from this directory:
//
//	go test ./...
package schema
