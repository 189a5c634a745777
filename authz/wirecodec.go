package authz

import (
	"context"
	"errors"
	"slices"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/encoding"
	grpcproto "google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"
	grpcstatus "google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
)

// This file serves Check without protobuf-go's message types on the hot
// path: the request is read from its encoding (wire.go) and an allow is
// encoded directly; a deny is built and encoded as by Check. The answers
// are the same as Check's (TestWireMatchesCheck, FuzzWireFields,
// FuzzAppendOK).

// WireServerOption is the grpc.ServerOption that RegisterWire needs: a
// codec that hands Check's encoding to the adapter and delegates every
// other message (health, reflection, denies) to gRPC's protobuf codec.
func WireServerOption() grpc.ServerOption {
	return grpc.ForceServerCodecV2(wireCodec{proto: encoding.GetCodecV2(grpcproto.Name)})
}

// RegisterWire registers srv on g as the Envoy ext_authz Authorization
// service, like Register, but reads each CheckRequest straight from its
// encoding and encodes each allow directly, which makes a Check several
// times cheaper. g must have been created with WireServerOption; without
// it every Check fails with codes.Internal (the proxy denies). A unary
// interceptor on g sees the request as read, not a *CheckRequest, and for
// an allow a response it cannot read; a deny is a *CheckResponse as from
// Check.
func RegisterWire(g *grpc.Server, srv *GRPCServer) {
	g.RegisterService(&grpc.ServiceDesc{
		ServiceName: ServiceName,
		HandlerType: (*authv3.AuthorizationServer)(nil),
		Methods:     []grpc.MethodDesc{{MethodName: "Check", Handler: srv.wireHandler}},
		Metadata:    "envoy/service/auth/v3/external_auth.proto",
	}, srv)
}

// wireCheck is one Check served by RegisterWire: the fields read from the
// request, then the encoded allow.
type wireCheck struct {
	s      *GRPCServer
	fields checkFields
	ok     []byte
}

// Get returns the first value of header name, one of the server's
// extraNames (the trace context headers), as the decoded request orders
// them (firstHeaderValue); "" when absent. It makes a wireCheck the
// propagator's carrier for the Check span's parent.
func (w *wireCheck) Get(name string) string {
	for i, n := range w.s.extraNames {
		if n == name && i < len(w.fields.extra) {
			return w.fields.extra[i]
		}
	}
	return ""
}

// Set and Keys are not needed: the server extracts, it does not inject,
// and the W3C and B3 propagators do not list keys.
func (*wireCheck) Set(string, string) {}
func (*wireCheck) Keys() []string     { return nil }

type wireCodec struct{ proto encoding.CodecV2 }

var errNoAllow = errors.New("authz: a Check request returned as its own response")

func (c wireCodec) Name() string { return grpcproto.Name }

func (c wireCodec) Marshal(v any) (mem.BufferSlice, error) {
	if w, ok := v.(*wireCheck); ok {
		// Only an encoded allow is sent as it is. An empty CheckResponse,
		// with no status, could read as OK: refuse, and the proxy denies.
		if len(w.ok) == 0 {
			return nil, errNoAllow
		}
		return mem.BufferSlice{mem.SliceBuffer(w.ok)}, nil
	}
	return c.proto.Marshal(v)
}

func (c wireCodec) Unmarshal(data mem.BufferSlice, v any) error {
	if w, ok := v.(*wireCheck); ok {
		return w.read(data)
	}
	return c.proto.Unmarshal(data, v)
}

// read decodes the request. It runs in grpc-go's server loop, which does
// not recover panics: none is expected (FuzzWireFields), and one would
// refuse the request rather than stop the server.
func (w *wireCheck) read(data mem.BufferSlice) (err error) {
	defer func() {
		if p := recover(); p != nil {
			w.s.core.recordPanic(context.Background(), ProtocolGRPC, p)
			err = errWire
		}
	}()
	var b []byte
	if len(data) == 1 {
		b = data[0].ReadOnlyData()
	} else {
		b = data.Materialize()
	}
	w.fields, err = w.s.readCheckFields(b)
	return err
}

func (s *GRPCServer) wireHandler(_ any, ctx context.Context, dec func(any) error, interceptor grpc.UnaryServerInterceptor) (_ any, err error) {
	w := &wireCheck{s: s}
	if err := dec(w); err != nil {
		return nil, err
	}
	if s.tracer != nil {
		var span trace.Span
		ctx, span = s.startCheckSpan(ctx, w)
		defer func() { endCheckSpan(span, err) }()
	}
	if interceptor == nil {
		return s.wireCheck(ctx, w)
	}
	info := &grpc.UnaryServerInfo{Server: s, FullMethod: authv3.Authorization_Check_FullMethodName}
	return interceptor(ctx, w, info, func(ctx context.Context, req any) (any, error) {
		w, ok := req.(*wireCheck)
		if !ok {
			return nil, grpcstatus.Error(codes.Internal, "authz: an interceptor replaced the Check request")
		}
		return s.wireCheck(ctx, w)
	})
}

func (s *GRPCServer) wireCheck(ctx context.Context, w *wireCheck) (any, error) {
	d, err := s.decide(ctx, &w.fields)
	if err != nil {
		return nil, err
	}
	if !d.Allowed() {
		return deniedResponse(d.Reason), nil
	}
	w.ok = s.appendOK(nil, d)
	return w, nil
}

// appendOK appends the encoding of okResponse(d) to b, written directly
// from the same parts (field numbers from envoy/service/auth/v3 and
// google/protobuf/struct.proto): okResponse defines the allow, and
// FuzzAppendOK and TestAppendOKLengths hold this encoding to its message
// for any decision and server set-up.
func (s *GRPCServer) appendOK(b []byte, d Decision) []byte {
	cred := d.Credential()
	header := sizeString(1, credentialHeader) + protowire.SizeTag(2) + protowire.SizeBytes(len(bearerPrefix)+len(cred))
	option := sizeMessage(1, header) + protowire.SizeTag(3) + protowire.SizeVarint(uint64(credentialAction))
	ok := sizeMessage(2, option)
	for _, h := range s.removeOnAllow {
		ok += sizeString(5, h)
	}
	meta := d.metadata()
	var entries [len(meta)]int
	fields := 0
	for i, kv := range meta {
		entries[i] = sizeString(1, kv[0]) + sizeMessage(2, sizeString(3, kv[1]))
		fields += sizeMessage(1, entries[i])
	}
	b = slices.Grow(b, sizeMessage(1, 0)+sizeMessage(3, ok)+sizeMessage(4, fields))

	b = appendMessage(b, 1, 0) // status: code OK, the zero value
	b = appendMessage(b, 3, ok)
	b = appendMessage(b, 2, option)
	b = appendMessage(b, 1, header)
	b = appendString(b, 1, credentialHeader)
	b = protowire.AppendTag(b, 2, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(len(bearerPrefix)+len(cred)))
	b = append(b, bearerPrefix...)
	b = append(b, cred...)
	b = protowire.AppendTag(b, 3, protowire.VarintType)
	b = protowire.AppendVarint(b, uint64(credentialAction))
	for _, h := range s.removeOnAllow {
		b = appendString(b, 5, h)
	}
	b = appendMessage(b, 4, fields)
	for i, kv := range meta {
		b = appendMessage(b, 1, entries[i])
		b = appendString(b, 1, kv[0])
		b = appendMessage(b, 2, sizeString(3, kv[1]))
		b = appendString(b, 3, kv[1])
	}
	return b
}

func sizeString(num protowire.Number, s string) int {
	return protowire.SizeTag(num) + protowire.SizeBytes(len(s))
}

func sizeMessage(num protowire.Number, size int) int {
	return protowire.SizeTag(num) + protowire.SizeBytes(size)
}

func appendString(b []byte, num protowire.Number, s string) []byte {
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendString(b, s)
}

// appendMessage appends a message field's tag and length; its fields follow.
func appendMessage(b []byte, num protowire.Number, size int) []byte {
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendVarint(b, uint64(size))
}
