// Package nopauthz is a do-nothing Envoy ext_authz gRPC server for
// benchmarks: the cost floor extauthz is measured against. It answers every
// Check with one fixed response built at start-up, reads nothing of the
// request, logs nothing, and serves grpc.health.v1 as SERVING so that a
// health-checked Envoy cluster sends it traffic.
//
// Never deploy it: it allows everything.
package nopauthz

import (
	"context"
	"net"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/protobuf/types/known/structpb"
)

var _ authv3.AuthorizationServer = (*Server)(nil)

// Server answers every Check with the same response.
type Server struct {
	resp *authv3.CheckResponse
}

// New returns a server that answers resp to every Check.
func New(resp *authv3.CheckResponse) *Server { return &Server{resp: resp} }

// Check implements envoy.service.auth.v3.Authorization/Check.
func (s *Server) Check(context.Context, *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	return s.resp, nil
}

// Bare is an OK with no header mutation and no metadata.
func Bare() *authv3.CheckResponse {
	return &authv3.CheckResponse{Status: &status.Status{Code: int32(codes.OK)}}
}

// Mirror is an OK shaped like extauthz's allow of a kka1 capability, so
// that Envoy does the same work applying it: authorization overwritten with
// a bearer token of tokenLen bytes, the capability header removed, and
// dynamic metadata with the keys extauthz sets (each value 16 bytes).
func Mirror(capabilityHeader string, tokenLen int) *authv3.CheckResponse {
	v := strings.Repeat("m", 16)
	meta := map[string]string{}
	for _, k := range []string{"route_class", "user_id", "cloud_agent_session_id", "kilo_session_id", "outbound_container_id"} {
		meta[k] = v
	}
	return Allow("authorization", "Bearer "+strings.Repeat("t", tokenLen), []string{capabilityHeader}, meta)
}

// Allow is an OK that overwrites header with value, removes the headers
// remove, and carries metadata as dynamic metadata: a benchmark builds it
// to match what extauthz answers to the request it sends (Mirror, or a
// profile capability's allow), so that both servers answer alike.
func Allow(header, value string, remove []string, metadata map[string]string) *authv3.CheckResponse {
	meta := make(map[string]*structpb.Value, len(metadata))
	for k, v := range metadata {
		meta[k] = structpb.NewStringValue(v)
	}
	return &authv3.CheckResponse{
		Status: &status.Status{Code: int32(codes.OK)},
		HttpResponse: &authv3.CheckResponse_OkResponse{OkResponse: &authv3.OkHttpResponse{
			Headers: []*corev3.HeaderValueOption{{
				Header:       &corev3.HeaderValue{Key: header, Value: value},
				AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD,
			}},
			HeadersToRemove: remove,
		}},
		DynamicMetadata: &structpb.Struct{Fields: meta},
	}
}

// Serve registers s and a SERVING health service on a new gRPC server and
// serves ln until ctx is done.
func Serve(ctx context.Context, ln net.Listener, s *Server, opts ...grpc.ServerOption) error {
	g := grpc.NewServer(opts...)
	authv3.RegisterAuthorizationServer(g, s)
	healthpb.RegisterHealthServer(g, health.NewServer()) // "" is SERVING
	stop := context.AfterFunc(ctx, g.Stop)
	defer stop()
	err := g.Serve(ln)
	if ctx.Err() != nil {
		return nil
	}
	return err
}
