package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/extauthz/extauthz/internal/testutil/testpki"
)

// The tests here run the binary: what they assert depends on the process
// (its stderr, its exit status, its flags and environment), not only on
// the server package.

// noStoreMessage is what serve and check-config say when the API is on and
// no revocation store is named: each of the three choices.
var noStoreMessage = []string{"--revocation-file", "--revocation-store=redis://", "--revocation-store=memory"}

// TestServeErrorsAreJSON provokes the server errors that net/http and
// grpc-go report themselves (failed TLS handshakes on the gRPC and HTTP
// listeners, a malformed HTTP/1 request, a bogus HTTP/2 preface) and a Check
// larger than the gRPC receive limit. Every line on stderr must be a JSON
// object; the handshake failures and the oversized Check must be among them,
// the Check as a failure with a reason (and counted), and no capability anywhere.
func TestServeErrorsAreJSON(t *testing.T) {
	ca := testpki.NewCA(t, "test CA")
	srv := ca.Issue(testpki.Spec{CommonName: "extauthz", IPs: []net.IP{net.ParseIP("127.0.0.1")}})
	keyFile := filepath.Join(t.TempDir(), "keys")
	key := newKey(t)
	writeKeys(t, keyFile, key)
	tok := sealFor(t, key)
	p := startServe(t, "--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--http-container-id-header", "x-outbound-container-id", "--admin-addr", "127.0.0.1:0",
		"--key-file", keyFile, "--key-reload-interval", "0", "--tls-cert-file", srv.CertFile, "--tls-key-file", srv.KeyFile)
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
	c, err := tls.Dial("tcp", httpAddr, &tls.Config{RootCAs: ca.Pool, NextProtos: []string{"h2"}})
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(c, "PRI * HTTP/2.0\r\n\r\nXX\r\n\r\nAuthorization: Bearer %s\r\n", tok)
	c.SetDeadline(time.Now().Add(3 * time.Second))
	io.Copy(io.Discard, c)
	c.Close()

	// A Check above the 4 MiB receive limit, carrying a capability.
	conn, err := grpc.NewClient(grpcAddr, grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{RootCAs: ca.Pool})))
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
	for _, line := range p.logs.All() {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Errorf("stderr line is not a JSON object: %q", line)
		}
		if strings.Contains(line, "kka1.") || strings.Contains(line, tok[5:25]) {
			t.Errorf("stderr line carries a capability: %.120q", line)
		}
	}
}

// TestServeLogsEveryDecisionBeforeExit: decision lines are buffered, and
// SIGTERM straight after a burst of checks still writes one line for each.
func TestServeLogsEveryDecisionBeforeExit(t *testing.T) {
	keyFile := filepath.Join(t.TempDir(), "keys")
	key := newKey(t)
	writeKeys(t, keyFile, key)
	p := startServe(t, "--grpc-addr", "127.0.0.1:0", "--http-addr", "", "--admin-addr", "", "--key-file", keyFile)
	grpcAddr := p.addr(t, "grpc")
	p.waitLog(t, "ready", msg("ready"))
	conn, err := grpc.NewClient(grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := authv3.NewAuthorizationClient(conn)
	tok := sealFor(t, key)
	const workers, each = 8, 50
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for range each {
				resp, err := client.Check(context.Background(), checkRequest(tok))
				if err != nil || resp.GetOkResponse() == nil {
					t.Errorf("Check = %v, %v; want an allow", resp, err)
					return
				}
			}
		})
	}
	wg.Wait()
	stopServe(t, p) // lines are complete once it has exited
	log := p.log()
	if got := strings.Count(log, `"message":"decision"`); got != workers*each {
		t.Errorf("%d decision lines after SIGTERM; want %d", got, workers*each)
	}
	if !strings.Contains(log, `"message":"stopped"`) {
		t.Errorf("the last line before exit is missing:\n%.2000s", log[max(0, len(log)-2000):])
	}
}

// TestServeAPINeedsRevocationStore: the capability API takes revocations,
// so `serve` with --api-token-file (flag or environment) and no store named
// does not start, and says what to choose; check-config says the same.
// Before, it started and kept revocations in memory without a word.
func TestServeAPINeedsRevocationStore(t *testing.T) {
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "keys")
	writeKeys(t, keyFile, newKey(t))
	tokenFile := writeToken(t)
	listeners := []string{"--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0", "--key-file", keyFile}
	for _, c := range []struct {
		name string
		args []string
		env  []string
	}{
		{"flag", []string{"--api-token-file", tokenFile}, nil},
		{"environment", nil, []string{"EXTAUTHZ_API_TOKEN_FILE=" + tokenFile}},
	} {
		t.Run("serve/"+c.name, func(t *testing.T) {
			cmd := exec.Command(buildBinary(t), append(append([]string{"serve"}, listeners...), c.args...)...)
			cmd.Env = append(append(os.Environ(), "EXTAUTHZ_KEYS=", "EXTAUTHZ_API_TOKEN_FILE=", "EXTAUTHZ_REVOCATION_STORE=", "EXTAUTHZ_REVOCATION_FILE="), c.env...)
			var stderr bytes.Buffer
			cmd.Stderr, cmd.Stdout = &stderr, io.Discard
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			kill := time.AfterFunc(20*time.Second, func() { cmd.Process.Kill() })
			err := cmd.Wait()
			kill.Stop()
			var exit *exec.ExitError
			if !errors.As(err, &exit) || exit.ExitCode() != 2 {
				t.Fatalf("serve with the API and no revocation store: %v; want exit status 2. stderr:\n%s", err, stderr.String())
			}
			for _, want := range noStoreMessage {
				if !strings.Contains(stderr.String(), want) {
					t.Errorf("stderr %q does not name %s", stderr.String(), want)
				}
			}
		})
	}
	t.Run("check-config", func(t *testing.T) {
		t.Setenv("EXTAUTHZ_KEYS", "")
		var out, errb bytes.Buffer
		code := run(append(append([]string{"check-config"}, listeners...), "--api-token-file", tokenFile), strings.NewReader(""), &out, &errb)
		if code != 2 {
			t.Fatalf("check-config with the API and no revocation store = %d, %q; want 2", code, errb.String())
		}
		for _, want := range noStoreMessage {
			if !strings.Contains(errb.String(), want) {
				t.Errorf("stderr %q does not name %s", errb.String(), want)
			}
		}
	})
}
