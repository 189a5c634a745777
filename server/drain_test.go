package server

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"sigs.k8s.io/yaml"
)

// TestServeDrain: on SIGTERM the server reports NOT_SERVING (gRPC health,
// both services) and /readyz 503 at once, but keeps answering checks, also
// on new connections, for --drain-delay; then it stops, bounded by
// --shutdown-timeout even while a client holds a stream open.
func TestServeDrain(t *testing.T) {
	const drainDelay, shutdownTimeout = 2 * time.Second, 2 * time.Second
	keyFile, key := newKeyFile(t)
	tok := sealFor(t, key)
	p := startServer(t, "--drain-delay", drainDelay.String(),
		"--grpc-addr", "127.0.0.1:0", "--http-addr", "", "--admin-addr", "127.0.0.1:0",
		"--key-file", keyFile, "--shutdown-timeout", shutdownTimeout.String())
	grpcAddr, adminAddr := p.addr(t, "grpc"), p.addr(t, "admin")
	p.waitLog(t, "ready", msg("ready"))

	conn, err := grpc.NewClient(grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	health := healthpb.NewHealthClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// A Watch stream never ends by itself: graceful stop must give up on it
	// after --shutdown-timeout.
	watch, err := health.Watch(ctx, &healthpb.HealthCheckRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if m, err := watch.Recv(); err != nil || m.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("Watch = %v, %v; want SERVING", m.GetStatus(), err)
	}
	watched := make(chan healthpb.HealthCheckResponse_ServingStatus, 4)
	go func() {
		for {
			m, err := watch.Recv()
			if err != nil {
				close(watched)
				return
			}
			watched <- m.GetStatus()
		}
	}()

	// checkNewConn dials a fresh connection, as an Envoy that has not yet
	// seen the health change would, and asks for a decision.
	checkNewConn := func() error {
		c, err := grpc.NewClient(grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			return err
		}
		defer c.Close()
		cctx, ccancel := context.WithTimeout(ctx, time.Second)
		defer ccancel()
		resp, err := authv3.NewAuthorizationClient(c).Check(cctx, checkRequest(tok))
		if err == nil && resp.GetOkResponse() == nil {
			t.Errorf("Check during the drain = %v; want an allow", resp.GetStatus())
		}
		return err
	}
	readyz := func() int {
		c := &http.Client{Timeout: time.Second}
		resp, err := c.Get("http://" + adminAddr + "/readyz")
		if err != nil {
			return -1
		}
		resp.Body.Close()
		return resp.StatusCode
	}

	start := time.Now()
	p.stop() // SIGTERM
	select {
	case st := <-watched:
		if st != healthpb.HealthCheckResponse_NOT_SERVING {
			t.Errorf("Watch after SIGTERM = %v; want NOT_SERVING", st)
		}
	case <-time.After(time.Second):
		t.Error("Watch saw no NOT_SERVING within 1 s of SIGTERM")
	}

	// During the drain delay (with a margin for scheduling): health says
	// NOT_SERVING, /readyz 503, and checks on new connections still succeed.
	checks, polls := 0, 0
	for time.Since(start) < drainDelay-500*time.Millisecond {
		for _, svc := range []string{"", authv3.Authorization_ServiceDesc.ServiceName} {
			hctx, hcancel := context.WithTimeout(ctx, time.Second)
			h, err := health.Check(hctx, &healthpb.HealthCheckRequest{Service: svc})
			hcancel()
			if err != nil || h.GetStatus() != healthpb.HealthCheckResponse_NOT_SERVING {
				t.Fatalf("%.1fs into the drain: health(%q) = %v, %v; want NOT_SERVING", time.Since(start).Seconds(), svc, h.GetStatus(), err)
			}
		}
		if code := readyz(); code != http.StatusServiceUnavailable {
			t.Fatalf("%.1fs into the drain: /readyz = %d; want 503", time.Since(start).Seconds(), code)
		}
		if err := checkNewConn(); err != nil {
			t.Fatalf("%.1fs into the drain: Check on a new connection: %v", time.Since(start).Seconds(), err)
		}
		checks++
		polls++
		time.Sleep(100 * time.Millisecond)
	}
	if checks < 3 {
		t.Fatalf("only %d checks during the drain delay", checks)
	}

	select {
	case err := <-p.done:
		p.done <- err // for the cleanup
		took := time.Since(start)
		if err != nil {
			t.Errorf("serve exited with %v; want 0", err)
		}
		if took < drainDelay || took > drainDelay+shutdownTimeout+1500*time.Millisecond {
			t.Errorf("serve exited %v after SIGTERM; want between %v and %v", took, drainDelay, drainDelay+shutdownTimeout)
		}
		t.Logf("drain: %d health polls NOT_SERVING, %d checks on new connections allowed, exit %v after SIGTERM (delay %v, timeout %v, a Watch stream held open)",
			polls, checks, took.Round(10*time.Millisecond), drainDelay, shutdownTimeout)
	case <-time.After(drainDelay + shutdownTimeout + 5*time.Second):
		t.Fatalf("serve still running %v after SIGTERM", time.Since(start))
	}
	p.waitLog(t, "drain logged", func(m map[string]any) bool {
		return m["message"] == "draining" && m["drain_delay"] != nil
	})
}

// TestDefaultDrainDelay: the default drain delay outlasts the health
// checking of every shipped Envoy config (interval × unhealthy_threshold,
// plus the check's timeout), so Envoy has marked a draining instance
// unhealthy before its listeners close.
func TestDefaultDrainDelay(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("..", "deploy", "envoy", "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no Envoy configs: %v", err)
	}
	seen := 0
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var doc map[string]any
		if err := yaml.Unmarshal(b, &doc); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		static, _ := doc["static_resources"].(map[string]any) // traefik.yaml: none
		clusters, _ := static["clusters"].([]any)
		for _, c := range clusters {
			c, _ := c.(map[string]any)
			hcs, _ := c["health_checks"].([]any)
			for _, hc := range hcs {
				hc, _ := hc.(map[string]any)
				interval, err1 := time.ParseDuration(fmt.Sprint(hc["interval"]))
				timeout, err2 := time.ParseDuration(fmt.Sprint(hc["timeout"]))
				threshold, ok := hc["unhealthy_threshold"].(float64)
				if err1 != nil || err2 != nil || !ok {
					t.Fatalf("%s: cluster %v: cannot read the health check %v", f, c["name"], hc)
				}
				need := time.Duration(threshold)*interval + timeout
				if defaultDrainDelay <= need {
					t.Errorf("%s: cluster %v marks a host unhealthy after up to %v; the default drain delay %v is not longer", f, c["name"], need, defaultDrainDelay)
				}
				seen++
			}
		}
	}
	if seen == 0 {
		t.Fatal("no health check found in the shipped Envoy configs")
	}
}
