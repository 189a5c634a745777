package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/rs/zerolog"
	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	"github.com/extauthz/extauthz/authz"
	"github.com/extauthz/extauthz/capability"
	"github.com/extauthz/extauthz/internal/testutil/testsupport"
)

// Trace context planted in requests: a W3C parent, and a B3 one.
const (
	w3cTraceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	w3cSpanID  = "00f067aa0ba902b7"
	b3TraceID  = "80f198ee56343ba864fe8b2a57d3eff7"
	b3SpanID   = "e457b5a2e4d86bd1"
)

const traceparent = "00-" + w3cTraceID + "-" + w3cSpanID + "-01"

// traceFixture is a decision core from newApp (no --tracing) with the
// adapters wrapped by a tracer that exports to memory.
type traceFixture struct {
	app    *app
	exp    *tracetest.InMemoryExporter
	tr     *tracer
	grpc   *authz.GRPCServer
	http   http.Handler
	key    []byte
	cap    string // a capability for container ctr-1, provider and backend on up.test
	apiTok string
}

func newTraceFixture(t testing.TB) *traceFixture {
	t.Helper()
	dir := t.TempDir()
	f := &traceFixture{key: bytes.Repeat([]byte{9}, capability.KeySize), apiTok: "SENTINEL-admin-token-5e1d0c"}
	keyFile := filepath.Join(dir, "keys")
	writeKeys(t, keyFile, f.key)
	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte(f.apiTok), 0o600); err != nil {
		t.Fatal(err)
	}
	getenv := func(string) string { return "" }
	o, err := parseServeFlags("serve", []string{"--key-file", keyFile, "--dev-http-hosts", "up.test",
		"--http-addr", "127.0.0.1:0", "--http-container-id-header", "x-outbound-container-id",
		"--api-token-file", tokenFile, "--revocation-file", filepath.Join(dir, "revocations")}, getenv, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if f.app, err = newApp(o, getenv, zerolog.Nop()); err != nil {
		t.Fatal(err)
	}
	if f.app.tracing != nil {
		t.Fatal("without --tracing, newApp set up tracing")
	}
	f.exp = tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(f.exp))
	t.Cleanup(func() { tp.Shutdown(context.Background()) })
	f.tr = newTracer(tp, f.app.codec.KeyRing)
	if f.grpc, err = authz.NewGRPCServer(f.app.core, authz.GRPCOptions{Identity: o.identity}); err != nil {
		t.Fatal(err)
	}
	f.http = f.tr.middleware(f.app.httpH, o.httpContainerIDHeader)
	targets := capability.Targets{BackendBaseURL: "http://up.test", ProviderBaseURL: "http://up.test", SessionIngestBaseURL: "http://up.test:81"}
	if f.cap, err = f.app.codec.Seal(testsupport.Subject("ctr-1", targets), capability.MaxLifetime); err != nil {
		t.Fatal(err)
	}
	return f
}

// check runs a Check through the interceptor, as the gRPC server would.
func (f *traceFixture) check(t testing.TB, ctx context.Context, req *authv3.CheckRequest) *authv3.CheckResponse {
	t.Helper()
	resp, err := f.tr.unary(ctx, req, &grpc.UnaryServerInfo{FullMethod: checkMethod}, func(ctx context.Context, req any) (any, error) {
		return f.grpc.Check(ctx, req.(*authv3.CheckRequest))
	})
	if err != nil {
		t.Fatal(err)
	}
	return resp.(*authv3.CheckResponse)
}

// serve runs an HTTP request through the middleware.
func (f *traceFixture) serve(method, target string, header map[string]string, body string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(method, target, strings.NewReader(body))
	for k, v := range header {
		if k == "Host" {
			r.Host = v
			continue
		}
		r.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	f.http.ServeHTTP(w, r)
	return w
}

// only is the one span exported since the last reset.
func (f *traceFixture) only(t *testing.T) tracetest.SpanStub {
	t.Helper()
	spans := f.exp.GetSpans()
	f.exp.Reset()
	if len(spans) != 1 {
		t.Fatalf("exported %d spans; want 1", len(spans))
	}
	return spans[0]
}

// grpcCheck is a CheckRequest from container ctr-1 for a provider route on
// up.test, with headers (lower-case names) added to the headers map.
func grpcCheck(capHeader string, headers map[string]string) *authv3.CheckRequest {
	h := map[string]string{}
	if capHeader != "" {
		h["authorization"] = "Bearer " + capHeader
	}
	for k, v := range headers {
		h[k] = v
	}
	return &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		ContextExtensions: map[string]string{"outbound_container_id": "ctr-1"},
		Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
			Method: "POST", Scheme: "http", Host: "up.test", Path: "/api/openrouter/v1/chat/completions",
			Headers: h,
		}},
	}}
}

func attrsOf(s tracetest.SpanStub) map[attribute.Key]string {
	m := map[attribute.Key]string{}
	for _, kv := range s.Attributes {
		m[kv.Key] = kv.Value.Emit()
	}
	return m
}

// wantParent checks that s is a child of the span traceID/spanID (hex), or
// a root span when traceID is "".
func wantParent(t *testing.T, s tracetest.SpanStub, traceID, spanID string) {
	t.Helper()
	if traceID == "" {
		if s.Parent.IsValid() {
			t.Errorf("span %q has parent %v; want a root span", s.Name, s.Parent)
		}
		if !s.SpanContext.IsValid() {
			t.Errorf("span %q has no valid context", s.Name)
		}
		return
	}
	if got := s.Parent.TraceID().String(); got != traceID {
		t.Errorf("span %q parent trace id = %s; want %s", s.Name, got, traceID)
	}
	if got := s.Parent.SpanID().String(); got != spanID {
		t.Errorf("span %q parent span id = %s; want %s", s.Name, got, spanID)
	}
	if got := s.SpanContext.TraceID().String(); got != traceID {
		t.Errorf("span %q trace id = %s; want its parent's %s", s.Name, got, traceID)
	}
	if !s.Parent.IsRemote() {
		t.Errorf("span %q parent is not remote", s.Name)
	}
}

func wantAttrs(t *testing.T, s tracetest.SpanStub, want map[attribute.Key]string) {
	t.Helper()
	got := attrsOf(s)
	for k, v := range want {
		if got[k] != v {
			t.Errorf("span %q %s = %q; want %q (all: %v)", s.Name, k, got[k], v, got)
		}
	}
	for _, k := range []attribute.Key{attrReason, attrRouteClass} {
		if _, ok := want[k]; !ok && got[k] != "" {
			t.Errorf("span %q has %s = %q; want none", s.Name, k, got[k])
		}
	}
}

// TestTraceCheck: a Check span is a child of the trace context in the
// CheckRequest's headers (W3C, B3 single, B3 multi, in the headers map or
// header_map), else of the call's gRPC metadata, else a root; it carries
// the decision, reason, route class, protocol, container id and key
// fingerprint.
func TestTraceCheck(t *testing.T) {
	f := newTraceFixture(t)
	fp := capability.Fingerprint(f.key)
	allow := map[attribute.Key]string{attrDecision: "allow", attrRouteClass: "provider_model", attrProtocol: "grpc",
		attrContainerID: "ctr-1", attrKeyFingerprint: fp, "rpc.system": "grpc", "rpc.grpc.status_code": "0"}
	deny := map[attribute.Key]string{attrDecision: "deny", attrReason: "missing_capability", attrProtocol: "grpc",
		attrKeyFingerprint: fp, "rpc.grpc.status_code": "0"}
	b3Single := b3TraceID + "-" + b3SpanID + "-1"
	for _, tc := range []struct {
		name            string
		cap             bool
		headers         map[string]string
		headerMap       map[string]string
		md              metadata.MD
		traceID, spanID string
		want            map[attribute.Key]string
	}{
		{name: "w3c allow", cap: true, headers: map[string]string{"traceparent": traceparent}, traceID: w3cTraceID, spanID: w3cSpanID, want: allow},
		{name: "w3c deny", headers: map[string]string{"traceparent": traceparent}, traceID: w3cTraceID, spanID: w3cSpanID, want: deny},
		{name: "b3 single", cap: true, headers: map[string]string{"b3": b3Single}, traceID: b3TraceID, spanID: b3SpanID, want: allow},
		{name: "b3 multi", headers: map[string]string{"x-b3-traceid": b3TraceID, "x-b3-spanid": b3SpanID, "x-b3-sampled": "1"},
			traceID: b3TraceID, spanID: b3SpanID, want: deny},
		{name: "header_map", cap: true, headerMap: map[string]string{"Traceparent": traceparent}, traceID: w3cTraceID, spanID: w3cSpanID, want: allow},
		{name: "request headers win over metadata", cap: true, headers: map[string]string{"traceparent": traceparent},
			md: metadata.Pairs("b3", b3Single), traceID: w3cTraceID, spanID: w3cSpanID, want: allow},
		{name: "metadata fallback", cap: true, md: metadata.Pairs("traceparent", "00-"+b3TraceID+"-"+b3SpanID+"-01"),
			traceID: b3TraceID, spanID: b3SpanID, want: allow},
		{name: "root", cap: true, want: allow},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tok := ""
			if tc.cap {
				tok = f.cap
			}
			req := grpcCheck(tok, tc.headers)
			if tc.headerMap != nil {
				hm := &corev3.HeaderMap{}
				for k, v := range tc.headerMap {
					hm.Headers = append(hm.Headers, &corev3.HeaderValue{Key: k, RawValue: []byte(v)})
				}
				req.Attributes.Request.Http.HeaderMap = hm
			}
			ctx := context.Background()
			if tc.md != nil {
				ctx = metadata.NewIncomingContext(ctx, tc.md)
			}
			resp := f.check(t, ctx, req)
			if allowed := resp.GetOkResponse() != nil; allowed != (tc.want[attrDecision] == "allow") {
				t.Fatalf("Check allowed = %v; want decision %s (%s)", allowed, tc.want[attrDecision], resp.GetStatus().GetMessage())
			}
			s := f.only(t)
			if s.Name != checkSpanName || s.SpanKind != trace.SpanKindServer {
				t.Errorf("span = %q %v; want %q server", s.Name, s.SpanKind, checkSpanName)
			}
			wantParent(t, s, tc.traceID, tc.spanID)
			wantAttrs(t, s, tc.want)
		})
	}
	t.Run("other methods", func(t *testing.T) {
		f.exp.Reset()
		_, err := f.tr.unary(context.Background(), nil, &grpc.UnaryServerInfo{FullMethod: "/grpc.health.v1.Health/Check"},
			func(context.Context, any) (any, error) { return nil, nil })
		if err != nil || len(f.exp.GetSpans()) != 0 {
			t.Errorf("health check: err %v, %d spans; want none", err, len(f.exp.GetSpans()))
		}
	})
}

// TestTraceHTTP: forward-auth, Envoy http_service, issue and redeem each
// get a span named by endpoint, child of a W3C or B3 parent, with the
// decision read from the answer; a path that decides nothing gets none.
func TestTraceHTTP(t *testing.T) {
	f := newTraceFixture(t)
	fp := capability.Fingerprint(f.key)
	fwd := func(extra map[string]string) map[string]string {
		h := map[string]string{"Authorization": "Bearer " + f.cap, "X-Outbound-Container-Id": "ctr-1",
			"X-Forwarded-Proto": "http", "X-Forwarded-Host": "up.test", "X-Forwarded-Uri": "/api/x"}
		for k, v := range extra {
			h[k] = v
		}
		return h
	}
	api := map[string]string{"Authorization": "Bearer " + f.apiTok}
	redeem := fmt.Sprintf(`{"capability":%q,"outboundContainerId":"ctr-1","requestMethod":"POST","requestUrl":"http://up.test/api/openrouter/v1/chat/completions"}`, f.cap)
	subject := `{"userId":"u","cloudAgentSessionId":"c","kiloSessionId":"k","outboundContainerId":"ctr-2","userToken":"ut",` +
		`"targets":{"backendBaseUrl":"http://up.test","providerBaseUrl":"http://up.test","sessionIngestBaseUrl":"http://up.test:81"}}`
	for _, tc := range []struct {
		name, method, target string
		header               map[string]string
		body                 string
		status               int
		span                 string
		traceID, spanID      string
		want                 map[attribute.Key]string
	}{
		{"forward allow w3c", "GET", authz.ForwardPath, fwd(map[string]string{"Traceparent": traceparent}), "", 200,
			"extauthz forward-auth", w3cTraceID, w3cSpanID, map[attribute.Key]string{attrDecision: "allow", attrRouteClass: "backend_api",
				attrProtocol: "http-forward", attrContainerID: "ctr-1", attrKeyFingerprint: fp, "http.route": authz.ForwardPath, "http.response.status_code": "200"}},
		{"forward deny b3", "GET", authz.ForwardPath, fwd(map[string]string{"X-Outbound-Container-Id": "ctr-9", "B3": b3TraceID + "-" + b3SpanID + "-1"}), "", 403,
			"extauthz forward-auth", b3TraceID, b3SpanID, map[attribute.Key]string{attrDecision: "deny", attrReason: "container_mismatch",
				attrProtocol: "http-forward", attrContainerID: "ctr-9"}},
		{"envoy allow b3 multi", "POST", authz.EnvoyPathPrefix + "/api/openrouter/v1/chat/completions",
			map[string]string{"Authorization": "Bearer " + f.cap, "X-Outbound-Container-Id": "ctr-1", "X-Forwarded-Proto": "http", "Host": "up.test",
				"X-B3-Traceid": b3TraceID, "X-B3-Spanid": b3SpanID, "X-B3-Sampled": "1"}, "", 200,
			"extauthz envoy http_service", b3TraceID, b3SpanID, map[attribute.Key]string{attrDecision: "allow", attrRouteClass: "provider_model",
				attrProtocol: "http-envoy", "http.route": authz.EnvoyPathPrefix + "/*"}},
		{"envoy deny root", "GET", authz.EnvoyPathPrefix + "/x", map[string]string{"X-Forwarded-Proto": "http", "Host": "up.test"}, "", 401,
			"extauthz envoy http_service", "", "", map[attribute.Key]string{attrDecision: "deny", attrReason: "missing_capability", attrProtocol: "http-envoy"}},
		{"redeem allow", "POST", authz.RedeemPath, map[string]string{"Authorization": "Bearer " + f.apiTok, "Traceparent": traceparent}, redeem, 200,
			"extauthz redeem", w3cTraceID, w3cSpanID, map[attribute.Key]string{attrDecision: "allow", attrRouteClass: "provider_model", attrProtocol: "api-redeem"}},
		{"redeem deny", "POST", authz.RedeemPath, api, strings.Replace(redeem, "ctr-1", "ctr-3", 1), 403,
			"extauthz redeem", "", "", map[attribute.Key]string{attrDecision: "deny", attrReason: "container_mismatch", attrProtocol: "api-redeem"}},
		{"issue", "POST", authz.IssuePath, api, subject, 200,
			"extauthz issue", "", "", map[attribute.Key]string{attrDecision: "allow", attrProtocol: "api-issue"}},
		{"revoke", "POST", authz.RevokePath, map[string]string{"Authorization": "Bearer " + f.apiTok, "Traceparent": traceparent}, `{"userId":"user-9","reason":"offboarded"}`, 200,
			"extauthz revoke", w3cTraceID, w3cSpanID, map[attribute.Key]string{attrProtocol: "api-revoke", "http.route": authz.RevokePath}},
		{"issue unauthorized", "POST", authz.IssuePath, map[string]string{"Authorization": "Bearer wrong-token-0123456789"}, subject, 401,
			"extauthz issue", "", "", map[attribute.Key]string{attrDecision: "deny", attrReason: "unauthorized", attrProtocol: "api-issue"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := f.serve(tc.method, tc.target, tc.header, tc.body)
			if w.Code != tc.status {
				t.Fatalf("%s %s = %d %s; want %d", tc.method, tc.target, w.Code, w.Body, tc.status)
			}
			s := f.only(t)
			if s.Name != tc.span || s.SpanKind != trace.SpanKindServer {
				t.Errorf("span = %q %v; want %q server", s.Name, s.SpanKind, tc.span)
			}
			wantParent(t, s, tc.traceID, tc.spanID)
			wantAttrs(t, s, tc.want)
		})
	}
	t.Run("no decision, no span", func(t *testing.T) {
		if w := f.serve("GET", "/v1/other", map[string]string{"Traceparent": traceparent}, ""); w.Code != http.StatusNotFound {
			t.Fatalf("GET /v1/other = %d; want 404", w.Code)
		}
		if n := len(f.exp.GetSpans()); n != 0 {
			t.Errorf("%d spans for a 404; want none", n)
		}
	})
}

// TestTraceSecrets plants a capability, the tokens it seals, the admin
// token, the key and query strings in requests to every adapter, allowed
// and denied, and requires that no exported span (name, attributes,
// events, links, status) contains any of them.
func TestTraceSecrets(t *testing.T) {
	f := newTraceFixture(t)
	const query = "SENTINEL-query-9d2e"
	secrets := []string{f.cap, testsupport.UserToken, testsupport.ProviderToken, f.apiTok, query,
		base64.StdEncoding.EncodeToString(f.key), hex.EncodeToString(f.key), "kka1."}

	for _, tok := range []string{f.cap, f.cap + "x"} {
		req := grpcCheck(tok, map[string]string{"traceparent": traceparent, "x-kilo-capability": tok})
		req.Attributes.Request.Http.Path += "?q=" + query
		f.check(t, context.Background(), req)
		req = grpcCheck(tok, nil)
		req.Attributes.Request.Http.Path = "/api/x?q=" + query
		f.check(t, metadata.NewIncomingContext(context.Background(), metadata.Pairs("authorization", "Bearer "+tok)), req)

		fwd := map[string]string{"Authorization": "Bearer " + tok, "X-Outbound-Container-Id": "ctr-1", "X-Forwarded-Proto": "http",
			"X-Forwarded-Host": "up.test", "X-Forwarded-Uri": "/api/x?q=" + query, "Traceparent": traceparent}
		f.serve("GET", authz.ForwardPath+"?q="+query, fwd, "")
		f.serve("GET", authz.EnvoyPathPrefix+"/api/x?q="+query, map[string]string{"X-Kilo-Capability": tok,
			"X-Outbound-Container-Id": "ctr-1", "X-Forwarded-Proto": "http", "Host": "up.test"}, "")
		for _, ctr := range []string{"ctr-1", "ctr-2"} {
			f.serve("POST", authz.RedeemPath+"?q="+query, map[string]string{"Authorization": "Bearer " + f.apiTok}, fmt.Sprintf(
				`{"capability":%q,"outboundContainerId":%q,"requestMethod":"POST","requestUrl":"http://up.test/api/x?q=%s"}`, tok, ctr, query))
		}
	}
	subject := fmt.Sprintf(`{"userId":"u","cloudAgentSessionId":"c","kiloSessionId":"k","outboundContainerId":"ctr-2","userToken":%q,`+
		`"providerToken":%q,"targets":{"backendBaseUrl":"http://up.test","providerBaseUrl":"http://up.test","sessionIngestBaseUrl":"http://up.test:81"}}`,
		testsupport.UserToken, testsupport.ProviderToken)
	if w := f.serve("POST", authz.IssuePath+"?q="+query, map[string]string{"Authorization": "Bearer " + f.apiTok}, subject); w.Code != http.StatusOK {
		t.Fatalf("issue = %d %s", w.Code, w.Body)
	} else {
		secrets = append(secrets, strings.TrimSuffix(strings.TrimPrefix(w.Body.String(), `{"capability":"`), `"}`))
	}
	f.serve("POST", authz.IssuePath, map[string]string{"Authorization": "Bearer " + f.apiTok + "x"}, subject)

	spans := f.exp.GetSpans()
	if len(spans) != 14 {
		t.Errorf("exported %d spans; want 14", len(spans))
	}
	allowed := 0
	for _, s := range spans {
		dump := dumpSpan(s)
		if strings.Contains(dump, "extauthz.decision=allow") {
			allowed++
		}
		for _, secret := range secrets {
			if strings.Contains(dump, secret) {
				t.Errorf("span contains a secret (%.12s…):\n%s", secret, dump)
			}
		}
	}
	if allowed == 0 {
		t.Error("no allowed decision traced: the test plants nothing an allow returns")
	}
}

// dumpSpan is everything a span exports, as text.
func dumpSpan(s tracetest.SpanStub) string {
	var b strings.Builder
	fmt.Fprintf(&b, "name=%s status=%v:%s\n", s.Name, s.Status.Code, s.Status.Description)
	for _, kv := range s.Attributes {
		fmt.Fprintf(&b, "%s=%s\n", kv.Key, kv.Value.Emit())
	}
	for _, e := range s.Events {
		fmt.Fprintf(&b, "event %s\n", e.Name)
		for _, kv := range e.Attributes {
			fmt.Fprintf(&b, "  %s=%s\n", kv.Key, kv.Value.Emit())
		}
	}
	for _, l := range s.Links {
		for _, kv := range l.Attributes {
			fmt.Fprintf(&b, "link %s=%s\n", kv.Key, kv.Value.Emit())
		}
	}
	if s.Resource != nil {
		for _, kv := range s.Resource.Attributes() {
			fmt.Fprintf(&b, "resource %s=%s\n", kv.Key, kv.Value.Emit())
		}
	}
	return b.String()
}

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

// recordingCarrier answers from values and records every key asked for.
type recordingCarrier struct {
	values map[string]string
	asked  map[string]bool
}

func (c recordingCarrier) Get(key string) string { c.asked[key] = true; return c.values[key] }
func (recordingCarrier) Set(string, string)      {}
func (recordingCarrier) Keys() []string          { return nil }

// TestTraceHeadersCoverPropagators: every header the tracer's propagators
// read while extracting, on whichever path (nothing, W3C, B3 single, B3
// multiple), is one the RegisterWire server keeps for them.
func TestTraceHeadersCoverPropagators(t *testing.T) {
	tr := newTracer(noop.NewTracerProvider(), func() *capability.KeyRing { return nil })
	asked := map[string]bool{}
	for _, values := range []map[string]string{
		{},
		{"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "tracestate": "a=b"},
		{"b3": "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1-05e3ac9a4f6e3b90"},
		{"x-b3-traceid": "80f198ee56343ba864fe8b2a57d3eff7", "x-b3-spanid": "e457b5a2e4d86bd1", "x-b3-sampled": "1", "x-b3-parentspanid": "05e3ac9a4f6e3b90"},
		{"x-b3-traceid": "80f198ee56343ba864fe8b2a57d3eff7", "x-b3-spanid": "e457b5a2e4d86bd1", "x-b3-flags": "1"},
	} {
		tr.prop.Extract(context.Background(), recordingCarrier{values: values, asked: asked})
	}
	for key := range asked {
		if !slices.Contains(authz.TraceHeaders(), key) {
			t.Errorf("the propagators read %q, which authz.TraceHeaders does not list", key)
		}
	}
	if !asked["traceparent"] || !asked["b3"] {
		t.Fatalf("the propagators asked for %v; the test reaches neither W3C nor B3", asked)
	}
}
