package authz

import (
	"context"
	"reflect"
	"strings"
	"testing"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/mem"
	grpcstatus "google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/extauthz/extauthz/policy"
)

// TestWireMatchesCheck: every fixture of testdata/check gets the same
// answer, message for message, from Register's path (Check here) and from
// the oracle on the decoded message.
func TestWireMatchesCheck(t *testing.T) {
	caps := newCapabilities(t)
	for _, tc := range loadCheckCases(t) {
		t.Run(tc.fixture, func(t *testing.T) {
			srv := newTestServer(t, serverSetup{identity: tc.identity})
			req := loadCheckRequest(t, caps, tc.fixture)
			want, err := srv.oracleCheck(context.Background(), req)
			if err != nil {
				t.Fatal(err)
			}
			got, err := srv.Check(context.Background(), req)
			if err != nil {
				t.Fatal(err)
			}
			if !proto.Equal(got, want) {
				t.Errorf("wire answer differs from the oracle's:\n got %v\nwant %v", got, want)
			}
			if tc.reason == ReasonNone {
				assertAllow(t, srv, got, tc)
			} else {
				assertDeny(t, got, tc.reason)
			}
		})
	}
	srv := newTestServer(t, serverSetup{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := srv.Check(ctx, loadCheckRequest(t, caps, "allow_backend_api")); grpcstatus.Code(err) != codes.Canceled {
		t.Errorf("wire Check with a cancelled context: %v; want Canceled", err)
	}
}

// TestAppendOK: the encoded allow (appendAllow) is okResponse's message,
// for decisions with empty, long and non-ASCII values.
func TestAppendOK(t *testing.T) {
	core := newTestCore(t, nil, nil)
	for _, identity := range []string{"", "header:x-outbound-container-id"} {
		opts := GRPCOptions{}
		if identity != "" {
			var err error
			if opts.Identity, err = ParseIdentitySource(identity); err != nil {
				t.Fatal(err)
			}
		}
		srv, err := NewGRPCServer(core, opts)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range []Decision{
			{Route: policy.Route{Class: policy.ProviderModel}, UserID: "u", CloudAgentSessionID: "c", KiloSessionID: "k", OutboundContainerID: "ctr-1", credential: "tok"},
			{Route: policy.Route{Class: policy.BackendAPI}, credential: strings.Repeat("x", 300)},
			{Route: policy.Route{Class: policy.SessionIngest}, UserID: "ü—✓", OutboundContainerID: strings.Repeat("c", 200), credential: "t"},
		} {
			want := srv.okResponse(d)
			got := &authv3.CheckResponse{}
			if err := proto.Unmarshal(srv.appendAllow(nil, &d), got); err != nil {
				t.Fatal(err)
			}
			if !proto.Equal(got, want) {
				t.Errorf("appendAllow decodes to\n%v\nwant\n%v", got, want)
			}
		}
	}
}

// wireServers are server set-ups whose readers differ: the identity from a
// context extension, a header or the principal, and another capability
// header.
func wireServers(t testing.TB) []*GRPCServer {
	core := newTestCore(t, nil, nil)
	var out []*GRPCServer
	for _, o := range []struct {
		identity, capHeader string
		extra, named        []string
	}{
		{"", "", nil, nil}, {"header:x-outbound-container-id", "x-cap", nil, []string{"x-api-key", "authorization"}},
		{"principal:^spiffe://[^/]+/ns/sandboxes/sa/([^/]+)$", "", []string{"traceparent", "b3", "authorization"}, []string{"x-goog-api-key"}},
	} {
		opts := GRPCOptions{CapabilityHeader: o.capHeader}
		if o.identity != "" {
			var err error
			if opts.Identity, err = ParseIdentitySource(o.identity); err != nil {
				t.Fatal(err)
			}
		}
		srv, err := NewGRPCServer(core, opts)
		if err != nil {
			t.Fatal(err)
		}
		srv.reader.Extra = o.extra
		srv.reader.Named = o.named
		out = append(out, srv)
	}
	return out
}

// compareWire fails unless checkwire's reader accepts b exactly when
// proto.Unmarshal does and then reads what the oracle (fieldsOf) reads.
func compareWire(t *testing.T, servers []*GRPCServer, b []byte) {
	t.Helper()
	req := &authv3.CheckRequest{}
	refErr := proto.Unmarshal(b, req)
	for _, srv := range servers {
		got, err := srv.reader.Read(b)
		if (err == nil) != (refErr == nil) {
			t.Fatalf("Read error %v; proto.Unmarshal error %v (input %x)", err, refErr, b)
		}
		if err != nil {
			continue
		}
		if want := srv.fieldsOf(req); !reflect.DeepEqual(got, want) {
			t.Fatalf("Read     = %+v\nfieldsOf = %+v\n(input %x)", got, want, b)
		}
	}
}

// wireSeeds are encodings that reach every branch of the reader: the
// fixtures, merged and repeated fields, header_map with raw values, wrong
// wire types, unknown fields and groups, packed numbers, invalid UTF-8 in
// read and unread fields.
func wireSeeds(t testing.TB) [][]byte {
	caps := newCapabilities(t)
	var seeds [][]byte
	for _, tc := range loadCheckCases(t) {
		b, err := proto.Marshal(loadCheckRequest(t, caps, tc.fixture))
		if err != nil {
			t.Fatal(err)
		}
		seeds = append(seeds, b)
	}
	str := func(num protowire.Number, s string) []byte {
		return protowire.AppendString(protowire.AppendTag(nil, num, protowire.BytesType), s)
	}
	msg := func(num protowire.Number, parts ...[]byte) []byte {
		var body []byte
		for _, p := range parts {
			body = append(body, p...)
		}
		return protowire.AppendBytes(protowire.AppendTag(nil, num, protowire.BytesType), body)
	}
	entry := func(num protowire.Number, k, v string) []byte { return msg(num, str(1, k), str(2, v)) }
	http := func(parts ...[]byte) []byte { return msg(1, msg(4, msg(2, parts...))) }
	hv := func(k, v, raw string) []byte { return msg(1, str(1, k), str(2, v), str(3, raw)) }
	seeds = append(seeds,
		http(str(2, "GET"), str(5, "a"), str(5, "b"), entry(3, "authorization", "x"), entry(3, "authorization", "y")),
		append(http(str(4, "/p")), http(str(6, "https"), msg(13, hv("Authorization", "v", "r"), hv("x-kilo-capability", "", "c")))...),
		http(msg(13, hv("x-outbound-container-id", "a", "a"), msg(1, str(1, "X-Cap"), str(3, "\xff")))),
		http(msg(3, str(2, "no key")), msg(3, str(1, ":authority")), entry(3, ":path", "/x")),
		msg(1, msg(10, str(1, "upstream_scheme"), str(1, "container_id"), str(2, "ctr-1")), msg(1, str(4, "spiffe://cluster.local/ns/agents/sa/ctr-1")), msg(4, msg(2))),
		http(protowire.AppendVarint(protowire.AppendTag(nil, 2, protowire.VarintType), 7)), // method, wrong wire type
		http(str(7, "q\xffq")),                         // invalid UTF-8, unread field
		http(str(12, "\xff")),                          // raw_body: bytes
		msg(1, msg(2, msg(1, msg(1, str(1, "\xfe"))))), // destination address: unread, invalid
		http(protowire.AppendVarint(protowire.AppendTag(nil, 9, protowire.VarintType), 1<<40), []byte{0x9a, 0x05, 0x00}), // size; unknown field 83
		msg(1, []byte{0x5b, 0x08, 0x01, 0x5c}),                                                                                                  // unknown group 11 in AttributeContext
		msg(1, msg(2, msg(3, entry(1, "k", "\xc0")))),                                                                                           // peer labels, invalid
		msg(1, msg(11, msg(1, str(1, "f"), msg(2, msg(1, msg(1, str(1, "k"), msg(2, []byte{0x08, 0x00}))))))),                                   // metadata: Struct null value
		msg(1, msg(11, msg(1, str(1, "f"), msg(2, msg(1, msg(1, str(1, "k"), msg(2, msg(6, msg(1, []byte{0x11, 1, 2, 3, 4, 5, 6, 7, 8}))))))))), // list of a number
		http(entry(3, "traceparent", "00-a-b-01"), msg(13, hv("TraceParent", "v", ""), hv("b3", "", "r"), hv("B3", "x", "y"))),
		http(msg(13, hv("traceparent", "v", "r")), entry(3, "b3", "")),
		http(str(2, "G\xffT")), http(str(4, "/\xff")), http(str(5, "\xc3")), http(str(6, "\xed\xa0\x80")),
		http(entry(3, "authorization", "\xff")), http(entry(3, "\xff", "v")), http(entry(3, "x", "\xff")),
		http(msg(13, hv("authorization", "\xff", ""))), http(msg(13, hv("\xff", "v", ""))),
		msg(1, msg(1, str(4, "spiffe://\xff"))), msg(1, entry(10, "upstream_scheme", "\xff")), msg(1, entry(10, "\xff", "x")),
		[]byte{0x0a, 0x02, 0x22},
		[]byte{0x08},
	)
	return seeds
}

// FuzzWireFields: on any bytes, checkwire's reader agrees with protobuf-go
// and the oracle's fieldsOf: the same acceptance and the same fields.
func FuzzWireFields(f *testing.F) {
	for _, s := range wireSeeds(f) {
		f.Add(s)
	}
	servers := wireServers(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		compareWire(t, servers, b)
	})
}

// TestWireSeeds runs the fuzz seeds in every test run, whatever -run says
// of fuzz targets.
func TestWireSeeds(t *testing.T) {
	servers := wireServers(t)
	for _, s := range wireSeeds(t) {
		compareWire(t, servers, s)
	}
}

// protoRecursionLimit is protobuf-go's default nesting limit, which the
// gRPC codec uses and checkwire's reader matches.
const protoRecursionLimit = 10000

// TestWireDepth: the reader refuses nesting exactly where protobuf-go does
// (metadata Structs nested thousands deep, around the recursion limit).
func TestWireDepth(t *testing.T) {
	servers := wireServers(t)
	// Value{struct_value: Struct{fields: {"a": inner}}}: three levels each.
	inner := []byte{}
	wrap := func(b []byte) []byte {
		entry := protowire.AppendString(protowire.AppendTag(nil, 1, protowire.BytesType), "a")
		entry = protowire.AppendBytes(protowire.AppendTag(entry, 2, protowire.BytesType), b)
		st := protowire.AppendBytes(protowire.AppendTag(nil, 1, protowire.BytesType), entry)
		return protowire.AppendBytes(protowire.AppendTag(nil, 5, protowire.BytesType), st)
	}
	encode := func(v []byte) []byte {
		st := protowire.AppendBytes(protowire.AppendTag(nil, 1, protowire.BytesType),
			protowire.AppendBytes(protowire.AppendTag(protowire.AppendString(protowire.AppendTag(nil, 1, protowire.BytesType), "a"), 2, protowire.BytesType), v))
		md := protowire.AppendBytes(protowire.AppendTag(nil, 1, protowire.BytesType),
			protowire.AppendBytes(protowire.AppendTag(protowire.AppendString(protowire.AppendTag(nil, 1, protowire.BytesType), "f"), 2, protowire.BytesType), st))
		attrs := protowire.AppendBytes(protowire.AppendTag(nil, 11, protowire.BytesType), md)
		return protowire.AppendBytes(protowire.AppendTag(nil, 1, protowire.BytesType), attrs)
	}
	for range protoRecursionLimit/3 - 8 {
		inner = wrap(inner)
	}
	accepted, refused := false, false
	for range 12 {
		b := encode(inner)
		compareWire(t, servers, b)
		if proto.Unmarshal(b, &authv3.CheckRequest{}) == nil {
			accepted = true
		} else {
			refused = true
		}
		inner = wrap(inner)
	}
	if !accepted || !refused {
		t.Fatalf("the nesting never crossed protobuf-go's limit (accepted %v, refused %v)", accepted, refused)
	}
}

// rawCodec sends and receives bytes as they are, to put any encoding on the
// wire.
type rawCodec struct{}

func (rawCodec) Name() string { return "proto" }
func (rawCodec) Marshal(v any) (mem.BufferSlice, error) {
	return mem.BufferSlice{mem.SliceBuffer(*v.(*[]byte))}, nil
}
func (rawCodec) Unmarshal(data mem.BufferSlice, v any) error {
	*v.(*[]byte) = data.Materialize()
	return nil
}

// TestWireOverGRPC serves Check with Register through the real gRPC
// stack: allows and denies are the oracle's messages, the health service
// still answers through the codec's fallback, and a request protobuf-go
// refuses is refused with codes.Internal, as it was with protobuf-go's
// codec.
func TestWireOverGRPC(t *testing.T) {
	caps := newCapabilities(t)
	srv := newTestServer(t, serverSetup{})
	gs := grpc.NewServer(ServerOptions()...)
	Register(gs, srv)
	healthpb.RegisterHealthServer(gs, health.NewServer())
	conn := serveBufconn(t, gs)
	ctx := context.Background()
	client := authv3.NewAuthorizationClient(conn)
	for _, fixture := range []string{"allow_provider_model", "allow_header_map_raw", "deny_container_mismatch", "deny_no_http_attributes"} {
		req := loadCheckRequest(t, caps, fixture)
		got, err := client.Check(ctx, req)
		if err != nil {
			t.Fatalf("%s: %v", fixture, err)
		}
		want, _ := srv.oracleCheck(ctx, req)
		if !proto.Equal(got, want) {
			t.Errorf("%s over gRPC:\n got %v\nwant %v", fixture, got, want)
		}
	}
	if resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{}); err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Errorf("health check = %v, %v", resp, err)
	}
	bad := [][]byte{
		{0x0a, 0x05, 0x22, 0x03, 0x12, 0x01, 0xff}, // method: invalid UTF-8
		{0x0a, 0x05}, // truncated
	}
	for _, b := range bad {
		var out []byte
		err := conn.Invoke(ctx, authv3.Authorization_Check_FullMethodName, &b, &out, grpc.ForceCodecV2(rawCodec{}))
		if grpcstatus.Code(err) != codes.Internal {
			t.Errorf("request %x: %v; want codes.Internal", b, err)
		}
		if proto.Unmarshal(b, &authv3.CheckRequest{}) == nil {
			t.Errorf("request %x: protobuf-go accepts it; the case tests nothing", b)
		}
	}
	// Without ServerOptions, Register fails closed.
	gs2 := grpc.NewServer()
	Register(gs2, srv)
	conn2 := serveBufconn(t, gs2)
	if _, err := authv3.NewAuthorizationClient(conn2).Check(ctx, loadCheckRequest(t, caps, "allow_provider_model")); grpcstatus.Code(err) != codes.Internal {
		t.Errorf("Register without ServerOptions: %v; want codes.Internal", err)
	}
}

// TestWireInterceptor: a unary interceptor on a Register server runs
// around every Check and sees the request as read (not a *CheckRequest),
// an allow it cannot read and a deny as a *CheckResponse; one that answers
// with the request itself, or hands the handler another request, gets
// codes.Internal, never an empty (statusless) CheckResponse.
func TestWireInterceptor(t *testing.T) {
	caps := newCapabilities(t)
	srv := newTestServer(t, serverSetup{})
	type seen struct{ calls, decoded, denies int }
	var got seen
	intercept := func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		got.calls++
		if _, ok := req.(*authv3.CheckRequest); ok {
			got.decoded++
		}
		resp, err := handler(ctx, req)
		if _, ok := resp.(*authv3.CheckResponse); ok {
			got.denies++
		}
		return resp, err
	}
	gs := grpc.NewServer(append(ServerOptions(), grpc.ChainUnaryInterceptor(intercept))...)
	Register(gs, srv)
	client := authv3.NewAuthorizationClient(serveBufconn(t, gs))
	for _, fixture := range []string{"allow_provider_model", "allow_header_map_raw", "deny_container_mismatch"} {
		if _, err := client.Check(context.Background(), loadCheckRequest(t, caps, fixture)); err != nil {
			t.Fatalf("%s: %v", fixture, err)
		}
	}
	if want := (seen{calls: 3, denies: 1}); got != want {
		t.Errorf("the interceptor saw %+v; want %+v", got, want)
	}
	for name, ic := range map[string]grpc.UnaryServerInterceptor{
		"echo": func(_ context.Context, req any, _ *grpc.UnaryServerInfo, _ grpc.UnaryHandler) (any, error) {
			return req, nil
		},
		"replace": func(ctx context.Context, _ any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
			return handler(ctx, loadCheckRequest(t, caps, "allow_provider_model"))
		},
	} {
		gs := grpc.NewServer(append(ServerOptions(), grpc.ChainUnaryInterceptor(ic))...)
		Register(gs, srv)
		if resp, err := authv3.NewAuthorizationClient(serveBufconn(t, gs)).Check(context.Background(), loadCheckRequest(t, caps, "allow_provider_model")); grpcstatus.Code(err) != codes.Internal {
			t.Errorf("%s: %v, %v; want codes.Internal", name, resp, err)
		}
	}
}
