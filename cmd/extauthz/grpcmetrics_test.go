package main

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/stats"
	"google.golang.org/grpc/status"
)

// TestGRPCMetricsBoundsMethods: a method name a client makes up is counted
// as "other", and the status code of a failed call is recorded.
func TestGRPCMetricsBoundsMethods(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := newGRPCMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		method string
		err    error
	}{
		{"/envoy.service.auth.v3.Authorization/Check", nil},
		{"/envoy.service.auth.v3.Authorization/Check", status.Error(codes.ResourceExhausted, "too big")},
		{"/attacker/" + strings.Repeat("x", 100), errors.New("unknown")},
	} {
		ctx := m.TagRPC(context.Background(), &stats.RPCTagInfo{FullMethodName: c.method})
		m.HandleRPC(ctx, &stats.End{Error: c.err})
	}
	want := `
# HELP extauthz_grpc_requests_total gRPC calls served, by method and status code (Check answers OK for every decision; other codes are errors).
# TYPE extauthz_grpc_requests_total counter
extauthz_grpc_requests_total{code="OK",method="/envoy.service.auth.v3.Authorization/Check"} 1
extauthz_grpc_requests_total{code="ResourceExhausted",method="/envoy.service.auth.v3.Authorization/Check"} 1
extauthz_grpc_requests_total{code="Unknown",method="other"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want)); err != nil {
		t.Error(err)
	}
}
