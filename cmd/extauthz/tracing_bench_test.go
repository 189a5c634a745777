package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/extauthz/extauthz/authz"
)

// BenchmarkTraceCheck is the cost of a Check span: "off" is the adapter
// alone (--tracing off installs nothing); "sampled" adds the interceptor
// with a span recorded and queued to a batch processor whose exporter
// discards; "unsampled" adds it with a parent that says not sampled.
func BenchmarkTraceCheck(b *testing.B) {
	f := newTraceFixture(b)
	batched(b, f)
	ctx := context.Background()
	for _, bc := range []struct {
		name    string
		tp      string
		through bool
	}{{"off", "", false}, {"sampled", traceparent, true}, {"unsampled", "00-" + w3cTraceID + "-" + w3cSpanID + "-00", true}} {
		req := grpcCheck(f.cap, map[string]string{"traceparent": bc.tp})
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if bc.through {
					f.check(b, ctx, req)
				} else if _, err := f.grpc.Check(ctx, req); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkTraceForward is the same for an allowed forward-auth request.
func BenchmarkTraceForward(b *testing.B) {
	f := newTraceFixture(b)
	batched(b, f)
	for _, bc := range []struct {
		name string
		h    http.Handler
		tp   string
	}{{"off", f.app.httpH, traceparent}, {"sampled", f.http, traceparent}, {"unsampled", f.http, "00-" + w3cTraceID + "-" + w3cSpanID + "-00"}} {
		r := httptest.NewRequest(http.MethodGet, authz.ForwardPath, nil)
		for k, v := range map[string]string{"Authorization": "Bearer " + f.cap, "X-Outbound-Container-Id": "ctr-1",
			"X-Forwarded-Proto": "http", "X-Forwarded-Host": "up.test", "X-Forwarded-Uri": "/api/x", "Traceparent": bc.tp} {
			r.Header.Set(k, v)
		}
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				w := httptest.NewRecorder()
				bc.h.ServeHTTP(w, r)
				if w.Code != http.StatusOK {
					b.Fatalf("forward = %d", w.Code)
				}
			}
		})
	}
}

// batched gives f the production span pipeline (a batch processor with
// its bounded queue) in front of an exporter that discards.
func batched(b *testing.B, f *traceFixture) {
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(tracetest.NewNoopExporter()))
	b.Cleanup(func() { tp.Shutdown(context.Background()) })
	f.tr = newTracer(tp, f.app.codec.KeyRing)
	f.http = f.tr.middleware(f.app.httpH, "x-outbound-container-id")
}
