package authz

import (
	"context"
	"errors"
	"fmt"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	grpcstatus "google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"
)

// Context extension keys the server reads.
const (
	ExtensionUpstreamScheme = "upstream_scheme"
)

// ServiceName is the gRPC service GRPCServer implements, for health checks.
const ServiceName = "envoy.service.auth.v3.Authorization"

var _ authv3.AuthorizationServer = (*GRPCServer)(nil)

// GRPCServer is the Envoy ext_authz gRPC adapter around an Authorizer.
type GRPCServer struct {
	core             *Authorizer
	identity         IdentitySource
	capabilityHeader string
	upstreamScheme   string
	// removeOnAllow is the headers_to_remove of every allow
	// (removedOnAllow).
	removeOnAllow []string
	// slotNames are the headers the adapter reads, by slot (wire.go); the
	// identity slot is "" unless the identity comes from a header.
	slotNames [numSlots]string
	// extraNames are the headers read for the Check span's parent
	// (traceHeaders) when tracer is set.
	extraNames []string
	tracer     trace.Tracer // nil: no spans
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
	idHeader := ""
	if opts.Identity.Kind == IdentityHeader {
		idHeader = opts.Identity.Key
	}
	s := &GRPCServer{core: core, identity: opts.Identity, capabilityHeader: h, upstreamScheme: opts.UpstreamScheme,
		removeOnAllow: removedOnAllow(h, idHeader)}
	s.slotNames = [numSlots]string{slotAuthority: ":authority", slotPath: ":path", slotScheme: ":scheme",
		slotAuthorization: credentialHeader, slotCapability: h, slotIdentity: idHeader}
	if opts.TracerProvider != nil {
		s.tracer = opts.TracerProvider.Tracer(instrumentationName)
		s.extraNames = traceHeaders
	}
	return s, nil
}

// Check implements envoy.service.auth.v3.Authorization/Check. Every decision,
// allow or deny, is a successful RPC; only a cancelled context is an error.
//
// A panic while deciding is recovered into a capability_configuration_error
// deny: grpc-go does not recover handler panics, so one bad input would
// otherwise take the whole server down.
func (s *GRPCServer) Check(ctx context.Context, req *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	f := s.fieldsOf(req)
	d, err := s.decide(ctx, &f)
	if err != nil {
		return nil, err
	}
	if !d.Allowed() {
		return deniedResponse(d.Reason), nil
	}
	return s.okResponse(d), nil
}

// decide decides on what a Check carries, for both ways of reading it.
func (s *GRPCServer) decide(ctx context.Context, f *checkFields) (d Decision, err error) {
	if err := ctx.Err(); err != nil {
		return Decision{}, grpcstatus.FromContextError(err).Err()
	}
	defer func() {
		if p := recover(); p != nil {
			s.core.recordPanic(ctx, ProtocolGRPC, p)
			d, err = Decision{Reason: ReasonConfigurationError}, nil
		}
	}()
	return s.core.Decide(ctx, s.input(f)), nil
}

// input extracts the decision input from what a CheckRequest carries: the
// attributes, with headers read from both the headers map and the raw
// header_map.
func (s *GRPCServer) input(f *checkFields) Input {
	in := Input{Protocol: ProtocolGRPC}
	if !f.hasHTTP {
		return in
	}
	in.Complete = true
	in.Method = f.method
	// The pseudo-header fallbacks must agree as whole values: splitting on
	// commas would check "Q" while the proxy forwards "Q,Q". A disagreement
	// leaves the attribute empty, which the policy refuses.
	in.Authority = f.host
	if in.Authority == "" {
		in.Authority, _ = agree(wholeForm, nil, f.headers[slotAuthority])
	}
	in.Path = f.path
	if in.Path == "" {
		in.Path, _ = agree(wholeForm, nil, f.headers[slotPath])
	}
	switch {
	case f.extScheme != "":
		in.Scheme = f.extScheme
	case s.upstreamScheme != "":
		in.Scheme = s.upstreamScheme
	case f.scheme != "":
		in.Scheme = f.scheme
	default:
		in.Scheme, _ = agree(wholeForm, nil, f.headers[slotScheme])
	}
	in.Authorization = f.headers[slotAuthorization]
	in.Capability = f.headers[slotCapability]
	switch s.identity.Kind {
	case IdentityContextExtension:
		in.CallerID = f.extIdentity
	case IdentityPrincipal:
		in.CallerID = s.identity.fromPrincipal(f.principal)
	case IdentityHeader:
		// Absent or ambiguous: an unknown caller, container_mismatch.
		in.CallerID, _ = agree(idForm, nil, f.headers[slotIdentity])
	}
	return in
}

// credentialAction is how an allow sets credentialHeader: replacing the
// container's (docs/decisions.md section 7).
const credentialAction = corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD

// metadata is the dynamic metadata of an allow, in the order it is encoded.
func (d *Decision) metadata() [5][2]string {
	return [5][2]string{
		{"route_class", string(d.Route.Class)},
		{"user_id", d.UserID},
		{"cloud_agent_session_id", d.CloudAgentSessionID},
		{"kilo_session_id", d.KiloSessionID},
		{"outbound_container_id", d.OutboundContainerID},
	}
}

// okParts is every message of an allow, allocated together: one
// allocation instead of one per message and metadata value. An allow is
// built on every Check, so this is most of the adapter's garbage.
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

// okResponse is the allow of d (docs/decisions.md section 5): status OK,
// credentialHeader set to bearer(credential) with credentialAction, the
// removeOnAllow headers removed, and d's metadata. It is the one
// definition of an allow over gRPC: appendOK encodes the same message
// directly, and FuzzAppendOK and TestAppendOKLengths hold the two equal.
func (s *GRPCServer) okResponse(d Decision) *authv3.CheckResponse {
	p := new(okParts)
	p.status.Code = int32(codes.OK)
	p.header = corev3.HeaderValue{Key: credentialHeader, Value: bearer(d.Credential())}
	p.option.Header = &p.header
	p.option.AppendAction = credentialAction
	p.options[0] = &p.option
	p.okHTTP.Headers = p.options[:]
	p.okHTTP.HeadersToRemove = s.removeOnAllow // never modified by the proto runtime
	p.ok.OkResponse = &p.okHTTP
	p.meta.Fields = make(map[string]*structpb.Value, len(p.values))
	for i, kv := range d.metadata() {
		p.strs[i].StringValue = kv[1]
		p.values[i].Kind = &p.strs[i]
		p.meta.Fields[kv[0]] = &p.values[i]
	}
	p.resp.Status = &p.status
	p.resp.HttpResponse = &p.ok
	p.resp.DynamicMetadata = &p.meta
	return &p.resp
}

func deniedResponse(r Reason) *authv3.CheckResponse {
	r = r.asDeny()
	headers := []*corev3.HeaderValueOption{
		overwrite("content-type", "application/json"),
		overwrite("cache-control", "no-store"),
	}
	if c := r.WWWAuthenticate(); c != "" {
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

// Register registers srv on g as the Envoy ext_authz Authorization service,
// so that the caller needs no Envoy types of its own.
func Register(g *grpc.Server, srv *GRPCServer) {
	authv3.RegisterAuthorizationServer(g, srv)
}
