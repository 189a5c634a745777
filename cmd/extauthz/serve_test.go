package main

import (
	"context"
	"encoding/base64"
	"io"
	"net/http"
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
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/extauthz/extauthz/capability"
	testproc "github.com/extauthz/extauthz/internal/testutil/proc"
	"github.com/extauthz/extauthz/internal/testutil/testsupport"
	"github.com/extauthz/extauthz/server"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// buildBinary builds the extauthz binary once per test run.
func buildBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "extauthz-bin-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "extauthz")
		out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			buildErr = &buildError{err, out}
		}
	})
	if buildErr != nil {
		t.Fatalf("go build: %v", buildErr)
	}
	return binPath
}

type buildError struct {
	err error
	out []byte
}

func (e *buildError) Error() string { return e.err.Error() + "\n" + string(e.out) }

func TestMain(m *testing.M) {
	code := m.Run()
	if binPath != "" {
		os.RemoveAll(filepath.Dir(binPath))
	}
	os.Exit(code)
}

func newKey(t *testing.T) []byte { return testsupport.NewKey(t) }

func writeKeys(t testing.TB, path string, keys ...[]byte) { testsupport.WriteKeys(t, path, keys...) }

func devSubject() capability.Subject { return server.DevSubject() }

// proc is a running `extauthz serve` whose JSON log lines are collected.
type proc struct {
	cmd  *exec.Cmd
	logs testproc.Lines
	done chan error
}

func startServe(t *testing.T, args ...string) *proc {
	t.Helper()
	return startServeWith(t, nil, nil, args...)
}

// startServeWith is startServe with more environment variables, the binary
// run under wrap (a command and its arguments, such as a shell that lowers
// a limit first) when wrap is not empty.
func startServeWith(t *testing.T, wrap, env []string, args ...string) *proc {
	t.Helper()
	argv := append(append(append([]string{}, wrap...), buildBinary(t), "serve"), args...)
	cmd := exec.Command(argv[0], argv[1:]...)
	// No drain delay unless a test asks for one: tests stop servers at once.
	cmd.Env = append(append(os.Environ(), "EXTAUTHZ_KEYS=", "EXTAUTHZ_DRAIN_DELAY=0"), env...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout = io.Discard
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{cmd: cmd, done: make(chan error, 1)}
	go func() {
		io.Copy(&p.logs, stderr)
		p.done <- cmd.Wait()
		p.logs.End("exit")
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
	})
	return p
}

// waitLog waits until a log line satisfies match and returns it parsed.
func (p *proc) waitLog(t *testing.T, what string, match func(map[string]any) bool) map[string]any {
	t.Helper()
	return p.logs.Wait(t, 0, what, match)
}

// mark is the number of log lines so far, for waitLogFrom.
func (p *proc) mark() int { return p.logs.Len() }

// waitLogFrom is waitLog over the lines from the from-th on: a line logged
// before the event waited for (a poll reload racing a SIGHUP) must not
// satisfy it.
func (p *proc) waitLogFrom(t *testing.T, from int, what string, match func(map[string]any) bool) map[string]any {
	t.Helper()
	return p.logs.Wait(t, from, what, match)
}

// stopServe sends SIGTERM and waits for a clean exit.
func stopServe(t *testing.T, p *proc) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-p.done:
		if err != nil {
			t.Errorf("serve exited with %v after SIGTERM; want 0", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("serve did not stop within 20s of SIGTERM")
	}
}

func (p *proc) log() string { return p.logs.String() }

func (p *proc) addr(t *testing.T, listener string) string {
	m := p.waitLog(t, listener+" listener", func(m map[string]any) bool {
		return m["message"] == "listening" && m["listener"] == listener
	})
	return m["addr"].(string)
}

func msg(text string) func(map[string]any) bool {
	return func(m map[string]any) bool { return m["message"] == text }
}

func sealFor(t *testing.T, key []byte) string { return testsupport.Seal(t, key, devSubject()) }

func mustRing(t *testing.T, keys ...[]byte) *capability.KeyRing {
	t.Helper()
	r, err := capability.NewKeyRing(keys...)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func checkRequest(tok string) *authv3.CheckRequest {
	return testsupport.CheckRequest(devSubject().OutboundContainerID, tok)
}

// TestServeProcess runs the real binary: start on port 0 with a key file,
// health and readiness, a Check, metrics, key rotation by SIGHUP, a bad key
// file that keeps the old ring, reload on file change, and SIGTERM.
func TestServeProcess(t *testing.T) {
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "keys")
	oldKey, newKey1, newKey2 := newKey(t), newKey(t), newKey(t)
	writeKeys(t, keyFile, oldKey)

	p := startServe(t, "--grpc-addr", "127.0.0.1:0", "--http-addr", "", "--admin-addr", "127.0.0.1:0",
		"--key-file", keyFile, "--key-reload-interval", "100ms")
	grpcAddr, adminAddr := p.addr(t, "grpc"), p.addr(t, "admin")
	p.waitLog(t, "ready", msg("ready"))

	conn, err := grpc.NewClient(grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	h, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{Service: "envoy.service.auth.v3.Authorization"})
	if err != nil || h.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health = %v, %v; want SERVING", h.GetStatus(), err)
	}
	if code := httpGet(t, "http://"+adminAddr+"/readyz"); code != http.StatusOK {
		t.Fatalf("/readyz = %d; want 200", code)
	}

	client := authv3.NewAuthorizationClient(conn)
	check := func(tok string) string {
		t.Helper()
		resp, err := client.Check(ctx, checkRequest(tok))
		if err != nil {
			t.Fatalf("Check: %v", err)
		}
		if resp.GetOkResponse() != nil {
			return "allow"
		}
		return resp.GetStatus().GetMessage()
	}
	oldTok := sealFor(t, oldKey)
	if got := check(oldTok); got != "allow" {
		t.Fatalf("Check(old key) = %s; want allow", got)
	}
	if got := check(sealFor(t, newKey1)); got != "invalid_capability" {
		t.Fatalf("Check(unknown key) = %s; want invalid_capability", got)
	}

	// Rotate: the new key seals, the old one still opens. SIGHUP reloads.
	writeKeys(t, keyFile, newKey1, oldKey)
	if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	p.waitLog(t, "reload by SIGHUP", func(m map[string]any) bool {
		return m["message"] == "keys reloaded" && m["trigger"] == "sighup"
	})
	if got := check(sealFor(t, newKey1)); got != "allow" {
		t.Errorf("after rotation, Check(new key) = %s; want allow", got)
	}
	if got := check(oldTok); got != "allow" {
		t.Errorf("after rotation, Check(old key) = %s; want allow", got)
	}

	// A broken file keeps the current ring.
	if err := os.WriteFile(keyFile, []byte("not base64!\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p.cmd.Process.Signal(syscall.SIGHUP)
	p.waitLog(t, "failed reload", msg("key reload failed; keeping the current keys"))
	if got := check(sealFor(t, newKey1)); got != "allow" {
		t.Errorf("after a bad key file, Check = %s; want allow with the old ring", got)
	}

	// A changed file is picked up without a signal. Only lines from now on
	// count: the poll may have reloaded the rotated file before the SIGHUP.
	from := p.mark()
	writeKeys(t, keyFile, newKey2)
	p.waitLogFrom(t, from, "reload on file change", func(m map[string]any) bool {
		return m["message"] == "keys reloaded" && m["trigger"] == "file_changed"
	})
	if got := check(oldTok); got != "invalid_capability" {
		t.Errorf("after dropping the old key, Check(old) = %s; want invalid_capability", got)
	}

	metrics := httpBody(t, "http://"+adminAddr+"/metrics")
	for _, want := range []string{
		`extauthz_decisions_total{profile="",reason="",result="allow",route_class="provider_model"}`,
		`extauthz_decisions_total{profile="",reason="invalid_capability",result="deny",route_class=""}`,
		`extauthz_key_reloads_total{result="ok"}`,
		`extauthz_key_reloads_total{result="error"}`,
		`extauthz_decision_duration_seconds_count`,
		"extauthz_ready 1\n",
		`extauthz_grpc_requests_total{code="OK",method="/envoy.service.auth.v3.Authorization/Check"}`,
		"extauthz_capability_cache_hits_total ", "extauthz_capability_cache_misses_total ",
		"extauthz_capability_cache_evictions_total ", "extauthz_capability_cache_entries ",
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}

	stopServe(t, p)
	log := p.log()
	if !strings.Contains(log, `"message":"draining"`) || !strings.Contains(log, `"message":"stopped"`) {
		t.Errorf("shutdown not logged:\n%s", log)
	}
	for _, secret := range []string{oldTok, base64.StdEncoding.EncodeToString(oldKey),
		base64.StdEncoding.EncodeToString(newKey1), "dev-user-token", "dev-provider-token", "kka1."} {
		if strings.Contains(log, secret) {
			t.Errorf("server log contains a secret (%.10s…)", secret)
		}
	}
}

func httpGet(t *testing.T, url string) int {
	t.Helper()
	code, _ := testsupport.HTTPCall(t, "GET", url, "", nil)
	return code
}

func httpBody(t *testing.T, url string) string {
	t.Helper()
	_, body := testsupport.HTTPCall(t, "GET", url, "", nil)
	return body
}
