package e2e

import (
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"
)

// restartExtauthz starts a new extauthz (on a new port) with the stack's
// flags and points the relays at it.
func (s *envoyStack) restartExtauthz() {
	s.t.Helper()
	s.ext = startServe(s.t, s.bin, s.keyFile, s.httpMode, s.serveArgs...)
	target := s.ext.grpc
	if s.httpMode {
		target = s.ext.http
	}
	s.relay.set(target, 0)
	if s.adminRelay != nil {
		s.adminRelay.set(s.ext.admin, 0)
	}
}

// expectFailClosed sends an allowed request and asserts that Envoy refuses
// it with status_on_error's 503 and forwards nothing.
func (s *envoyStack) expectFailClosed(t *testing.T, capa, why string) {
	t.Helper()
	before := s.api.count()
	r := s.get(apiHost, "/api/openrouter/chat", capabilityHdr+": "+capa)
	if r.status != http.StatusServiceUnavailable {
		t.Errorf("%s: status %d %q; want 503", why, r.status, r.body)
	}
	if strings.Contains(r.body, sentinelProv) || strings.Contains(r.body, sentinelUser) {
		t.Errorf("%s: the refusal carries a token", why)
	}
	if s.api.count() != before {
		t.Errorf("%s: the request was forwarded", why)
	}
}

// expectFlowsAgain polls until an allowed request succeeds, without
// restarting Envoy.
func (s *envoyStack) expectFlowsAgain(t *testing.T, capa string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		r := s.get(apiHost, "/api/openrouter/chat", capabilityHdr+": "+capa)
		if r.status == http.StatusOK {
			checkForwarded(t, s.api.last(), sentinelProv)
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("requests did not flow again within 20 s: last status %d %q\n%s", r.status, r.body, s.envoy.Output())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// testFailClosed: extauthz stopped, then slower than the filter's 0.5 s
// timeout, each time the shipped config's 503 and nothing forwarded; then
// extauthz is back and requests flow again with the same Envoy.
func testFailClosed(t *testing.T, opts stackOptions) {
	s := newEnvoyStack(t, opts)
	capa := s.capability()
	s.expectFlowsAgain(t, capa)
	s.expectHealthChecks(t, true)

	s.ext.stop()
	for i := 0; i < 3; i++ {
		s.expectFailClosed(t, capa, "extauthz stopped")
	}

	s.restartExtauthz()
	s.expectFlowsAgain(t, capa)

	target, _ := s.relay.current()
	s.relay.set(target, 700*time.Millisecond)
	for i := 0; i < 3; i++ {
		s.expectFailClosed(t, capa, "extauthz slower than the timeout")
	}

	s.relay.set(target, 0)
	s.expectFlowsAgain(t, capa)
}

func TestEnvoyGRPCFailsClosed(t *testing.T) { testFailClosed(t, stackOptions{}) }

// expectHealthChecks asserts how Envoy's active health checks of the
// extauthz cluster went so far: all passed and the host is healthy, or all
// failed.
func (s *envoyStack) expectHealthChecks(t *testing.T, pass bool) {
	t.Helper()
	success, err1 := s.envoy.Stat("cluster.extauthz.health_check.success")
	failure, err2 := s.envoy.Stat("cluster.extauthz.health_check.failure")
	healthy, err3 := s.envoy.Stat("cluster.extauthz.membership_healthy")
	if err := errors.Join(err1, err2, err3); err != nil {
		t.Fatal(err)
	}
	if pass && (success < 1 || failure != 0 || healthy != 1) {
		t.Errorf("health checks: %d passed, %d failed, %d healthy; want all passed, 1 healthy", success, failure, healthy)
	}
	if !pass && (success != 0 || failure < 1 || healthy != 0) {
		t.Errorf("health checks: %d passed, %d failed, %d healthy; want all failed, 0 healthy", success, failure, healthy)
	}
}
