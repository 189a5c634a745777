package authz

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"google.golang.org/protobuf/encoding/protojson"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"

	"github.com/extauthz/extauthz/internal/testutil/testsupport"
)

// TestLogsNeverCarrySecrets runs every fixture through servers that log at
// debug level and checks each line: one per decision, parseable, with the
// decision facts, and never a token, capability or key.
func TestLogsNeverCarrySecrets(t *testing.T) {
	caps := newCapabilities(t)
	var log testsupport.LockedBuffer
	checkCases := loadCheckCases(t)
	for _, tc := range checkCases {
		srv := newTestServer(t, serverSetup{identity: tc.identity, log: &log})
		resp, err := srv.Check(context.Background(), loadCheckRequest(t, caps, tc.fixture))
		if err != nil {
			t.Fatal(err)
		}
		if tc.reason != ReasonNone {
			js, _ := protojson.Marshal(resp)
			assertNoSecrets(t, tc.fixture+" response", string(js), caps)
		}
	}
	out := log.String()
	assertNoSecrets(t, "log output", out, caps)
	if strings.Contains(out, "stream=true") {
		t.Error("log output contains a query string")
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != len(checkCases) {
		t.Fatalf("got %d log lines for %d decisions", len(lines), len(checkCases))
	}
	for i, line := range lines {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("line %d is not JSON: %v", i, err)
		}
		for _, k := range []string{"decision", "method", "host", "path", "duration", "protocol"} {
			if _, ok := m[k]; !ok {
				t.Errorf("%s: log line lacks %q: %s", checkCases[i].fixture, k, line)
			}
		}
		wantDecision := "allow"
		if checkCases[i].reason != ReasonNone {
			wantDecision = "deny"
			if m["reason"] != string(checkCases[i].reason) {
				t.Errorf("%s: reason = %v; want %s", checkCases[i].fixture, m["reason"], checkCases[i].reason)
			}
		}
		if m["decision"] != wantDecision {
			t.Errorf("%s: decision = %v; want %s", checkCases[i].fixture, m["decision"], wantDecision)
		}
	}
}

// TestLogsCarryNoCapabilityFromTheURL: a capability placed in the path,
// the authority or the method is not logged, and attacker-sized values are
// bounded in the decision line.
func TestLogsCarryNoCapabilityFromTheURL(t *testing.T) {
	caps := newCapabilities(t)
	var log testsupport.LockedBuffer
	srv := newTestServer(t, serverSetup{log: &log})
	cp := caps["CAP"]
	long := strings.Repeat("a", 20000)
	for _, h := range []*authv3.AttributeContext_HttpRequest{
		{Method: "GET", Scheme: "https", Host: "api.kilo.example", Path: "/api/x/" + cp},
		{Method: "GET", Scheme: "https", Host: "api.kilo.example", Path: "/" + strings.Repeat("x", 200) + cp},
		{Method: "GET", Scheme: "https", Host: cp, Path: "/api/x"},
		{Method: cp, Scheme: "https", Host: "api.kilo.example", Path: "/api/x"},
		{Method: long, Scheme: "https", Host: long + ".example", Path: "/api/x"},
	} {
		h.Headers = map[string]string{"authorization": "Bearer " + cp}
		if _, err := srv.Check(context.Background(), checkRequestFrom(h)); err != nil {
			t.Fatal(err)
		}
	}
	hh := newHTTPTestHandler(t, httpSetup{log: &log})
	doHTTP(t, hh, caps, fwd(set("X-Forwarded-Method", "${CAP}")))
	doHTTP(t, hh, caps, fwd(set("X-Forwarded-Uri", "/api/${CAP}")))
	doHTTP(t, hh, caps, fwd(set("X-Forwarded-Host", "${CAP}")))
	assertNoSecrets(t, "log", log.String(), caps)
	for line := range strings.Lines(log.String()) {
		if len(line) > 2048 {
			t.Errorf("log line of %d bytes: attacker-sized values are not bounded", len(line))
		}
	}
}

// TestLogAllows: every deny gets its decision line whatever
// Config.LogAllows says; allows get one each (all), one in
// AllowSampleRate counted from the first, marked with the allows it
// stands for (sampled), or none. The metrics count every decision.
func TestLogAllows(t *testing.T) {
	caps := newCapabilities(t)
	const allows, denies = 1000, 7
	for _, tc := range []struct {
		mode       LogAllows
		allowLines int
	}{
		{LogAllowsAll, allows},
		{LogAllowsSampled, allows / AllowSampleRate},
		{LogAllowsNone, 0},
	} {
		t.Run(tc.mode.String(), func(t *testing.T) {
			var log testsupport.LockedBuffer
			reg := prometheus.NewRegistry()
			metrics, err := NewMetrics(reg)
			if err != nil {
				t.Fatal(err)
			}
			core, err := NewAuthorizer(Config{Codec: newCodec(t, testClock, testKey), Logger: zerolog.New(&log).Level(zerolog.InfoLevel),
				Metrics: metrics, LogAllows: tc.mode})
			if err != nil {
				t.Fatal(err)
			}
			srv, err := NewGRPCServer(core, GRPCOptions{})
			if err != nil {
				t.Fatal(err)
			}
			allow, deny := loadCheckRequest(t, caps, "allow_provider_model"), loadCheckRequest(t, caps, "deny_container_mismatch")
			for i := range allows {
				if resp, err := srv.Check(context.Background(), allow); err != nil || resp.GetOkResponse() == nil {
					t.Fatalf("allow %d: %v, %v", i, resp.GetStatus(), err)
				}
				if i%(allows/denies) == 0 && i/(allows/denies) < denies {
					if resp, err := srv.Check(context.Background(), deny); err != nil || resp.GetDeniedResponse() == nil {
						t.Fatalf("deny: %v, %v", resp.GetStatus(), err)
					}
				}
			}
			got := map[string]int{}
			for i, line := range strings.Split(strings.TrimSpace(log.String()), "\n") {
				var m map[string]any
				if err := json.Unmarshal([]byte(line), &m); err != nil {
					t.Fatalf("line %d is not JSON: %v", i, err)
				}
				got[m["decision"].(string)]++
				// "sample" is on a sampled allow's line, and only there.
				want := any(nil)
				if m["decision"] == "allow" && tc.mode == LogAllowsSampled {
					want = float64(AllowSampleRate)
				}
				if m["sample"] != want {
					got["wrong sample"]++
				}
				if i == 0 && tc.allowLines > 0 && m["decision"] != "allow" {
					t.Errorf("the first line is a %v; the first allow is always logged", m["decision"])
				}
			}
			if got["allow"] != tc.allowLines || got["deny"] != denies {
				t.Errorf("%d allow and %d deny lines; want %d and %d", got["allow"], got["deny"], tc.allowLines, denies)
			}
			if got["wrong sample"] > 0 {
				t.Errorf("%d lines with a wrong or missing \"sample\"; want it on each sampled allow line (%d), on no other", got["wrong sample"], AllowSampleRate)
			}
			if n := countAllows(t, reg); n != allows {
				t.Errorf("allows counted: %v; want %d", n, allows)
			}
		})
	}
}

// TestParseLogAllows: the three names, and nothing else.
func TestParseLogAllows(t *testing.T) {
	for _, mode := range []LogAllows{LogAllowsAll, LogAllowsSampled, LogAllowsNone} {
		if got, err := ParseLogAllows(mode.String()); err != nil || got != mode {
			t.Errorf("ParseLogAllows(%q) = %v, %v; want %v", mode.String(), got, err, mode)
		}
	}
	for _, bad := range []string{"", "All", "some", "1/100"} {
		if _, err := ParseLogAllows(bad); err == nil {
			t.Errorf("ParseLogAllows(%q) accepted", bad)
		}
	}
	if _, err := NewAuthorizer(Config{Codec: newCodec(t, testClock, testKey), LogAllows: LogAllowsNone + 1}); err == nil {
		t.Error("NewAuthorizer accepted an unknown LogAllows")
	}
}

// countAllows is the sum of extauthz_decisions_total{result="allow"}.
func countAllows(t *testing.T, reg *prometheus.Registry) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	n := 0.0
	for _, mf := range mfs {
		if mf.GetName() != "extauthz_decisions_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "result" && l.GetValue() == "allow" {
					n += m.GetCounter().GetValue()
				}
			}
		}
	}
	return n
}
