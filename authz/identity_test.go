package authz

import (
	"context"
	"regexp"
	"slices"
	"testing"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
)

// TestNewGRPCServerValidatesIdentity: an IdentitySource built as a struct
// literal gets the checks ParseIdentitySource applies. Before, a principal
// source without a pattern panicked on every Check (grpc-go does not
// recover: the process died), and a header source could name authorization,
// which then landed in headers_to_remove.
func TestNewGRPCServerValidatesIdentity(t *testing.T) {
	core := newTestCore(t, nil, nil)
	for _, id := range []IdentitySource{
		{Kind: IdentityPrincipal},
		{Kind: IdentityPrincipal, Pattern: regexp.MustCompile(`^spiffe://.*$`)},
		{Kind: IdentityHeader, Key: "authorization"},
		{Kind: IdentityHeader, Key: "Authorization"},
		{Kind: IdentityHeader, Key: ""},
		{Kind: IdentityHeader, Key: ":authority"},
		{Kind: IdentityHeader, Key: "x-kilo-capability"},
		{Kind: IdentityContextExtension, Key: ""},
		{Kind: IdentityKind(42), Key: "x"},
	} {
		if _, err := NewGRPCServer(core, GRPCOptions{Identity: id}); err == nil {
			t.Errorf("NewGRPCServer(%+v) = nil error; want an error", id)
		}
	}

	// A mixed-case header name is looked up (and removed) lower-case, as
	// Envoy sends it.
	caps := newCapabilities(t)
	srv, err := NewGRPCServer(core, GRPCOptions{Identity: IdentitySource{Kind: IdentityHeader, Key: "X-Sandbox"}})
	if err != nil {
		t.Fatal(err)
	}
	req := checkRequestFrom(&authv3.AttributeContext_HttpRequest{Method: "GET", Scheme: "https", Host: "api.kilo.example", Path: "/api/profile",
		Headers: map[string]string{"authorization": "Bearer " + caps["CAP"], "x-sandbox": "ctr-1"}})
	resp, err := srv.Check(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetOkResponse() == nil {
		t.Fatalf("denied %q; want allow", resp.GetStatus().GetMessage())
	}
	if got := resp.GetOkResponse().GetHeadersToRemove(); !slices.Contains(got, "x-sandbox") {
		t.Errorf("headers_to_remove = %q; want x-sandbox", got)
	}
}
