package server

import (
	"bytes"
	"context"
	"errors"
	"maps"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/stats"
	"google.golang.org/grpc/status"
)

// TestGRPCMetricsBoundsMethods: a method name a client makes up is counted
// as "other", the status code of a failed call is recorded, and only the
// failed Check is logged.
func TestGRPCMetricsBoundsMethods(t *testing.T) {
	reg := prometheus.NewRegistry()
	var logs bytes.Buffer
	m, err := newGRPCMetrics(reg, zerolog.New(&logs))
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
	got := map[string]float64{}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		for _, mt := range mf.GetMetric() {
			var labels []string
			for _, l := range mt.GetLabel() {
				labels = append(labels, l.GetName()+"="+l.GetValue())
			}
			got[strings.Join(labels, ",")] = mt.GetCounter().GetValue()
		}
	}
	want := map[string]float64{
		"code=OK,method=/envoy.service.auth.v3.Authorization/Check":                1,
		"code=ResourceExhausted,method=/envoy.service.auth.v3.Authorization/Check": 1,
		"code=Unknown,method=other":                                                1,
	}
	if !maps.Equal(got, want) {
		t.Errorf("extauthz_grpc_requests_total = %v; want %v", got, want)
	}
	if lines := strings.Split(strings.TrimSpace(logs.String()), "\n"); len(lines) != 1 || !strings.Contains(lines[0], `"reason":"request_too_large"`) {
		t.Errorf("logged %q; want one check failed line, for the ResourceExhausted Check", lines)
	}
}
