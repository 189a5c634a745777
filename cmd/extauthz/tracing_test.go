package main

import (
	"io"
	"strings"
	"testing"

	"github.com/rs/zerolog"
)

// What a decision span is called and carries (authz/trace.go; docs/operations.md,
// "Tracing").
const (
	checkSpanName   = "envoy.service.auth.v3.Authorization/Check"
	attrDecision    = "extauthz.decision"
	attrRouteClass  = "extauthz.route_class"
	attrContainerID = "extauthz.container_id"
)

// TestTracingConfig: --tracing builds an exporter (without connecting), an
// unknown OTLP protocol is refused naming the variable, and the default
// is off.
func TestTracingConfig(t *testing.T) {
	for _, tc := range []struct {
		name string
		env  map[string]string
		err  string
	}{
		{"default grpc", nil, ""},
		{"http", map[string]string{"OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"}, ""},
		{"traces protocol wins", map[string]string{"OTEL_EXPORTER_OTLP_PROTOCOL": "bogus", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "grpc"}, ""},
		{"http/json", map[string]string{"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/json"}, "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: want grpc or http/protobuf"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			getenv := func(k string) string { return tc.env[k] }
			o, err := parseServeFlags("serve", []string{"--dev", "--tracing", "--http-addr", "127.0.0.1:0", "--grpc-addr", "127.0.0.1:0", "--admin-addr", ""}, getenv, io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			a, err := newApp(o, getenv, zerolog.Nop())
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("newApp error = %v; want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if a.tracing == nil {
				t.Fatal("--tracing set up nothing")
			}
			a.shutdownTracing()
		})
	}
	o, err := parseServeFlags("serve", nil, func(string) string { return "" }, io.Discard)
	if err != nil || o.tracing {
		t.Errorf("default --tracing = %v (%v); want off", o.tracing, err)
	}
	o, err = parseServeFlags("serve", nil, func(k string) string { return map[string]string{"EXTAUTHZ_TRACING": "true"}[k] }, io.Discard)
	if err != nil || !o.tracing {
		t.Errorf("EXTAUTHZ_TRACING=true: --tracing = %v (%v); want on", o.tracing, err)
	}
}
