package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"slices"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	collectorpb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	"github.com/extauthz/extauthz/authz"
	"github.com/extauthz/extauthz/internal/testutil/testsupport"
)

// otlpCollector is a minimal OTLP trace receiver: every exported request is
// sent on got.
type otlpCollector struct {
	collectorpb.UnimplementedTraceServiceServer
	got chan *collectorpb.ExportTraceServiceRequest
}

func (c *otlpCollector) Export(_ context.Context, req *collectorpb.ExportTraceServiceRequest) (*collectorpb.ExportTraceServiceResponse, error) {
	c.got <- req
	return &collectorpb.ExportTraceServiceResponse{}, nil
}

// ServeHTTP is the OTLP/HTTP binary-protobuf receiver (POST /v1/traces).
func (c *otlpCollector) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	req := &collectorpb.ExportTraceServiceRequest{}
	if err != nil || r.URL.Path != "/v1/traces" || proto.Unmarshal(body, req) != nil {
		http.Error(w, "bad export", http.StatusBadRequest)
		return
	}
	c.got <- req
	b, _ := proto.Marshal(&collectorpb.ExportTraceServiceResponse{})
	w.Header().Set("Content-Type", "application/x-protobuf")
	w.Write(b)
}

// startCollector serves the receiver on 127.0.0.1:0 over protocol (grpc
// or http/protobuf) and returns it with its endpoint URL.
func startCollector(t *testing.T, protocol string) (*otlpCollector, string) {
	t.Helper()
	c := &otlpCollector{got: make(chan *collectorpb.ExportTraceServiceRequest, 64)}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if protocol == "grpc" {
		s := grpc.NewServer()
		collectorpb.RegisterTraceServiceServer(s, c)
		go s.Serve(ln)
		t.Cleanup(s.Stop)
	} else {
		s := &http.Server{Handler: c, ReadHeaderTimeout: 10 * time.Second}
		go s.Serve(ln)
		t.Cleanup(func() { s.Close() })
	}
	return c, "http://" + ln.Addr().String()
}

// TestTracingExportsOTLP runs `extauthz serve --tracing` as a process with
// the standard OTEL_* variables pointing at a receiver written here, over
// OTLP/gRPC and OTLP/HTTP: a Check carrying a traceparent yields a span
// that leaves the process as a child of that parent, named and attributed
// as the decision it was, under the configured service name. With a batch
// delay longer than the test, the span leaves at SIGTERM: queued spans are
// flushed at exit.
func TestTracingExportsOTLP(t *testing.T) {
	for _, tc := range []struct {
		name, protocol, delay string
		flushAtExit           bool
	}{
		{"grpc", "grpc", "50", false},
		{"http", "http/protobuf", "50", false},
		{"flush at exit", "grpc", "600000", true},
	} {
		protocol := tc.protocol
		t.Run(tc.name, func(t *testing.T) {
			col, endpoint := startCollector(t, protocol)
			key := newKey(t)
			keyFile := filepath.Join(t.TempDir(), "keys")
			writeKeys(t, keyFile, key)
			p := startServeWith(t, nil, []string{
				"OTEL_EXPORTER_OTLP_ENDPOINT=" + endpoint,
				"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=",
				"OTEL_EXPORTER_OTLP_PROTOCOL=" + protocol,
				"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL=",
				"OTEL_EXPORTER_OTLP_INSECURE=true",
				"OTEL_SERVICE_NAME=extauthz-otlp-test",
				"OTEL_TRACES_SAMPLER=parentbased_always_on",
				"OTEL_BSP_SCHEDULE_DELAY=" + tc.delay,
			}, "--tracing", "--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--http-container-id-header", "x-outbound-container-id",
				"--admin-addr", "", "--key-file", keyFile)
			httpAddr := p.addr(t, "http")
			conn := p.dialReady(t)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			req := checkRequest(sealFor(t, key))
			req.Attributes.Request.Http.Headers["traceparent"] = testsupport.TraceParent
			resp, err := authv3.NewAuthorizationClient(conn).Check(ctx, req)
			if err != nil || resp.GetOkResponse() == nil {
				t.Fatalf("Check = %v, %v; want an allow", resp.GetStatus(), err)
			}

			// A forward-auth deny with a B3 parent, through the listener's
			// middleware as newApp installs it.
			fwd, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+httpAddr+authz.ForwardPath, nil)
			if err != nil {
				t.Fatal(err)
			}
			fwd.Header.Set("B3", testsupport.B3TraceID+"-"+testsupport.B3SpanID+"-1")
			if resp, err := http.DefaultClient.Do(fwd); err != nil || resp.StatusCode != http.StatusForbidden {
				t.Fatalf("forward = %v, %v; want 403", resp, err)
			} else {
				resp.Body.Close()
			}

			if tc.flushAtExit {
				stopServe(t, p)
			}
			const forwardSpan = "extauthz forward-auth"
			spans, service := waitSpans(t, col, checkSpanName, forwardSpan)
			if fs := spans[forwardSpan]; hex.EncodeToString(fs.GetTraceId()) != testsupport.B3TraceID || hex.EncodeToString(fs.GetParentSpanId()) != testsupport.B3SpanID {
				t.Errorf("forward span trace %x parent %x; want %s %s", fs.GetTraceId(), fs.GetParentSpanId(), testsupport.B3TraceID, testsupport.B3SpanID)
			}
			span := spans[checkSpanName]
			if got := hex.EncodeToString(span.GetTraceId()); got != testsupport.W3CTraceID {
				t.Errorf("exported trace id = %s; want %s", got, testsupport.W3CTraceID)
			}
			if got := hex.EncodeToString(span.GetParentSpanId()); got != testsupport.W3CSpanID {
				t.Errorf("exported parent span id = %s; want %s", got, testsupport.W3CSpanID)
			}
			if bytes.Equal(span.GetSpanId(), mustHex(t, testsupport.W3CSpanID)) {
				t.Error("the exported span reuses its parent's id")
			}
			if service != "extauthz-otlp-test" {
				t.Errorf("service.name = %q; want OTEL_SERVICE_NAME's extauthz-otlp-test", service)
			}
			attrs := map[string]string{}
			for _, kv := range span.GetAttributes() {
				attrs[kv.GetKey()] = kv.GetValue().GetStringValue()
			}
			if attrs[attrDecision] != "allow" || attrs[attrRouteClass] != "provider_model" ||
				attrs[attrContainerID] != devSubject().OutboundContainerID {
				t.Errorf("exported attributes = %v; want an allow of provider_model for %s", attrs, devSubject().OutboundContainerID)
			}
			if !tc.flushAtExit {
				stopServe(t, p)
			}
		})
	}
}

// waitSpans waits for the collector to receive a span of each name and
// returns them by name, with the service.name of their resource.
func waitSpans(t *testing.T, c *otlpCollector, names ...string) (map[string]*tracepb.Span, string) {
	t.Helper()
	got := map[string]*tracepb.Span{}
	service := ""
	timeout := time.After(20 * time.Second)
	for len(got) < len(names) {
		select {
		case req := <-c.got:
			for _, rs := range req.GetResourceSpans() {
				for _, kv := range rs.GetResource().GetAttributes() {
					if kv.GetKey() == "service.name" {
						service = kv.GetValue().GetStringValue()
					}
				}
				for _, ss := range rs.GetScopeSpans() {
					for _, s := range ss.GetSpans() {
						if slices.Contains(names, s.GetName()) {
							got[s.GetName()] = s
						}
					}
				}
			}
		case <-timeout:
			t.Fatalf("spans %q did not all reach the collector within 20s; got %d", names, len(got))
		}
	}
	return got, service
}

func mustHex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
