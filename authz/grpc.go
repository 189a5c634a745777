package authz

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	grpcstatus "google.golang.org/grpc/status"

	"github.com/extauthz/extauthz/authz/internal/checkwire"
)

// Context extension keys the server reads.
const (
	ExtensionUpstreamScheme = "upstream_scheme"
)

// ServiceName is the gRPC service GRPCServer implements, for health checks.
const ServiceName = "envoy.service.auth.v3.Authorization"

// GRPCServer is the Envoy ext_authz gRPC adapter around an Authorizer.
// Register serves it: Check is read from its encoding and an allow is
// encoded directly (authz/internal/checkwire), never built as protobuf-go
// messages; a deny is a CheckResponse message.
type GRPCServer struct {
	core             *Authorizer
	identity         IdentitySource
	capabilityHeader string
	upstreamScheme   string
	// removeOnAllow is the headers_to_remove of every allow
	// (removedOnAllow).
	removeOnAllow []string
	// reader reads what the adapter needs of a CheckRequest: the headers by
	// slot (the identity slot is "" unless the identity comes from a
	// header), the context extensions, and the trace context headers for
	// the Check span's parent when tracer is set.
	reader checkwire.Reader
	// readPanic is s.recordReadPanic, bound once: a method value made per
	// Check would be an allocation per Check.
	readPanic func(any)
	tracer    trace.Tracer // nil: no spans
	// named is reader for the profiles in force, reading their named
	// headers too (readerNow); replaced when the profiles are.
	named atomic.Pointer[namedReader]
}

// namedReader is the reader of a Check under one set of profiles.
type namedReader struct {
	reader checkwire.Reader
	st     *profileState
}

// readerNow returns the reader for the profiles in force: s.reader with
// their named headers, made once per set of profiles.
func (s *GRPCServer) readerNow() *namedReader {
	st := s.core.currentProfiles()
	if nr := s.named.Load(); nr != nil && nr.st == st {
		return nr
	}
	nr := &namedReader{reader: s.reader, st: st}
	nr.reader.Named = st.headers
	s.named.Store(nr)
	return nr
}

// GRPCOptions configure the gRPC adapter.
type GRPCOptions struct {
	// Identity says where the caller's container id comes from; the zero value
	// means DefaultIdentitySpec.
	Identity IdentitySource
	// CapabilityHeader is the dedicated capability header; "" means
	// DefaultCapabilityHeader.
	CapabilityHeader string
	// UpstreamScheme, when set ("https" or "http"), overrides the request's
	// scheme for proxies that originate TLS. The context extension
	// upstream_scheme overrides it in turn.
	UpstreamScheme string
	// TracerProvider, when set, makes a server span for each Check
	// (trace.go), which the decision's observer annotates; nil: no spans,
	// and nothing of the kind runs.
	TracerProvider trace.TracerProvider
}

// NewGRPCServer returns the gRPC adapter.
func NewGRPCServer(core *Authorizer, opts GRPCOptions) (*GRPCServer, error) {
	if core == nil {
		return nil, errors.New("authz: NewGRPCServer needs an Authorizer")
	}
	if opts.Identity.Kind == 0 {
		id, err := ParseIdentitySource(DefaultIdentitySpec)
		if err != nil {
			return nil, err
		}
		opts.Identity = id
	}
	h, err := CanonicalCapabilityHeader(opts.CapabilityHeader)
	if err != nil {
		return nil, err
	}
	// The source may be a struct literal: give it the checks
	// ParseIdentitySource applies, so that no Check can panic on it and no
	// identity header can be authorization or the capability header.
	if opts.Identity, err = opts.Identity.canonical(h); err != nil {
		return nil, err
	}
	if err := CheckUpstreamScheme(opts.UpstreamScheme); err != nil {
		return nil, fmt.Errorf("authz: upstream scheme: %w", err)
	}
	idHeader, idExtension := "", ""
	switch opts.Identity.Kind {
	case IdentityHeader:
		idHeader = opts.Identity.Key
	case IdentityContextExtension:
		idExtension = opts.Identity.Key
	}
	s := &GRPCServer{core: core, identity: opts.Identity, capabilityHeader: h, upstreamScheme: opts.UpstreamScheme,
		removeOnAllow: removedOnAllow(h, idHeader)}
	s.reader = checkwire.Reader{
		Headers: [checkwire.NumSlots]string{checkwire.SlotAuthority: ":authority", checkwire.SlotPath: ":path", checkwire.SlotScheme: ":scheme",
			checkwire.SlotAuthorization: credentialHeader, checkwire.SlotCapability: h, checkwire.SlotIdentity: idHeader},
		SchemeExtension:   ExtensionUpstreamScheme,
		IdentityExtension: idExtension,
	}
	s.readPanic = s.recordReadPanic
	if opts.TracerProvider != nil {
		s.tracer = opts.TracerProvider.Tracer(instrumentationName)
		s.reader.Extra = traceHeaders
	}
	return s, nil
}

// ServerOptions are the options a grpc.Server needs before Register: the
// codec that hands Check's encoding to the adapter and sends an allow's
// encoding as it is, every other message (health, reflection, a deny)
// going to gRPC's protobuf codec. Without them every Check fails with
// codes.Internal, which the proxy turns into a deny.
func ServerOptions() []grpc.ServerOption {
	return []grpc.ServerOption{checkwire.ServerOption()}
}

// Register registers srv on g, created with ServerOptions, as the Envoy
// ext_authz Authorization service (its one method,
// envoy.service.auth.v3.Authorization/Check): the one way Check is served.
// Every decision, allow or deny, is a successful RPC; only a cancelled
// call or a request protobuf-go would refuse is an error.
//
// A unary interceptor on g sees the request as read, not a
// *CheckRequest, and an allow as its encoding, which it cannot read; a
// deny is a *CheckResponse.
func Register(g *grpc.Server, srv *GRPCServer) {
	g.RegisterService(&grpc.ServiceDesc{
		ServiceName: ServiceName,
		// The handler below is the implementation; grpc-go only checks
		// that srv is of this type.
		HandlerType: (*any)(nil),
		Methods:     []grpc.MethodDesc{{MethodName: "Check", Handler: srv.handleCheck}},
		Metadata:    "envoy/service/auth/v3/external_auth.proto",
	}, srv)
}

// handleCheck is the method handler of Check: read the request (the
// codec), start its span when tracing, then decide, through a unary
// interceptor if g has one. Its frame is kept small, the span's work in
// its own function: every frame here deepens the stack each Check's
// goroutine may have to grow.
func (s *GRPCServer) handleCheck(_ any, ctx context.Context, dec func(any) error, interceptor grpc.UnaryServerInterceptor) (any, error) {
	nr := s.readerNow()
	call := checkwire.NewCall(&nr.reader, s.readPanic)
	if err := dec(call); err != nil {
		return nil, err
	}
	switch {
	case s.tracer != nil:
		return s.traced(ctx, call, nr.st, interceptor)
	case interceptor != nil:
		return s.intercepted(ctx, call, nr.st, interceptor)
	}
	return s.check(ctx, call, nr.st)
}

// traced serves a Check within its span.
func (s *GRPCServer) traced(ctx context.Context, call *checkwire.Call, st *profileState, interceptor grpc.UnaryServerInterceptor) (_ any, err error) {
	ctx, span := s.startCheckSpan(ctx, call)
	defer func() { endCheckSpan(span, err) }()
	if interceptor != nil {
		return s.intercepted(ctx, call, st, interceptor)
	}
	return s.check(ctx, call, st)
}

// intercepted decides a Check through interceptor.
func (s *GRPCServer) intercepted(ctx context.Context, call *checkwire.Call, st *profileState, interceptor grpc.UnaryServerInterceptor) (any, error) {
	info := &grpc.UnaryServerInfo{Server: s, FullMethod: authv3.Authorization_Check_FullMethodName}
	return interceptor(ctx, call, info, func(ctx context.Context, req any) (any, error) {
		call, ok := req.(*checkwire.Call)
		if !ok {
			return nil, grpcstatus.Error(codes.Internal, "authz: an interceptor replaced the Check request")
		}
		return s.check(ctx, call, st)
	})
}

// recordReadPanic records a panic while reading a request, which is
// refused.
func (s *GRPCServer) recordReadPanic(p any) {
	s.core.recordPanic(context.Background(), ProtocolGRPC, p)
}

// check decides one Check, read for the profiles st, and answers it: the
// call with its encoded allow, or a deny.
func (s *GRPCServer) check(ctx context.Context, call *checkwire.Call, st *profileState) (any, error) {
	var d Decision
	if err := s.decide(ctx, call.Fields(), st, &d); err != nil {
		return nil, err
	}
	if !d.Allowed() {
		return deniedResponse(&d), nil
	}
	call.SetAllow(s.appendAllow(nil, &d))
	return call, nil
}

// decide decides on what a Check carries.
//
// A panic while deciding is recovered into a capability_configuration_error
// deny: grpc-go does not recover handler panics, so one bad input would
// otherwise take the whole server down.
//
// It writes the decision into d, the zero Decision, rather than return it:
// a copy less on the stack of every Check (Authorizer.decide).
func (s *GRPCServer) decide(ctx context.Context, f *checkwire.Fields, st *profileState, d *Decision) (err error) {
	if err := ctx.Err(); err != nil {
		return grpcstatus.FromContextError(err).Err()
	}
	defer func() {
		if p := recover(); p != nil {
			s.core.recordPanic(ctx, ProtocolGRPC, p)
			*d, err = Decision{Reason: ReasonConfigurationError}, nil
		}
	}()
	in := s.input(f, st)
	s.core.decideInto(ctx, &in, d)
	return nil
}

// input extracts the decision input from what a CheckRequest carries: the
// attributes, with headers read from both the headers map and the raw
// header_map, the named headers of the profiles st among them.
func (s *GRPCServer) input(f *checkwire.Fields, st *profileState) Input {
	in := Input{Protocol: ProtocolGRPC, CapabilityHeader: s.capabilityHeader, Named: f.Named, profiles: st}
	if !f.HasHTTP {
		return in
	}
	in.Complete = true
	in.Method = f.Method
	// The pseudo-header fallbacks must agree as whole values: splitting on
	// commas would check "Q" while the proxy forwards "Q,Q". A disagreement
	// leaves the attribute empty, which the policy refuses.
	in.Authority = f.Host
	if in.Authority == "" {
		in.Authority, _ = agree(wholeForm, nil, f.Headers[checkwire.SlotAuthority])
	}
	in.Path = f.Path
	if in.Path == "" {
		in.Path, _ = agree(wholeForm, nil, f.Headers[checkwire.SlotPath])
	}
	switch {
	case f.ExtScheme != "":
		in.Scheme = f.ExtScheme
	case s.upstreamScheme != "":
		in.Scheme = s.upstreamScheme
	case f.Scheme != "":
		in.Scheme = f.Scheme
	default:
		in.Scheme, _ = agree(wholeForm, nil, f.Headers[checkwire.SlotScheme])
	}
	in.Authorization = f.Headers[checkwire.SlotAuthorization]
	in.Capability = f.Headers[checkwire.SlotCapability]
	switch s.identity.Kind {
	case IdentityContextExtension:
		in.CallerID = f.ExtIdentity
	case IdentityPrincipal:
		in.CallerID = s.identity.fromPrincipal(f.Principal)
	case IdentityHeader:
		// Absent or ambiguous: an unknown caller, container_mismatch.
		in.CallerID, _ = agree(idForm, nil, f.Headers[checkwire.SlotIdentity])
	}
	return in
}

// credentialAction is how an allow sets credentialHeader: replacing the
// container's (docs/decisions.md section 7).
const credentialAction = corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD

// metadata is the dynamic metadata of an allow, in the order it is
// encoded: its first n pairs. A profile allow has the profile's name and
// no kka1 claims.
func (d *Decision) metadata() (m [5][2]string, n int) {
	if d.inject.header != "" {
		return [5][2]string{
			{"route_class", string(d.Route.Class)},
			{"profile", d.Profile},
			{"outbound_container_id", d.OutboundContainerID},
		}, 3
	}
	return [5][2]string{
		{"route_class", string(d.Route.Class)},
		{"user_id", d.UserID},
		{"cloud_agent_session_id", d.CloudAgentSessionID},
		{"kilo_session_id", d.KiloSessionID},
		{"outbound_container_id", d.OutboundContainerID},
	}, 5
}

// appendAllow appends the encoding of d's allow (docs/decisions.md
// section 5), the one definition of an allow over gRPC: status OK,
// credentialHeader set to bearer(credential) with credentialAction, the
// removeOnAllow headers removed, and d's metadata. checkwire encodes it
// directly; the test oracle builds the same message with protobuf-go
// (okResponse), and FuzzAppendOK holds the two equal.
//
// A profile allow sets the header its route injects into instead, with
// the route's value, and also removes the other headers its profile's
// capability may arrive in.
func (s *GRPCServer) appendAllow(b []byte, d *Decision) []byte {
	meta, n := d.metadata()
	a := checkwire.Allow{
		Header: credentialHeader, ValuePrefix: bearerPrefix, Value: d.Credential(),
		Action: uint64(credentialAction), Remove: s.removeOnAllow, Metadata: meta[:n],
	}
	if d.inject.header != "" {
		a.Header, a.ValuePrefix, a.Value, a.AlsoRemove = d.inject.header, d.inject.prefix, d.inject.value, d.inject.remove
	}
	return checkwire.AppendAllow(b, &a)
}

func deniedResponse(d *Decision) *authv3.CheckResponse {
	r := d.Reason.asDeny()
	headers := []*corev3.HeaderValueOption{
		overwrite("content-type", "application/json"),
		overwrite("cache-control", "no-store"),
	}
	if c := d.wwwAuthenticate(); c != "" {
		headers = append(headers, overwrite("www-authenticate", c))
	}
	return &authv3.CheckResponse{
		Status: &status.Status{Code: int32(r.GRPCCode()), Message: string(r)},
		HttpResponse: &authv3.CheckResponse_DeniedResponse{DeniedResponse: &authv3.DeniedHttpResponse{
			Status:  &typev3.HttpStatus{Code: typev3.StatusCode(r.HTTPStatus())},
			Headers: headers,
			Body:    r.Body(),
		}},
	}
}

func overwrite(key, value string) *corev3.HeaderValueOption {
	return &corev3.HeaderValueOption{
		Header:       &corev3.HeaderValue{Key: key, Value: value},
		AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD,
	}
}
