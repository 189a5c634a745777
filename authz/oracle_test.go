package authz

import (
	"context"
	"iter"
	"slices"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/extauthz/extauthz/authz/internal/checkwire"
)

// This file holds two ways of serving Check with protobuf-go messages in
// the tests:
//   - Check, the production path (Register's) driven in process: the
//     request encoded, read by checkwire's codec, decided, and an allow
//     decoded from the encoding checkwire sent. Tests that speak messages
//     use it, so that they test what serve runs.
//   - oracleCheck, the slow and obvious path kept as the oracle of the
//     clever one: the request decoded by protobuf-go and read as a
//     message (fieldsOf), the allow built as messages (okResponse).
//     FuzzWireFields, FuzzAppendOK and TestWireMatchesCheck hold
//     checkwire to it.

// Check serves req as Register serves it, in process, ctx standing for the
// call's context. A request the codec refuses is an error, as it is over
// gRPC (codes.Internal there).
func (s *GRPCServer) Check(ctx context.Context, req *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	b, err := proto.Marshal(req)
	if err != nil {
		return nil, err
	}
	codec := checkwire.Codec()
	dec := func(v any) error { return codec.Unmarshal(mem.BufferSlice{mem.SliceBuffer(b)}, v) }
	out, err := s.handleCheck(nil, ctx, dec, nil)
	if err != nil {
		return nil, err
	}
	if resp, ok := out.(*authv3.CheckResponse); ok {
		return resp, nil
	}
	enc, err := codec.Marshal(out)
	if err != nil {
		return nil, err
	}
	resp := &authv3.CheckResponse{}
	if err := proto.Unmarshal(enc.Materialize(), resp); err != nil {
		return nil, err
	}
	return resp, nil
}

// oracleServer serves the oracle over gRPC (authv3's generated service),
// for comparison with Register.
type oracleServer struct{ *GRPCServer }

var _ authv3.AuthorizationServer = oracleServer{}

func (o oracleServer) Check(ctx context.Context, req *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	return o.oracleCheck(ctx, req)
}

// oracleCheck is Check on the decoded message: the oracle.
func (s *GRPCServer) oracleCheck(ctx context.Context, req *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	f := s.fieldsOf(req)
	var d Decision
	if err := s.decide(ctx, &f, s.core.currentProfiles(), &d); err != nil {
		return nil, err
	}
	if !d.Allowed() {
		return deniedResponse(&d), nil
	}
	return s.okResponse(d), nil
}

// fieldsOf reads a decoded CheckRequest as s's reader reads its encoding.
func (s *GRPCServer) fieldsOf(req *authv3.CheckRequest) (f checkwire.Fields) {
	r := &s.reader
	attrs := req.GetAttributes()
	http := attrs.GetRequest().GetHttp()
	if http == nil {
		return f
	}
	f.HasHTTP = true
	f.Method, f.Host, f.Path, f.Scheme = http.GetMethod(), http.GetHost(), http.GetPath(), http.GetScheme()
	f.Principal = attrs.GetSource().GetPrincipal()
	ext := attrs.GetContextExtensions()
	if r.SchemeExtension != "" {
		f.ExtScheme = ext[r.SchemeExtension]
	}
	if r.IdentityExtension != "" {
		f.ExtIdentity = ext[r.IdentityExtension]
	}
	for i, name := range r.Headers {
		if name != "" {
			f.Headers[i] = headerValues(http, name)
		}
	}
	if len(r.Extra) > 0 {
		f.Extra = make([]string, len(r.Extra))
		for i, name := range r.Extra {
			f.Extra[i] = firstHeaderValue(http, name)
		}
	}
	if len(r.Named) > 0 {
		f.Named = make([][]string, len(r.Named))
		for i, name := range r.Named {
			f.Named[i] = slices.Collect(headerValueSeq(http, name))
		}
	}
	return f
}

// headerValueSeq yields every value of the lower-case header name in a
// decoded CheckRequest's HTTP attributes, in order, by the header rule
// (checkwire.HeaderMapKey, checkwire.EntryValues).
func headerValueSeq(http *authv3.AttributeContext_HttpRequest, name string) iter.Seq[string] {
	return func(yield func(string) bool) {
		if v, ok := http.GetHeaders()[name]; ok && !yield(v) {
			return
		}
		for _, h := range http.GetHeaderMap().GetHeaders() {
			if !checkwire.HeaderMapKey(h.GetKey(), name) {
				continue
			}
			v, n := checkwire.EntryValues(h.GetValue(), string(h.GetRawValue()))
			for _, x := range v[:n] {
				if !yield(x) {
					return
				}
			}
		}
	}
}

// headerValues returns every value headerValueSeq yields.
func headerValues(http *authv3.AttributeContext_HttpRequest, name string) []string {
	return slices.Collect(headerValueSeq(http, name))
}

// firstHeaderValue is the first value headerValueSeq yields, or "".
func firstHeaderValue(http *authv3.AttributeContext_HttpRequest, name string) string {
	for v := range headerValueSeq(http, name) {
		return v
	}
	return ""
}

// okParts is every message of an allow, allocated together: one
// allocation instead of one per message and metadata value, as when this
// was the production path, so that BenchmarkCheck measures what it always
// has.
type okParts struct {
	resp    authv3.CheckResponse
	status  status.Status
	ok      authv3.CheckResponse_OkResponse
	okHTTP  authv3.OkHttpResponse
	option  corev3.HeaderValueOption
	header  corev3.HeaderValue
	options [1]*corev3.HeaderValueOption
	meta    structpb.Struct
	values  [5]structpb.Value
	strs    [5]structpb.Value_StringValue
}

// okResponse is the allow of d built as protobuf-go messages from the
// parts appendAllow encodes: status OK, credentialHeader set to
// bearer(credential) with credentialAction, the removeOnAllow headers
// removed, and d's metadata.
func (s *GRPCServer) okResponse(d Decision) *authv3.CheckResponse {
	p := new(okParts)
	p.status.Code = int32(codes.OK)
	p.header = corev3.HeaderValue{Key: credentialHeader, Value: bearer(d.Credential())}
	if d.inject.header != "" {
		p.header = corev3.HeaderValue{Key: d.inject.header, Value: d.inject.prefix + d.inject.value}
	}
	p.option.Header = &p.header
	p.option.AppendAction = credentialAction
	p.options[0] = &p.option
	p.okHTTP.Headers = p.options[:]
	p.okHTTP.HeadersToRemove = append(slices.Clip(s.removeOnAllow), d.inject.remove...) // never modified by the proto runtime
	p.ok.OkResponse = &p.okHTTP
	p.meta.Fields = make(map[string]*structpb.Value, len(p.values))
	meta, n := d.metadata()
	for i, kv := range meta[:n] {
		p.strs[i].StringValue = kv[1]
		p.values[i].Kind = &p.strs[i]
		p.meta.Fields[kv[0]] = &p.values[i]
	}
	p.resp.Status = &p.status
	p.resp.HttpResponse = &p.ok
	p.resp.DynamicMetadata = &p.meta
	return &p.resp
}
