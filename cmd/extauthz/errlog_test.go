package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"
)

// TestServeErrorsAreJSON provokes the server errors that net/http and
// grpc-go report themselves (failed TLS handshakes on the gRPC and HTTP
// listeners, a malformed HTTP/1 request, a bogus HTTP/2 preface) and a Check
// larger than the gRPC receive limit. Every line on stderr must be a JSON
// object; the handshake failures and the oversized Check must be among them,
// the Check as a failure with a reason (and counted), and no capability anywhere.
func TestServeErrorsAreJSON(t *testing.T) {
	pki := newTestPKI(t)
	keyFile := filepath.Join(t.TempDir(), "keys")
	key := newKey(t)
	writeKeys(t, keyFile, key)
	tok := sealFor(t, key)
	p := startServe(t, "--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--http-container-id-header", "x-outbound-container-id", "--admin-addr", "127.0.0.1:0",
		"--key-file", keyFile, "--key-reload-interval", "0", "--tls-cert-file", pki.certFile, "--tls-key-file", pki.keyFile)
	grpcAddr, httpAddr, adminAddr := p.addr(t, "grpc"), p.addr(t, "http"), p.addr(t, "admin")
	p.waitLog(t, "ready", msg("ready"))

	send := func(addr, data string) {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(3 * time.Second))
		io.WriteString(c, data)
		io.Copy(io.Discard, c)
	}
	// Plain HTTP to the TLS listeners: failed handshakes.
	send(httpAddr, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	send(grpcAddr, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	// A client that does not trust the server aborts the handshake.
	for _, addr := range []string{httpAddr, grpcAddr} {
		if c, err := tls.Dial("tcp", addr, &tls.Config{NextProtos: []string{"h2"}}); err == nil {
			c.Close()
			t.Fatalf("TLS to %s without the CA succeeded", addr)
		}
	}
	// A malformed HTTP/1 request on the admin listener, and an HTTP/2
	// connection whose preface is not one on the HTTP listener.
	send(adminAddr, "GET / HTTP/1.1\r\nHost: x\r\nbad header line\r\n\r\n")
	c, err := tls.Dial("tcp", httpAddr, &tls.Config{RootCAs: pki.pool, NextProtos: []string{"h2"}})
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(c, "PRI * HTTP/2.0\r\n\r\nXX\r\n\r\nAuthorization: Bearer %s\r\n", tok)
	c.SetDeadline(time.Now().Add(3 * time.Second))
	io.Copy(io.Discard, c)
	c.Close()

	// A Check above the 4 MiB receive limit, carrying a capability.
	conn, err := grpc.NewClient(grpcAddr, grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{RootCAs: pki.pool})))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	req := checkRequest(tok)
	req.Attributes.Request.Http.Headers["x-padding"] = strings.Repeat("a", 5<<20)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err = authv3.NewAuthorizationClient(conn).Check(ctx, req)
	if status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("oversized Check = %v; want ResourceExhausted", err)
	}
	p.waitLog(t, "the oversized Check logged", func(m map[string]any) bool {
		return m["message"] == "check failed" && m["reason"] == "request_too_large" && m["grpc_code"] == "ResourceExhausted"
	})
	metrics := httpBody(t, "http://"+adminAddr+"/metrics")
	if want := `extauthz_grpc_requests_total{code="ResourceExhausted",method="/envoy.service.auth.v3.Authorization/Check"} 1`; !strings.Contains(metrics, want) {
		t.Errorf("/metrics lacks %s", want)
	}

	p.waitLog(t, "the HTTP listener's handshake failure, as JSON", func(m map[string]any) bool {
		s, _ := m["message"].(string)
		return m["listener"] == "http" && strings.Contains(s, "TLS handshake error")
	})
	p.waitLog(t, "the gRPC listener's handshake failure, as JSON", func(m map[string]any) bool {
		s, _ := m["message"].(string)
		return m["component"] == "grpc" && m["level"] == "warn" && strings.Contains(s, "ServerTransport")
	})
	p.waitLog(t, "the bogus HTTP/2 preface, as JSON", func(m map[string]any) bool {
		s, _ := m["message"].(string)
		return m["listener"] == "http" && strings.Contains(s, "preface")
	})

	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not stop")
	}
	p.mu.Lock()
	lines := append([]string(nil), p.lines...)
	p.mu.Unlock()
	for _, line := range lines {
		if line == "<exit>" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Errorf("stderr line is not a JSON object: %q", line)
		}
		if strings.Contains(line, "kka1.") || strings.Contains(line, tok[5:25]) {
			t.Errorf("stderr line carries a capability: %.120q", line)
		}
	}
}

// TestRedact: what a library quotes from a client (a bogus preface, a
// header) loses anything shaped like a capability or a bearer value.
func TestRedact(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{`bogus greeting "kka1.AAAA:BBBB\r\n"`, `bogus greeting "[redacted]\r\n"`},
		{`authorization: Bearer secret-token-1 next`, `authorization: [redacted] next`},
		{"BEARER\tx", "[redacted]"},
		{`http: TLS handshake error from 127.0.0.1:5: EOF`, `http: TLS handshake error from 127.0.0.1:5: EOF`},
	} {
		if got := redact(tc.in); got != tc.want {
			t.Errorf("redact(%q) = %q; want %q", tc.in, got, tc.want)
		}
	}
}
