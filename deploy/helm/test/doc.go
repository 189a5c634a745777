// Package test renders the Helm chart in deploy/helm/extauthz with the Helm
// Go library, for several value sets, and decodes every rendered document
// strictly with Kubernetes' and Istio's own API types (the Decoder of
// deploy/istio/schema): an unknown, misspelt or mis-cased field fails.
//
// It is a module of its own so that Helm and the API types stay out of the
// extauthz binary and the root module. Run it from this directory:
//
//	go test ./...
package test
