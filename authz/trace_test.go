package authz

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
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
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"

	"github.com/extauthz/extauthz/authz/internal/checkwire"
	"github.com/extauthz/extauthz/capability"
	"github.com/extauthz/extauthz/internal/testutil/testsupport"
	"github.com/extauthz/extauthz/revocation"
)

// traceFixture is a decision core with every adapter, traced by a tracer
// provider that exports to memory: the gRPC adapter with its Check spans,
// and the HTTP listener (authorization endpoints and the capability API,
// routed as serve routes them) behind TraceHTTP.
type traceFixture struct {
	core *Authorizer
	exp  *tracetest.InMemoryExporter
	tp   trace.TracerProvider
	grpc *GRPCServer
	http http.Handler
	caps capabilities
}

func newTraceFixture(t testing.TB, tp *sdktrace.TracerProvider) *traceFixture {
	t.Helper()
	f := &traceFixture{caps: newCapabilities(t), exp: tracetest.NewInMemoryExporter()}
	if tp == nil {
		tp = sdktrace.NewTracerProvider(sdktrace.WithSyncer(f.exp))
	}
	t.Cleanup(func() { tp.Shutdown(context.Background()) })
	f.tp = tp
	store := revocation.NewMemoryStore()
	var err error
	if f.core, err = NewAuthorizer(Config{Codec: newCodec(t, testClock, testKey), Logger: zerolog.Nop(), Revocations: store.Set()}); err != nil {
		t.Fatal(err)
	}
	if f.grpc, err = NewGRPCServer(f.core, GRPCOptions{TracerProvider: tp}); err != nil {
		t.Fatal(err)
	}
	proxy, err := NewHTTPHandler(f.core, HTTPOptions{})
	if err != nil {
		t.Fatal(err)
	}
	api, err := NewAPIHandler(f.core, APIOptions{Token: testAPIToken, Revocations: store})
	if err != nil {
		t.Fatal(err)
	}
	f.http = TraceHTTP(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if ep, ok := EndpointOf(r); ok && ep.API {
			api.ServeHTTP(w, r)
			return
		}
		proxy.ServeHTTP(w, r)
	}), tp)
	return f
}

// check serves a Check as Register serves it, in process, ctx standing
// for the call's context (its incoming metadata).
func (f *traceFixture) check(t testing.TB, ctx context.Context, req *authv3.CheckRequest) *authv3.CheckResponse {
	t.Helper()
	resp, err := f.grpc.Check(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

// serve runs an HTTP request through the traced listener.
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

// traceCheck is an allowed provider_model Check from container ctr-1 (a
// deny without capability) with headers added to the headers map.
func (f *traceFixture) traceCheck(t testing.TB, allow bool, headers map[string]string) *authv3.CheckRequest {
	req := loadCheckRequest(t, f.caps, "allow_provider_model")
	h := req.Attributes.Request.Http.Headers
	if !allow {
		delete(h, "authorization")
	}
	for k, v := range headers {
		h[k] = v
	}
	return req
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
// fingerprint, all from the decision's observer.
func TestTraceCheck(t *testing.T) {
	f := newTraceFixture(t, nil)
	fp := capability.Fingerprint(testKey)
	allow := map[attribute.Key]string{attrDecision: "allow", attrRouteClass: "provider_model", attrProtocol: "grpc",
		attrContainerID: "ctr-1", attrKeyFingerprint: fp, "rpc.system": "grpc", "rpc.grpc.status_code": "0"}
	deny := map[attribute.Key]string{attrDecision: "deny", attrReason: "missing_capability", attrProtocol: "grpc",
		attrContainerID: "ctr-1", attrKeyFingerprint: fp, "rpc.grpc.status_code": "0"}
	b3Single := testsupport.B3TraceID + "-" + testsupport.B3SpanID + "-1"
	for _, tc := range []struct {
		name            string
		allow           bool
		headers         map[string]string
		headerMap       map[string]string
		md              metadata.MD
		traceID, spanID string
		want            map[attribute.Key]string
	}{
		{name: "w3c allow", allow: true, headers: map[string]string{"traceparent": testsupport.TraceParent}, traceID: testsupport.W3CTraceID, spanID: testsupport.W3CSpanID, want: allow},
		{name: "w3c deny", headers: map[string]string{"traceparent": testsupport.TraceParent}, traceID: testsupport.W3CTraceID, spanID: testsupport.W3CSpanID, want: deny},
		{name: "b3 single", allow: true, headers: map[string]string{"b3": b3Single}, traceID: testsupport.B3TraceID, spanID: testsupport.B3SpanID, want: allow},
		{name: "b3 multi", headers: map[string]string{"x-b3-traceid": testsupport.B3TraceID, "x-b3-spanid": testsupport.B3SpanID, "x-b3-sampled": "1"},
			traceID: testsupport.B3TraceID, spanID: testsupport.B3SpanID, want: deny},
		{name: "header_map", allow: true, headerMap: map[string]string{"Traceparent": testsupport.TraceParent}, traceID: testsupport.W3CTraceID, spanID: testsupport.W3CSpanID, want: allow},
		{name: "request headers win over metadata", allow: true, headers: map[string]string{"traceparent": testsupport.TraceParent},
			md: metadata.Pairs("b3", b3Single), traceID: testsupport.W3CTraceID, spanID: testsupport.W3CSpanID, want: allow},
		{name: "metadata fallback", allow: true, md: metadata.Pairs("traceparent", "00-"+testsupport.B3TraceID+"-"+testsupport.B3SpanID+"-01"),
			traceID: testsupport.B3TraceID, spanID: testsupport.B3SpanID, want: allow},
		{name: "root", allow: true, want: allow},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := f.traceCheck(t, tc.allow, tc.headers)
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
	t.Run("no tracer provider, no span", func(t *testing.T) {
		srv, err := NewGRPCServer(f.core, GRPCOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := srv.Check(context.Background(), f.traceCheck(t, true, map[string]string{"traceparent": testsupport.TraceParent})); err != nil {
			t.Fatal(err)
		}
		if n := len(f.exp.GetSpans()); n != 0 {
			t.Errorf("%d spans without a tracer provider; want none", n)
		}
	})
}

// TestTraceHTTP: forward-auth, Envoy http_service, issue, redeem and
// revoke each get a span named by endpoint, child of a W3C or B3 parent,
// with the decision from the observer (for the API's answers that are
// not decisions, from the answer's status and slug as written); a path
// that decides nothing gets none.
func TestTraceHTTP(t *testing.T) {
	f := newTraceFixture(t, nil)
	fp := capability.Fingerprint(testKey)
	capTok := f.caps["CAP"]
	fwd := func(extra map[string]string) map[string]string {
		h := map[string]string{"Authorization": "Bearer " + capTok, "X-Outbound-Container-Id": "ctr-1",
			"X-Forwarded-Proto": "https", "X-Forwarded-Host": "api.kilo.example", "X-Forwarded-Uri": "/api/x"}
		for k, v := range extra {
			h[k] = v
		}
		return h
	}
	api := map[string]string{"Authorization": "Bearer " + testAPIToken}
	redeem := redeemBody(capTok, "ctr-1", "POST", "https://llm.kilo.example/api/openrouter/v1/chat/completions")
	for _, tc := range []struct {
		name, method, target string
		header               map[string]string
		body                 string
		status               int
		span                 string
		traceID, spanID      string
		want                 map[attribute.Key]string
	}{
		{"forward allow w3c", "GET", ForwardPath, fwd(map[string]string{"Traceparent": testsupport.TraceParent}), "", 200,
			"extauthz forward-auth", testsupport.W3CTraceID, testsupport.W3CSpanID, map[attribute.Key]string{attrDecision: "allow", attrRouteClass: "backend_api",
				attrProtocol: "http-forward", attrContainerID: "ctr-1", attrKeyFingerprint: fp, "http.route": ForwardPath, "http.response.status_code": "200"}},
		{"forward deny b3", "GET", ForwardPath, fwd(map[string]string{"X-Outbound-Container-Id": "ctr-9", "B3": testsupport.B3TraceID + "-" + testsupport.B3SpanID + "-1"}), "", 403,
			"extauthz forward-auth", testsupport.B3TraceID, testsupport.B3SpanID, map[attribute.Key]string{attrDecision: "deny", attrReason: "container_mismatch",
				attrProtocol: "http-forward", attrContainerID: "ctr-9"}},
		{"envoy allow b3 multi", "POST", EnvoyPathPrefix + "/api/openrouter/v1/chat/completions",
			map[string]string{"Authorization": "Bearer " + capTok, "X-Outbound-Container-Id": "ctr-1", "X-Forwarded-Proto": "https", "Host": "llm.kilo.example",
				"X-B3-Traceid": testsupport.B3TraceID, "X-B3-Spanid": testsupport.B3SpanID, "X-B3-Sampled": "1"}, "", 200,
			"extauthz envoy http_service", testsupport.B3TraceID, testsupport.B3SpanID, map[attribute.Key]string{attrDecision: "allow", attrRouteClass: "provider_model",
				attrProtocol: "http-envoy", "http.route": EnvoyPathPrefix + "/*", "url.path": EnvoyPathPrefix + "/*"}},
		{"envoy deny root", "GET", EnvoyPathPrefix + "/x", map[string]string{"X-Forwarded-Proto": "https", "Host": "api.kilo.example"}, "", 401,
			"extauthz envoy http_service", "", "", map[attribute.Key]string{attrDecision: "deny", attrReason: "missing_capability", attrProtocol: "http-envoy"}},
		{"redeem allow", "POST", RedeemPath, map[string]string{"Authorization": "Bearer " + testAPIToken, "Traceparent": testsupport.TraceParent}, redeem, 200,
			"extauthz redeem", testsupport.W3CTraceID, testsupport.W3CSpanID, map[attribute.Key]string{attrDecision: "allow", attrRouteClass: "provider_model", attrProtocol: "api-redeem"}},
		{"redeem deny", "POST", RedeemPath, api, strings.Replace(redeem, "ctr-1", "ctr-3", 1), 403,
			"extauthz redeem", "", "", map[attribute.Key]string{attrDecision: "deny", attrReason: "container_mismatch", attrProtocol: "api-redeem"}},
		{"issue", "POST", IssuePath, api, issueBody(nil), 200,
			"extauthz issue", "", "", map[attribute.Key]string{attrDecision: "allow", attrProtocol: "api-issue"}},
		{"revoke", "POST", RevokePath, map[string]string{"Authorization": "Bearer " + testAPIToken, "Traceparent": testsupport.TraceParent}, `{"userId":"user-9","reason":"offboarded"}`, 200,
			"extauthz revoke", testsupport.W3CTraceID, testsupport.W3CSpanID, map[attribute.Key]string{attrProtocol: "api-revoke", "http.route": RevokePath}},
		{"issue unauthorized", "POST", IssuePath, map[string]string{"Authorization": "Bearer wrong-token-0123456789"}, issueBody(nil), 401,
			"extauthz issue", "", "", map[attribute.Key]string{attrDecision: "deny", attrReason: "unauthorized", attrProtocol: "api-issue"}},
		{"redeem invalid request", "POST", RedeemPath, api, `{}`, 400,
			"extauthz redeem", "", "", map[attribute.Key]string{attrDecision: "deny", attrReason: "invalid_request", attrProtocol: "api-redeem"}},
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
		for _, target := range []string{"/v1/other", RevocationsPath} {
			f.serve("GET", target, map[string]string{"Traceparent": testsupport.TraceParent, "Authorization": "Bearer " + testAPIToken}, "")
			if n := len(f.exp.GetSpans()); n != 0 {
				t.Errorf("%d spans for GET %s; want none", n, target)
			}
		}
	})
}

// TestTraceSecrets plants a capability, the tokens it seals, the admin
// token, the key and query strings in requests to every adapter, allowed
// and denied, in every place a client controls (headers, path, host, user
// agent, X-Forwarded-For), and requires that no exported span (name,
// attributes, events, links, status) contains any of them.
func TestTraceSecrets(t *testing.T) {
	f := newTraceFixture(t, nil)
	const query = "SENTINEL-query-9d2e"
	capTok := f.caps["CAP"]
	secrets := []string{capTok, secretUserToken, secretProviderToken, testAPIToken, query,
		base64.StdEncoding.EncodeToString(testKey), hex.EncodeToString(testKey), "kka1."}

	for _, tok := range []string{capTok, capTok + "x"} {
		req := f.traceCheck(t, true, map[string]string{"traceparent": testsupport.TraceParent, "x-kilo-capability": tok, "authorization": "Bearer " + tok})
		req.Attributes.Request.Http.Path += "?q=" + query
		f.check(t, context.Background(), req)
		req = f.traceCheck(t, true, map[string]string{"authorization": "Bearer " + tok})
		req.Attributes.Request.Http.Path = "/api/x?q=" + query
		f.check(t, metadata.NewIncomingContext(context.Background(), metadata.Pairs("authorization", "Bearer "+tok)), req)

		fwd := map[string]string{"Authorization": "Bearer " + tok, "X-Outbound-Container-Id": "ctr-1", "X-Forwarded-Proto": "https",
			"X-Forwarded-Host": "api.kilo.example", "X-Forwarded-Uri": "/api/x?q=" + query, "Traceparent": testsupport.TraceParent,
			"User-Agent": "agent " + tok, "X-Forwarded-For": tok}
		f.serve("GET", ForwardPath+"?q="+query, fwd, "")
		f.serve("GET", EnvoyPathPrefix+"/api/"+tok+"?q="+query, map[string]string{"X-Kilo-Capability": tok,
			"X-Outbound-Container-Id": "ctr-1", "X-Forwarded-Proto": "https", "Host": "api.kilo.example", "User-Agent": tok}, "")
		f.serve("GET", EnvoyPathPrefix+"/api/x", map[string]string{"X-Kilo-Capability": tok,
			"X-Outbound-Container-Id": tok, "X-Forwarded-Proto": "https", "Host": tok}, "")
		for _, ctr := range []string{"ctr-1", "ctr-2"} {
			f.serve("POST", RedeemPath+"?q="+query, map[string]string{"Authorization": "Bearer " + testAPIToken},
				redeemBody(tok, ctr, "POST", "https://api.kilo.example/api/x?q="+query))
		}
	}
	if w := f.serve("POST", IssuePath+"?q="+query, map[string]string{"Authorization": "Bearer " + testAPIToken}, issueBody(nil)); w.Code != http.StatusOK {
		t.Fatalf("issue = %d %s", w.Code, w.Body)
	} else {
		secrets = append(secrets, strings.TrimSuffix(strings.TrimPrefix(w.Body.String(), `{"capability":"`), `"}`))
	}
	f.serve("POST", IssuePath, map[string]string{"Authorization": "Bearer " + testAPIToken + "x"}, issueBody(nil))

	spans := f.exp.GetSpans()
	if len(spans) != 16 {
		t.Errorf("exported %d spans; want 16", len(spans))
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

// recordingCarrier answers from values and records every key asked for.
type recordingCarrier struct {
	values map[string]string
	asked  map[string]bool
}

func (c recordingCarrier) Get(key string) string { c.asked[key] = true; return c.values[key] }
func (recordingCarrier) Set(string, string)      {}
func (recordingCarrier) Keys() []string          { return nil }

// TestTraceHeadersCoverPropagators: every header the propagator reads
// while extracting, on whichever path (nothing, W3C, B3 single, B3
// multiple), is one the gRPC reader keeps for it (traceHeaders).
func TestTraceHeadersCoverPropagators(t *testing.T) {
	asked := map[string]bool{}
	for _, values := range []map[string]string{
		{},
		{"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "tracestate": "a=b"},
		{"b3": "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1-05e3ac9a4f6e3b90"},
		{"x-b3-traceid": "80f198ee56343ba864fe8b2a57d3eff7", "x-b3-spanid": "e457b5a2e4d86bd1", "x-b3-sampled": "1", "x-b3-parentspanid": "05e3ac9a4f6e3b90"},
		{"x-b3-traceid": "80f198ee56343ba864fe8b2a57d3eff7", "x-b3-spanid": "e457b5a2e4d86bd1", "x-b3-flags": "1"},
	} {
		tracePropagator.Extract(context.Background(), recordingCarrier{values: values, asked: asked})
	}
	for key := range asked {
		if !slices.Contains(traceHeaders, key) {
			t.Errorf("the propagator reads %q, which traceHeaders does not list", key)
		}
	}
	if !asked["traceparent"] || !asked["b3"] {
		t.Fatalf("the propagator asked for %v; the test reaches neither W3C nor B3", asked)
	}
}

// TestTraceParentReadAsAuthzReads: the Check span's parent is read from
// the CheckRequest as authz reads every header of it: a header_map entry
// whose value and raw value differ stands for both, raw value first, so
// its raw value is the parent, as the decoded request's first value is
// (firstHeaderValue). Served through the real gRPC stack, as serve
// registers Check.
func TestTraceParentReadAsAuthzReads(t *testing.T) {
	f := newTraceFixture(t, nil)
	const otherParent = "00-" + testsupport.B3TraceID + "-" + testsupport.B3SpanID + "-01"
	req := f.traceCheck(t, true, nil)
	req.Attributes.Request.Http.HeaderMap = &corev3.HeaderMap{Headers: []*corev3.HeaderValue{
		{Key: "Traceparent", Value: otherParent, RawValue: []byte(testsupport.TraceParent)},
	}}
	if got := firstHeaderValue(req.GetAttributes().GetRequest().GetHttp(), "traceparent"); got != testsupport.TraceParent {
		t.Fatalf("the decoded request's first traceparent = %q; want the raw value %q", got, testsupport.TraceParent)
	}
	gs := grpc.NewServer(ServerOptions()...)
	Register(gs, f.grpc)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go gs.Serve(ln)
	t.Cleanup(gs.Stop)
	conn, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	resp, err := authv3.NewAuthorizationClient(conn).Check(context.Background(), req)
	if err != nil || resp.GetOkResponse() == nil {
		t.Fatalf("Check = %v, %v; want an allow", resp.GetStatus(), err)
	}
	wantParent(t, f.only(t), testsupport.W3CTraceID, testsupport.W3CSpanID)
}

// BenchmarkTraceCheck is the cost of a Check span, on serve's path minus
// the transport (the codec reads the request's encoding, the handler
// decides and encodes the allow): "off" is the adapter without a tracer
// provider (serve without --tracing); "sampled" starts a span, recorded
// and queued to a batch processor whose exporter discards; "unsampled"
// starts one with a parent that says not sampled.
func BenchmarkTraceCheck(b *testing.B) {
	f := newTraceFixture(b, batched(b))
	off, err := NewGRPCServer(f.core, GRPCOptions{})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	codec := checkwire.Codec()
	for _, bc := range []struct {
		name string
		srv  *GRPCServer
		tp   string
	}{{"off", off, testsupport.TraceParent}, {"sampled", f.grpc, testsupport.TraceParent}, {"unsampled", f.grpc, "00-" + testsupport.W3CTraceID + "-" + testsupport.W3CSpanID + "-00"}} {
		enc, err := proto.Marshal(f.traceCheck(b, true, map[string]string{"traceparent": bc.tp}))
		if err != nil {
			b.Fatal(err)
		}
		dec := func(v any) error { return codec.Unmarshal(mem.BufferSlice{mem.SliceBuffer(enc)}, v) }
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if out, err := bc.srv.handleCheck(nil, ctx, dec, nil); err != nil {
					b.Fatalf("Check = %v, %v", out, err)
				} else if _, ok := out.(*checkwire.Call); !ok {
					b.Fatalf("Check = %v; want an allow", out)
				}
			}
		})
	}
}

// BenchmarkTraceForward is the same for an allowed forward-auth request:
// "off" is the handler alone, the others behind TraceHTTP.
func BenchmarkTraceForward(b *testing.B) {
	f := newTraceFixture(b, batched(b))
	plain, err := NewHTTPHandler(f.core, HTTPOptions{})
	if err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct {
		name string
		h    http.Handler
		tp   string
	}{{"off", plain, testsupport.TraceParent}, {"sampled", f.http, testsupport.TraceParent}, {"unsampled", f.http, "00-" + testsupport.W3CTraceID + "-" + testsupport.W3CSpanID + "-00"}} {
		r := httptest.NewRequest(http.MethodGet, ForwardPath, nil)
		for k, v := range map[string]string{"Authorization": "Bearer " + f.caps["CAP"], "X-Outbound-Container-Id": "ctr-1",
			"X-Forwarded-Proto": "https", "X-Forwarded-Host": "api.kilo.example", "X-Forwarded-Uri": "/api/x", "Traceparent": bc.tp} {
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

// batched is the production span pipeline (a batch processor with its
// bounded queue) in front of an exporter that discards.
func batched(b *testing.B) *sdktrace.TracerProvider {
	return sdktrace.NewTracerProvider(sdktrace.WithBatcher(tracetest.NewNoopExporter()))
}
