package e2e

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/extauthz/extauthz/capability"
	"github.com/extauthz/extauthz/internal/testutil/proc"
	"github.com/extauthz/extauthz/internal/testutil/testprog"
	"github.com/extauthz/extauthz/internal/testutil/testsupport"
)

// startTimeout bounds every wait for a process to become ready.
const startTimeout = 30 * time.Second

// buildCommand builds github.com/extauthz/extauthz/cmd/NAME into dir.
func buildCommand(t *testing.T, dir, name string) string {
	t.Helper()
	bin := filepath.Join(dir, name)
	gobin := filepath.Join(os.Getenv("GOROOT"), "bin", "go")
	if _, err := os.Stat(gobin); err != nil {
		gobin = "go"
	}
	cmd := exec.Command(gobin, "build", "-o", bin, "github.com/extauthz/extauthz/cmd/"+name)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", name, err, out)
	}
	return bin
}

// buildExtauthz builds the server binary into a temporary directory.
func buildExtauthz(t *testing.T) string {
	t.Helper()
	return buildCommand(t, t.TempDir(), "extauthz")
}

// newKey writes a fresh key file and returns it with a codec over the key.
func newKey(t *testing.T) (keyFile string, codec *capability.Codec) {
	t.Helper()
	key := make([]byte, capability.KeySize)
	_, _ = rand.Read(key)
	keyFile = filepath.Join(t.TempDir(), "keys")
	if err := os.WriteFile(keyFile, []byte(base64.StdEncoding.EncodeToString(key)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ring, err := capability.NewKeyRing(key)
	if err != nil {
		t.Fatal(err)
	}
	return keyFile, capability.NewCodec(ring)
}

// process is a started child process.
type process struct {
	cmd    *exec.Cmd
	output *testsupport.LockedBuffer
	done   chan struct{} // closed when the process has exited
}

// stop sends SIGTERM, waits a bounded time, then kills.
func (p *process) stop() { proc.Terminate(p.cmd.Process, p.done, 10*time.Second) }

// start runs cmd with its stdout and stderr collected, line by line, and calls
// onLine for each line until it returns false.
func start(t *testing.T, cmd *exec.Cmd, onLine func(string) bool) *process {
	t.Helper()
	p := &process{cmd: cmd, output: &testsupport.LockedBuffer{}, done: make(chan struct{})}
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", cmd.Path, err)
	}
	go func() {
		_ = cmd.Wait()
		pw.Close()
		close(p.done)
	}()
	go func() {
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		watching := onLine != nil
		for sc.Scan() {
			line := sc.Text()
			p.output.Write([]byte(line + "\n"))
			if watching {
				watching = onLine(line)
			}
		}
		_, _ = io.Copy(io.Discard, pr)
	}()
	t.Cleanup(p.stop)
	return p
}

// startExtauthz starts `extauthz serve` on loopback port 0 and returns its
// HTTP authorization address, read from its "listening" log line.
func startExtauthz(t *testing.T, bin, keyFile string) (*process, string) {
	t.Helper()
	cmd := exec.Command(bin, "serve",
		"--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0",
		"--key-file", keyFile, "--key-reload-interval", "0",
		"--http-container-id-header", "x-outbound-container-id")
	cmd.Env = cleanEnv()
	addrc := make(chan string, 1)
	p := start(t, cmd, func(line string) bool {
		var e struct{ Listener, Addr, Message string }
		if json.Unmarshal([]byte(line), &e) == nil && e.Message == "listening" && e.Listener == "http" {
			addrc <- e.Addr
			return false
		}
		return true
	})
	select {
	case addr := <-addrc:
		return p, addr
	case <-p.done:
		t.Fatalf("extauthz exited before listening:\n%s", p.output)
	case <-time.After(startTimeout):
		t.Fatalf("extauthz did not listen within %v:\n%s", startTimeout, p.output)
	}
	return nil, ""
}

// cleanEnv is the environment without EXTAUTHZ_* settings that would change
// the server under test, and without a drain delay: a test that stops
// extauthz means it gone at once (a drain test passes --drain-delay).
func cleanEnv() []string {
	env := []string{"EXTAUTHZ_DRAIN_DELAY=0"}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "EXTAUTHZ_") {
			env = append(env, kv)
		}
	}
	return env
}

// freePort returns a loopback port that was free a moment ago, for programs
// (nginx) that cannot listen on port 0 and report it.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// waitListening polls addr until it accepts a connection, the process exits,
// or startTimeout passes.
func waitListening(t *testing.T, p *process, addr string) {
	t.Helper()
	deadline := time.Now().Add(startTimeout)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return
		}
		select {
		case <-p.done:
			t.Fatalf("%s exited before listening on %s:\n%s", p.cmd.Path, addr, p.output)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: nothing listening on %s after %v:\n%s", p.cmd.Path, addr, startTimeout, p.output)
		}
	}
}

// seen is one request the echo upstream received.
type seen struct {
	Method     string
	RequestURI string
	Host       string
	Header     http.Header
	Body       string
}

// echoUpstream records every request and echoes it back as JSON.
type echoUpstream struct {
	*httptest.Server
	mu   sync.Mutex
	reqs []seen
}

func newEchoUpstream(t *testing.T) *echoUpstream {
	t.Helper()
	e := &echoUpstream{}
	e.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		s := seen{Method: r.Method, RequestURI: r.RequestURI, Host: r.Host, Header: r.Header.Clone(), Body: string(body)}
		e.mu.Lock()
		e.reqs = append(e.reqs, s)
		e.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(s)
	}))
	t.Cleanup(e.Close)
	return e
}

// requests returns how many requests arrived and the last one.
func (e *echoUpstream) requests() (int, seen) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.reqs) == 0 {
		return 0, seen{}
	}
	return len(e.reqs), e.reqs[len(e.reqs)-1]
}

// findNginx returns the nginx binary, skipping (or failing on CI) without one.
func findNginx(t *testing.T) string {
	t.Helper()
	return testprog.Require(t, "nginx", "/usr/sbin/nginx")
}

// client talks to the proxies directly, never through an environment proxy.
var client = &http.Client{
	Transport: &http.Transport{Proxy: nil},
	Timeout:   15 * time.Second,
}

func do(t *testing.T, method, url string, header map[string]string, body string) (*http.Response, string) {
	t.Helper()
	return doWith(t, client, method, url, header, body)
}

// doWith sends one request with c and returns the response and its body.
func doWith(t *testing.T, c *http.Client, method, url string, header map[string]string, body string) (*http.Response, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	var rb io.Reader
	if body != "" {
		rb = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rb)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}
