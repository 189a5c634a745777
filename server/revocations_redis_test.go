package server

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/extauthz/extauthz/authz"
	"github.com/extauthz/extauthz/internal/testutil/testprog"
	"github.com/extauthz/extauthz/internal/testutil/testsupport"
)

// testAdminToken guards the API of the servers the tests start.
const testAdminToken = "admin-token-0123456789abcdef"

// replica is one `extauthz serve` on the shared Redis.
type replica struct {
	p                    *running
	api, admin, grpcAddr string
}

func startReplica(t *testing.T, keyFile, tokenFile, redisURL string) replica {
	t.Helper()
	p := startServer(t, "--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0",
		"--key-file", keyFile, "--api-token-file", tokenFile, "--dev-http-hosts", "localhost",
		"--revocation-store", redisURL, "--revocation-max-staleness", "1s")
	return replica{p: p, api: "http://" + p.addr(t, "http"), admin: "http://" + p.addr(t, "admin"), grpcAddr: p.addr(t, "grpc")}
}

func (r replica) health(t *testing.T) healthpb.HealthCheckResponse_ServingStatus {
	t.Helper()
	conn, err := grpc.NewClient(r.grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	h, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{Service: authz.ServiceName})
	if err != nil {
		t.Fatal(err)
	}
	return h.GetStatus()
}

func (r replica) readyz(t *testing.T) (int, string) {
	t.Helper()
	resp, err := http.Get(r.admin + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func (r replica) redeem(t *testing.T, tok string) (int, string) {
	t.Helper()
	body, _ := json.Marshal(map[string]string{"capability": tok, "outboundContainerId": DevSubject().OutboundContainerID,
		"requestMethod": "POST", "requestUrl": "http://localhost:8080/api/openrouter/v1/chat/completions"})
	return r.call(t, authz.RedeemPath, body)
}

func (r replica) call(t *testing.T, path string, body []byte) (int, string) {
	t.Helper()
	return testsupport.HTTPCall(t, "POST", r.api+path, testAdminToken, body)
}

func waitUntil(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(timeout); !cond(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
	}
}

// TestServeReplicasOnRedis runs three real `extauthz serve` processes on one
// redis-server: a capability revoked through one is denied by all three
// (p50/p99 over EXTAUTHZ_E2E_PROPAGATION_N revocations, 30 by default);
// with Redis killed they go on deciding, then fail closed and report not
// ready after --revocation-max-staleness; a replica started while Redis is
// down is not ready; all recover when Redis is back, without a restart, and
// a revoked capability is never allowed along the way.
func TestServeReplicasOnRedis(t *testing.T) {
	redis := testprog.StartRedis(t)
	keyFile, key := newKeyFile(t)
	tokenFile := testsupport.SecretFile(t, "api-token", testAdminToken+"\n")
	var rs []replica
	for range 3 {
		rs = append(rs, startReplica(t, keyFile, tokenFile, redis.URL()))
	}
	for i, r := range rs {
		waitUntil(t, fmt.Sprintf("replica %d ready", i), 20*time.Second, func() bool { c, _ := r.readyz(t); return c == 200 })
	}
	if _, body := rs[0].readyz(t); !strings.Contains(body, "revocations: 0 entries, staleness") {
		t.Errorf("/readyz details: %q", body)
	}

	n := 30
	if v, err := strconv.Atoi(os.Getenv("EXTAUTHZ_E2E_PROPAGATION_N")); err == nil && v > 0 {
		n = v
	}
	var revoked []string
	var times []time.Duration
	for i := range n {
		tok := sealFor(t, key)
		for _, r := range rs {
			if c, b := r.redeem(t, tok); c != 200 {
				t.Fatalf("fresh capability: %d %s", c, b)
			}
		}
		body, _ := json.Marshal(map[string]string{"capability": tok, "reason": "e2e"})
		start := time.Now()
		if c, b := rs[i%3].call(t, authz.RevokePath, body); c != 200 {
			t.Fatalf("revoke: %d %s", c, b)
		}
		for _, r := range rs {
			for {
				c, b := r.redeem(t, tok)
				if c == 401 && strings.Contains(b, "revoked_capability") {
					break
				}
				if time.Since(start) > 10*time.Second {
					t.Fatalf("revocation %d not enforced after 10 s: %d %s", i, c, b)
				}
			}
		}
		times = append(times, time.Since(start))
		revoked = append(revoked, tok)
	}
	slices.Sort(times)
	t.Logf("end to end, 3 processes, %d revocations: p50 %v, p99 %v, max %v", n, times[n/2], times[n*99/100], times[n-1])

	neverAllowed := func(when string) {
		t.Helper()
		for _, r := range rs {
			for _, tok := range revoked[:min(5, len(revoked))] {
				if c, b := r.redeem(t, tok); c == 200 {
					t.Fatalf("%s: a revoked capability was allowed: %s", when, b)
				}
			}
		}
	}
	fresh := sealFor(t, key)

	redis.Kill()
	neverAllowed("Redis just killed")
	if c, _ := rs[1].redeem(t, fresh); c != 200 {
		t.Errorf("Redis just killed: a valid capability got %d; want 200 (decide with the last set)", c)
	}
	late := startReplica(t, keyFile, tokenFile, redis.URL())
	waitUntil(t, "fail closed after --revocation-max-staleness", 20*time.Second, func() bool {
		for _, r := range rs {
			if c, _ := r.readyz(t); c != 503 {
				return false
			}
			if c, b := r.redeem(t, fresh); c != 503 || !strings.Contains(b, "revocation_unavailable") {
				return false
			}
		}
		return true
	})
	neverAllowed("Redis down")
	// Each change of the store's state is logged once, when it happens: one
	// "unreachable" per replica for the whole outage, and no "reachable"
	// while Redis is down.
	for i, r := range rs {
		logs := r.p.logs.String()
		down := strings.Count(logs, `"message":"revocation store unreachable`)
		up := strings.LastIndex(logs, `"message":"revocation store reachable`)
		if down != 1 || up > strings.Index(logs, `"message":"revocation store unreachable`) {
			t.Errorf("replica %d during the outage: %d unreachable lines, a reachable line after the first: %v; want exactly 1 and no", i, down, up > strings.Index(logs, `"message":"revocation store unreachable`))
		}
	}
	if c, body := late.readyz(t); c != 503 || !strings.Contains(body, "never loaded") {
		t.Errorf("replica started with Redis down: /readyz %d %q; want 503, never loaded", c, body)
	}
	if st := late.health(t); st != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Errorf("replica started with Redis down: gRPC health %v; want NOT_SERVING", st)
	}
	if m := httpBody(t, late.admin+"/metrics"); !strings.Contains(m, "\nextauthz_ready 0\n") || !strings.Contains(m, "extauthz_revocation_staleness_seconds") {
		t.Errorf("replica started with Redis down: metrics lack extauthz_ready 0 or the staleness gauge")
	}

	redis.Start(t)
	for i, r := range append(rs, late) {
		waitUntil(t, fmt.Sprintf("replica %d ready again", i), 30*time.Second, func() bool { c, _ := r.readyz(t); return c == 200 })
		if c, b := r.redeem(t, fresh); c != 200 {
			t.Errorf("replica %d after recovery: %d %s", i, c, b)
		}
	}
	rs = append(rs, late)
	waitUntil(t, "gRPC health SERVING after recovery", 5*time.Second, func() bool {
		return late.health(t) == healthpb.HealthCheckResponse_SERVING
	})
	neverAllowed("after recovery")
	for _, r := range rs {
		if strings.Contains(r.p.logs.String(), revoked[0][5:30]) {
			t.Errorf("a log quotes a capability")
		}
	}
}
