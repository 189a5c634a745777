package authz

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

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
