package authz

import (
	"bytes"
	"strings"
	"testing"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/protobuf/proto"

	"github.com/extauthz/extauthz/policy"
)

// compareAllow fails unless appendAllow's encoding of d is okResponse(d): it
// decodes to an equal message, or, where okResponse's message cannot be
// encoded (a string that is not UTF-8), it does not decode either.
func compareAllow(t *testing.T, srv *GRPCServer, d Decision) {
	t.Helper()
	want := srv.okResponse(d)
	_, wantErr := proto.Marshal(want)
	got := &authv3.CheckResponse{}
	err := proto.Unmarshal(srv.appendAllow(nil, &d), got)
	if (err == nil) != (wantErr == nil) {
		t.Fatalf("appendAllow's encoding decodes with error %v; okResponse's message encodes with error %v (decision %+v)", err, wantErr, d)
	}
	if err == nil && !proto.Equal(got, want) {
		t.Fatalf("appendAllow decodes to\n%v\nwant okResponse's\n%v", got, want)
	}
}

// FuzzAppendOK: for any decision and every server set-up (wireServers:
// one or two headers removed, another capability header), the allow
// encoded directly (appendAllow, checkwire.AppendAllow) is the oracle's
// message (okResponse).
func FuzzAppendOK(f *testing.F) {
	f.Add(uint8(0), "provider_model", "user-1", "cas-1", "sess-1", "ctr-1", "provider-token")
	f.Add(uint8(1), "backend_api", "", "", "", "", strings.Repeat("x", 300))
	f.Add(uint8(2), "session_ingest", "ü—✓", "\x00", "k", strings.Repeat("c", 200), "t")
	f.Add(uint8(1), "organization_models", "u", "c", "k", "ctr", "")
	f.Add(uint8(0), "", "\xff", "c", "k", "ctr", "tok")
	f.Add(uint8(2), "class", "u", "c", "k", "ctr", "to\xc0k")
	servers := wireServers(f)
	f.Fuzz(func(t *testing.T, which uint8, class, user, cas, kilo, container, credential string) {
		compareAllow(t, servers[int(which)%len(servers)], Decision{Route: policy.Route{Class: policy.RouteClass(class)},
			UserID: user, CloudAgentSessionID: cas, KiloSessionID: kilo, OutboundContainerID: container, credential: credential})
	})
}

// TestAppendOKLengths: the encoding stays okResponse's message where a
// length prefix grows a byte (the credential header's value, a metadata
// value, each enclosing message), for every route class.
func TestAppendOKLengths(t *testing.T) {
	servers := wireServers(t)
	for _, n := range []int{0, 1, 100, 119, 120, 121, 127, 128, 16370, 16376, 16377, 16384, 1 << 21} {
		long := strings.Repeat("a", n)
		for _, class := range []policy.RouteClass{policy.ProviderModel, policy.OrganizationModels, policy.SessionIngest, policy.BackendAPI} {
			for _, srv := range servers {
				compareAllow(t, srv, Decision{Route: policy.Route{Class: class}, UserID: "u", CloudAgentSessionID: long,
					KiloSessionID: "k", OutboundContainerID: "ctr-1", credential: "tok-" + long})
				compareAllow(t, srv, Decision{Route: policy.Route{Class: class}, UserID: long, credential: "t"})
			}
		}
	}
	// appendAllow appends: what b held stays in front.
	srv := servers[0]
	d := Decision{Route: policy.Route{Class: policy.BackendAPI}, UserID: "u", credential: "t"}
	if got, want := srv.appendAllow([]byte("prefix"), &d), append([]byte("prefix"), srv.appendAllow(nil, &d)...); !bytes.Equal(got, want) {
		t.Errorf("appendAllow(prefix) = %x; want %x", got, want)
	}
}

// TestGRPCAllowRemoves: an allow removes the capability header and, when
// the identity came from a header, that header; nothing else, and never
// authorization, which it sets.
func TestGRPCAllowRemoves(t *testing.T) {
	d := Decision{Route: policy.Route{Class: policy.BackendAPI}, credential: "t"}
	for i, want := range [][]string{
		{DefaultCapabilityHeader},
		{"x-cap", "x-outbound-container-id"},
		{DefaultCapabilityHeader},
	} {
		srv := wireServers(t)[i]
		for _, resp := range []*authv3.CheckResponse{srv.okResponse(d), decodeAllow(t, srv.appendAllow(nil, &d))} {
			if got := resp.GetOkResponse().GetHeadersToRemove(); strings.Join(got, ",") != strings.Join(want, ",") {
				t.Errorf("server %d: headers_to_remove = %q; want %q", i, got, want)
			}
		}
	}
}

func decodeAllow(t *testing.T, b []byte) *authv3.CheckResponse {
	t.Helper()
	resp := &authv3.CheckResponse{}
	if err := proto.Unmarshal(b, resp); err != nil {
		t.Fatal(err)
	}
	return resp
}
