package e2e

import (
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	collectorpb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/extauthz/extauthz/internal/testutil/envoyproc"
)

// TestEnvoyGRPCHeaderForms runs the shipped envoy.yaml with ext_authz's
// encode_raw_headers on (as shipped: every header line its own header_map
// entry, the bytes in raw_value) and off (the headers map, a repeated
// header comma-joined into one value). extauthz reads a CheckRequest's
// headers by one rule whichever field carries them, so each request is
// decided the same in both forms: a repeated capability that agrees is
// allowed, one that disagrees is invalid_capability. With --tracing, the
// request's traceparent, read from the same field by the same rule, is
// the parent of the Check span.
func TestEnvoyGRPCHeaderForms(t *testing.T) {
	for _, raw := range []bool{true, false} {
		t.Run(fmt.Sprintf("encode_raw_headers=%v", raw), func(t *testing.T) {
			spans := newSpanReceiver(t)
			for k, v := range map[string]string{
				"OTEL_EXPORTER_OTLP_ENDPOINT": spans.url, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "",
				"OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "",
				"OTEL_EXPORTER_OTLP_INSECURE": "true", "OTEL_TRACES_SAMPLER": "parentbased_always_on",
				"OTEL_BSP_SCHEDULE_DELAY": "50",
			} {
				t.Setenv(k, v) // cleanEnv passes them to extauthz
			}
			s := newEnvoyStack(t, stackOptions{serveArgs: []string{"--tracing"}, edit: func(cfg *envoyproc.Config) error {
				if n := cfg.SetHTTPFilterOption("envoy.filters.http.ext_authz", "encode_raw_headers", raw); n != 1 {
					return fmt.Errorf("set encode_raw_headers on %d ext_authz filters; want 1", n)
				}
				return nil
			}})
			dump, err := s.envoy.Admin("/config_dump")
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.Contains(dump, `"encode_raw_headers": true`); got != raw {
				t.Fatalf("Envoy runs with encode_raw_headers %v; want %v", got, raw)
			}
			runHeaderForms(t, s)

			traceID, spanID := randomHex(t, 16), randomHex(t, 8)
			r := s.get(apiHost, "/api/profile", capabilityHdr+": "+s.capability(), "traceparent: 00-"+traceID+"-"+spanID+"-01")
			if r.status != http.StatusOK {
				t.Fatalf("status %d %s; want 200", r.status, r.body)
			}
			if parent := spans.parentOf(t, traceID); parent != spanID {
				t.Errorf("the Check span of trace %s has parent %q; want the request's %s", traceID, parent, spanID)
			}
		})
	}
}

// runHeaderForms sends requests whose capability headers repeat, agree
// and disagree, and checks the answer, the decision and what the upstream
// received.
func runHeaderForms(t *testing.T, s *envoyStack) {
	capa, other := s.capability(), s.seal(subjectFor("another-container", shippedTargets))
	hc := capabilityHdr + ": "
	for _, c := range []struct {
		name    string
		headers []string
		reason  string // "" for an allow
	}{
		{"dedicated header", []string{hc + capa}, ""},
		{"bearer", []string{"Authorization: Bearer " + capa}, ""},
		{"dedicated header twice, same", []string{hc + capa, hc + capa}, ""},
		{"dedicated header twice, different", []string{hc + capa, hc + other}, "invalid_capability"},
		{"two capabilities in one line", []string{hc + capa + ", " + other}, "invalid_capability"},
		{"both headers, same", []string{hc + capa, "Authorization: Bearer " + capa}, ""},
		{"both headers, different", []string{hc + capa, "Authorization: Bearer " + other}, "invalid_capability"},
		{"authorization twice, one not a capability", []string{"Authorization: Bearer " + capa, "Authorization: Bearer sk-other"}, ""},
		{"authorization twice, two capabilities", []string{"Authorization: Bearer " + capa, "Authorization: Bearer " + other}, "invalid_capability"},
		{"name in upper case", []string{"X-KILO-CAPABILITY: " + capa}, ""},
		{"other container's, twice", []string{hc + other, hc + other}, "container_mismatch"},
	} {
		t.Run(c.name, func(t *testing.T) {
			n, before := len(s.ext.decisions()), s.api.count()
			r := s.get(apiHost, "/api/profile", c.headers...)
			d, ok := s.ext.decisionAfter(n)
			if !ok {
				t.Fatalf("no decision (Envoy %d %q)", r.status, r.body)
			}
			if c.reason == "" {
				if r.status != http.StatusOK || d.Decision != "allow" || s.api.count() != before+1 {
					t.Fatalf("Envoy %d %q, decision %+v; want an allow that reaches the upstream", r.status, r.body, d)
				}
				checkForwarded(t, s.api.last(), sentinelUser)
				return
			}
			if d.Decision != "deny" || d.Reason != c.reason || !strings.Contains(r.body, `"`+c.reason+`"`) {
				t.Errorf("Envoy %d %q, decision %+v; want deny %s", r.status, r.body, d, c.reason)
			}
			if s.api.count() != before {
				t.Error("a denied request reached the upstream")
			}
		})
	}
}

// spanReceiver is an OTLP/HTTP trace receiver (POST /v1/traces, binary
// protobuf) that keeps every span's trace id and parent span id.
type spanReceiver struct {
	url     string
	mu      sync.Mutex
	parents map[string]string // trace id → parent span id, both hex
}

func newSpanReceiver(t *testing.T) *spanReceiver {
	t.Helper()
	rc := &spanReceiver{parents: map[string]string{}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req collectorpb.ExportTraceServiceRequest
		body, err := io.ReadAll(r.Body)
		if err != nil || r.URL.Path != "/v1/traces" || proto.Unmarshal(body, &req) != nil {
			http.Error(w, "not an OTLP trace export", http.StatusBadRequest)
			return
		}
		rc.mu.Lock()
		for _, rs := range req.GetResourceSpans() {
			for _, ss := range rs.GetScopeSpans() {
				for _, sp := range ss.GetSpans() {
					rc.parents[hex.EncodeToString(sp.GetTraceId())] = hex.EncodeToString(sp.GetParentSpanId())
				}
			}
		}
		rc.mu.Unlock()
		w.Header().Set("Content-Type", "application/x-protobuf")
		out, _ := proto.Marshal(&collectorpb.ExportTraceServiceResponse{})
		_, _ = w.Write(out)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	rc.url = "http://" + ln.Addr().String()
	return rc
}

// parentOf waits for a span of trace traceID and returns its parent span
// id ("" for none, or when no span arrives in time).
func (rc *spanReceiver) parentOf(t *testing.T, traceID string) string {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		rc.mu.Lock()
		p, ok := rc.parents[traceID]
		rc.mu.Unlock()
		if ok {
			return p
		}
	}
	t.Errorf("no span of trace %s arrived", traceID)
	return ""
}

// randomHex is n random bytes in hex.
func randomHex(t *testing.T, n int) string {
	t.Helper()
	return hex.EncodeToString([]byte(randomBody(n)))
}
