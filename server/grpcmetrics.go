package server

import (
	"context"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/stats"
	"google.golang.org/grpc/status"
)

// grpcMetrics is the gRPC server's one stats handler (each one costs
// every RPC a callback per event): it counts finished RPCs by method and
// status code, so that errors that never reach a decision (a request too
// large to read, a cancelled stream, an unknown method) are visible beside
// the decisions, and logs the Check calls that fail (checkFailureLog).
type grpcMetrics struct {
	handled *prometheus.CounterVec
	// checkOK is handled's series for a Check answered, every decision:
	// resolved once instead of hashing its labels on every call.
	checkOK  prometheus.Counter
	failures checkFailureLog
}

type rpcMethodKey struct{}

// knownMethods are the methods served; any other name a client sends is
// counted as "other", so that clients cannot add label values.
var knownMethods = map[string]bool{
	"/envoy.service.auth.v3.Authorization/Check":                     true,
	"/grpc.health.v1.Health/Check":                                   true,
	"/grpc.health.v1.Health/Watch":                                   true,
	"/grpc.health.v1.Health/List":                                    true,
	"/grpc.reflection.v1.ServerReflection/ServerReflectionInfo":      true,
	"/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo": true,
}

func newGRPCMetrics(reg prometheus.Registerer, log zerolog.Logger) (*grpcMetrics, error) {
	m := &grpcMetrics{handled: prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "extauthz",
		Name:      "grpc_requests_total",
		Help:      "gRPC calls served, by method and status code (Check answers OK for every decision; other codes are errors).",
	}, []string{"method", "code"})}
	if err := reg.Register(m.handled); err != nil {
		return nil, err
	}
	m.checkOK = m.handled.WithLabelValues(CheckMethod, codes.OK.String())
	m.failures = checkFailureLog{log}
	return m, nil
}

func (m *grpcMetrics) TagRPC(ctx context.Context, info *stats.RPCTagInfo) context.Context {
	method := info.FullMethodName
	if !knownMethods[method] {
		method = "other"
	}
	return context.WithValue(ctx, rpcMethodKey{}, method)
}

func (m *grpcMetrics) HandleRPC(ctx context.Context, s stats.RPCStats) {
	end, ok := s.(*stats.End)
	if !ok {
		return
	}
	method, _ := ctx.Value(rpcMethodKey{}).(string)
	if method == CheckMethod && end.Error == nil {
		m.checkOK.Inc()
		return
	}
	m.handled.WithLabelValues(method, status.Code(end.Error).String()).Inc()
	if method == CheckMethod {
		m.failures.record(ctx, end)
	}
}

func (m *grpcMetrics) TagConn(ctx context.Context, _ *stats.ConnTagInfo) context.Context {
	return ctx
}

func (m *grpcMetrics) HandleConn(context.Context, stats.ConnStats) {}
