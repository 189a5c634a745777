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

// TestPrincipalPatternMatchesWholePrincipal: a principal pattern always
// matches the whole principal, however it is written (with or without ^ and
// $, an alternation, or a struct literal), so no other workload can claim a
// sandbox's id with a principal that merely contains an allowed one.
func TestPrincipalPatternMatchesWholePrincipal(t *testing.T) {
	const good = "spiffe://cluster.local/ns/sandboxes/sa/outbound-container-1"
	sources := map[string]IdentitySource{}
	for _, spec := range []string{
		`principal:spiffe://cluster\.local/ns/sandboxes/sa/([^/]+)`,
		`principal:^spiffe://cluster\.local/ns/sandboxes/sa/([^/]+)$`,
		`principal:spiffe://cluster\.local/ns/sandboxes/sa/([^/]+)|spiffe://cluster\.local/ns/legacy/sa/([^/]+)`,
	} {
		s, err := ParseIdentitySource(spec)
		if err != nil {
			t.Fatal(err)
		}
		sources[spec] = s
	}
	lit, err := IdentitySource{Kind: IdentityPrincipal, Pattern: regexp.MustCompile(`spiffe://cluster\.local/ns/sandboxes/sa/([^/]+)`)}.canonical("")
	if err != nil {
		t.Fatal(err)
	}
	sources["struct literal"] = lit

	for name, s := range sources {
		if got := s.fromPrincipal(good); got != "outbound-container-1" {
			t.Errorf("%s: fromPrincipal(%q) = %q; want outbound-container-1", name, good, got)
		}
		for _, p := range []string{
			good + "/extra",
			"spiffe://evil/ns/x/sa/y/" + good,
			"x" + good,
			"",
		} {
			if got := s.fromPrincipal(p); got != "" {
				t.Errorf("%s: fromPrincipal(%q) = %q; want no id", name, p, got)
			}
		}
	}
}

// TestIdentityHeaderRefusesReservedNames: a header with a meaning to
// proxies cannot carry the caller's identity: the allow removes the identity
// header, and proxies append to forwarding headers instead of replacing them.
func TestIdentityHeaderRefusesReservedNames(t *testing.T) {
	for _, name := range []string{
		"content-length", "Host", "cookie", "x-forwarded-for", "X-Forwarded-Client-Cert", "forwarded",
		"x-real-ip", "via", "connection", "transfer-encoding", "te", "upgrade", "keep-alive",
		"proxy-authorization", "x-envoy-original-path", "authorization", "traceparent",
	} {
		if _, err := ParseIdentitySource("header:" + name); err == nil {
			t.Errorf("header:%s accepted as the identity source", name)
		}
	}
	for _, name := range []string{"x-outbound-container-id", "X-Sandbox-Id"} {
		if _, err := ParseIdentitySource("header:" + name); err != nil {
			t.Errorf("header:%s refused: %v", name, err)
		}
	}
}

// TestIdentityHeaderEmptyPieceIsAmbiguous: an identity header with an empty
// piece, or an empty occurrence beside a full one, is ambiguous: no caller.
func TestIdentityHeaderEmptyPieceIsAmbiguous(t *testing.T) {
	for _, c := range []struct {
		name   string
		values []string
		want   string
	}{
		{"one value", []string{"outbound-container-1"}, "outbound-container-1"},
		{"repeated, equal", []string{"outbound-container-1", " outbound-container-1 "}, "outbound-container-1"},
		{"comma-joined, equal", []string{"outbound-container-1,outbound-container-1"}, "outbound-container-1"},
		{"trailing comma", []string{"outbound-container-1,"}, ""},
		{"leading comma", []string{",outbound-container-1"}, ""},
		{"empty beside full", []string{"", "outbound-container-1"}, ""},
		{"blank beside full", []string{"outbound-container-1", "  "}, ""},
		{"different", []string{"outbound-container-1", "outbound-container-2"}, ""},
		{"absent", nil, ""},
	} {
		got, _ := agree(idForm, nil, c.values)
		if got != c.want {
			t.Errorf("%s: identity of %q = %q; want %q", c.name, c.values, got, c.want)
		}
	}
}
