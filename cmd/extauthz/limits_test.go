package main

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// flood opens n idle TCP connections to addr and returns them.
func flood(t *testing.T, addr string, n int) []net.Conn {
	t.Helper()
	conns := make([]net.Conn, 0, n)
	for i := 0; i < n; i++ {
		c, err := net.DialTimeout("tcp", addr, 2*time.Second)
		if err != nil {
			t.Fatalf("flood %s: connection %d: %v", addr, i, err)
		}
		conns = append(conns, c)
	}
	t.Cleanup(func() {
		for _, c := range conns {
			c.Close()
		}
	})
	return conns
}

// closedWithin reports how many of conns the server closes within d.
func closedWithin(conns []net.Conn, d time.Duration) int {
	var closed atomic.Int32
	var wg sync.WaitGroup
	deadline := time.Now().Add(d)
	for _, c := range conns {
		wg.Go(func() {
			c.SetReadDeadline(deadline)
			var b [1]byte
			if _, err := c.Read(b[:]); err != nil {
				if ne, ok := err.(net.Error); !ok || !ne.Timeout() {
					closed.Add(1)
				}
			}
		})
	}
	wg.Wait()
	return int(closed.Load())
}

// TestServeConnectionFlood runs serve with 1024 file descriptors and floods
// its HTTP listener with 2,000 idle connections, then its admin listener
// with 500: each listener's cap keeps the flood from taking the descriptors
// the others need, so gRPC checks on new connections and /readyz keep
// working; the flood's connections are closed after the header timeout.
func TestServeConnectionFlood(t *testing.T) {
	const (
		fds            = 1024
		httpFlood      = 2000
		adminFlood     = 500
		maxConns       = 300
		adminMaxConns  = 32
		headerTimeout  = 2 * time.Second
		probeTimeout   = 2 * time.Second
		closeSlack     = 1500 * time.Millisecond
		grpcIdle       = time.Second
		httpIdle       = time.Second
		staleIdleProbe = 4 * time.Second
	)
	keyFile := filepath.Join(t.TempDir(), "keys")
	key := newKey(t)
	writeKeys(t, keyFile, key)
	tok := sealFor(t, key)
	// The limits come from the environment (the flags' fallbacks), so that a
	// server without them runs the same test and shows what they prevent.
	wrap := []string{"sh", "-c", fmt.Sprintf(`ulimit -n %d && exec "$@"`, fds), "sh"}
	p := startServeWith(t, wrap, []string{
		fmt.Sprintf("EXTAUTHZ_MAX_CONNECTIONS=%d", maxConns),
		fmt.Sprintf("EXTAUTHZ_ADMIN_MAX_CONNECTIONS=%d", adminMaxConns),
		"EXTAUTHZ_READ_HEADER_TIMEOUT=" + headerTimeout.String(),
		"EXTAUTHZ_IDLE_TIMEOUT=" + httpIdle.String(),
		"EXTAUTHZ_GRPC_MAX_CONNECTION_IDLE=" + grpcIdle.String(),
	}, "--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--http-container-id-header", "x-outbound-container-id", "--admin-addr", "127.0.0.1:0",
		"--key-file", keyFile, "--key-reload-interval", "0")
	grpcAddr, httpAddr, adminAddr := p.addr(t, "grpc"), p.addr(t, "http"), p.addr(t, "admin")
	p.waitLog(t, "ready", msg("ready"))

	checkNewConn := func() (time.Duration, error) {
		start := time.Now()
		c, err := grpc.NewClient(grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			return 0, err
		}
		defer c.Close()
		ctx, cancel := context.WithTimeout(context.Background(), probeTimeout)
		defer cancel()
		resp, err := authv3.NewAuthorizationClient(c).Check(ctx, checkRequest(tok))
		if err == nil && resp.GetOkResponse() == nil {
			err = fmt.Errorf("not an allow: %v", resp.GetStatus())
		}
		return time.Since(start), err
	}
	readyz := func() (time.Duration, error) {
		start := time.Now()
		c := &http.Client{Timeout: probeTimeout, Transport: &http.Transport{DisableKeepAlives: true}}
		resp, err := c.Get("http://" + adminAddr + "/readyz")
		if err != nil {
			return 0, err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return 0, fmt.Errorf("status %d", resp.StatusCode)
		}
		return time.Since(start), nil
	}

	// Idle limits first, on a quiet server. An admin keep-alive connection
	// is closed after --idle-timeout.
	ac, err := net.Dial("tcp", adminAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer ac.Close()
	fmt.Fprintf(ac, "GET /healthz HTTP/1.1\r\nHost: admin\r\n\r\n")
	br := bufio.NewReader(ac)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	ac.SetReadDeadline(time.Now().Add(staleIdleProbe))
	idleStart := time.Now()
	if _, err := br.ReadByte(); err == nil {
		t.Error("admin sent bytes on an idle keep-alive connection")
	} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Errorf("admin keep-alive connection still open after %v idle; want closed after --idle-timeout %v", staleIdleProbe, httpIdle)
	}
	t.Logf("admin keep-alive connection closed after %v idle", time.Since(idleStart).Round(10*time.Millisecond))

	// An idle gRPC connection is closed (GOAWAY) after
	// --grpc-max-connection-idle: the client's channel falls back to IDLE.
	gc, err := grpc.NewClient(grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer gc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), staleIdleProbe)
	if _, err := healthpb.NewHealthClient(gc).Check(ctx, &healthpb.HealthCheckRequest{}); err != nil {
		t.Fatal(err)
	}
	idleStart = time.Now()
	for s := gc.GetState(); s == connectivity.Ready && gc.WaitForStateChange(ctx, s); s = gc.GetState() {
	}
	cancel()
	if s := gc.GetState(); s == connectivity.Ready {
		t.Errorf("gRPC connection still READY after %v idle; want closed after --grpc-max-connection-idle %v", staleIdleProbe, grpcIdle)
	} else {
		t.Logf("idle gRPC connection went %v after %v", s, time.Since(idleStart).Round(10*time.Millisecond))
	}

	// The flood on the HTTP listener.
	start := time.Now()
	httpConns := flood(t, httpAddr, httpFlood)
	opened := time.Since(start)
	checkTook, err := checkNewConn()
	if err != nil {
		t.Fatalf("during a flood of %d connections on the HTTP listener, Check on a new gRPC connection: %v", httpFlood, err)
	}
	readyTook, err := readyz()
	if err != nil {
		t.Fatalf("during a flood of %d connections on the HTTP listener, /readyz: %v", httpFlood, err)
	}
	t.Logf("flood: %d idle connections to the HTTP listener opened in %v (%d fds, cap %d); then a Check on a new gRPC connection took %v, /readyz %v",
		httpFlood, opened.Round(time.Millisecond), fds, maxConns, checkTook.Round(time.Millisecond), readyTook.Round(time.Millisecond))

	// The flood on the admin listener: gRPC keeps answering.
	start = time.Now()
	flood(t, adminAddr, adminFlood)
	opened = time.Since(start)
	if checkTook, err = checkNewConn(); err != nil {
		t.Fatalf("during floods on the HTTP and admin listeners, Check on a new gRPC connection: %v", err)
	}
	t.Logf("flood: %d more idle connections to the admin listener opened in %v (cap %d); a Check on a new gRPC connection took %v",
		adminFlood, opened.Round(time.Millisecond), adminMaxConns, checkTook.Round(time.Millisecond))

	// The accepted part of the HTTP flood is closed after the header
	// timeout (the rest waits in the kernel's backlog, holding no descriptor
	// of the server's).
	wait := time.Until(start.Add(headerTimeout + closeSlack))
	if n := closedWithin(httpConns, wait); n < maxConns {
		t.Errorf("%d of the HTTP flood's connections closed within %v; want at least the %d accepted", n, headerTimeout+closeSlack, maxConns)
	} else {
		t.Logf("flood: %d of %d HTTP connections closed by the server within %v of the flood", n, httpFlood, time.Since(start).Round(10*time.Millisecond))
	}
	if _, err := checkNewConn(); err != nil {
		t.Errorf("after the flood, Check: %v", err)
	}
}
