// Package extauthzproc builds extauthz from the tree and runs `extauthz
// serve` as a child process for benchmarks, the way users run it: its own
// process, a key file, decision logs at the default level (info) written to a
// file. It also seals the capabilities the benchmark sends.
package extauthzproc

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/extauthz/extauthz/capability"
	"github.com/extauthz/extauthz/internal/testutil/proc"
)

// Build compiles github.com/extauthz/extauthz/cmd/extauthz into dir and
// returns the binary. It must run inside the repository (see ModuleDir).
// The binary is built in the root module, with its own go.mod and go.sum,
// as users build it.
func Build(dir string) (string, error) {
	bin := filepath.Join(dir, "extauthz")
	root, err := ModuleDir()
	if err != nil {
		return "", err
	}
	build := exec.Command(goBinary(), "build", "-o", bin, "./cmd/extauthz")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build extauthz: %w\n%s", err, out)
	}
	return bin, nil
}

// ModuleDir is the root of the extauthz tree: the module
// github.com/extauthz/extauthz as the go command resolves it from the
// working directory, in the bench module (whose go.mod replaces it with
// the tree above it) or in the root module.
func ModuleDir() (string, error) {
	root, err := exec.Command(goBinary(), "list", "-m", "-f", "{{.Dir}}", "github.com/extauthz/extauthz").Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			err = fmt.Errorf("%w: %s", err, bytes.TrimSpace(ee.Stderr))
		}
		return "", fmt.Errorf("find the extauthz module (run inside the repository): %w", err)
	}
	return strings.TrimSpace(string(root)), nil
}

// goBinary is the go command: on PATH, else in GOROOT.
func goBinary() string {
	if gobin, err := exec.LookPath("go"); err == nil {
		return gobin
	}
	return filepath.Join(os.Getenv("GOROOT"), "bin", "go")
}

// NewKey writes a fresh one-key key file into dir and returns it with a codec
// that seals with that key.
func NewKey(dir string) (keyFile string, codec *capability.Codec, err error) {
	key := make([]byte, capability.KeySize)
	_, _ = rand.Read(key)
	ring, err := capability.NewKeyRing(key)
	if err != nil {
		return "", nil, err
	}
	keyFile = filepath.Join(dir, "keys")
	line := base64.StdEncoding.EncodeToString(key) + "\n"
	if err := os.WriteFile(keyFile, []byte(line), 0o600); err != nil {
		return "", nil, err
	}
	return keyFile, capability.NewCodec(ring), nil
}

// Subject is a capability subject for containerID whose three targets are
// https://apiHost (backend and provider) and https://ingestHost.
func Subject(containerID, apiHost, ingestHost string) capability.Subject {
	return capability.Subject{
		UserID:              "bench-user",
		CloudAgentSessionID: "bench-cas",
		KiloSessionID:       "bench-session",
		OutboundContainerID: containerID,
		UserToken:           "bench-user-token-0123456789abcdef",
		ProviderToken:       "bench-provider-token-0123456789ab",
		Targets: capability.Targets{
			BackendBaseURL:       "https://" + apiHost,
			ProviderBaseURL:      "https://" + apiHost,
			SessionIngestBaseURL: "https://" + ingestHost,
		},
	}
}

// Process is a running `extauthz serve`.
type Process struct {
	cmd  *exec.Cmd
	done chan struct{}
	log  string
	// GRPCAddr is the address of the ext_authz gRPC listener.
	GRPCAddr string
}

// Start runs `bin serve` with only the gRPC listener on a free loopback port
// and the key file, plus extra flags; its log (JSON lines) goes to logFile.
// It returns once the gRPC listener is up.
func Start(bin, keyFile, logFile string, extra ...string) (*Process, error) {
	f, err := os.Create(logFile)
	if err != nil {
		return nil, err
	}
	defer f.Close() // the child holds its own descriptor
	args := append([]string{"serve", "--key-file", keyFile,
		"--grpc-addr", "127.0.0.1:0", "--http-addr=", "--admin-addr="}, extra...)
	cmd := exec.Command(bin, args...)
	cmd.Env = cleanEnv()
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &Process{cmd: cmd, done: make(chan struct{}), log: logFile}
	go func() {
		_ = cmd.Wait()
		close(p.done)
	}()
	deadline := time.Now().Add(30 * time.Second)
	for p.GRPCAddr == "" {
		if p.GRPCAddr = listening(logFile, "grpc"); p.GRPCAddr != "" {
			break
		}
		select {
		case <-p.done:
			return nil, fmt.Errorf("extauthz exited before listening:\n%s", p.Tail(4096))
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			p.Stop()
			return nil, fmt.Errorf("extauthz not listening after 30s:\n%s", p.Tail(4096))
		}
	}
	return p, nil
}

// ListenerAddr is the address of listener name ("grpc", "http",
// "admin"), one that extra flags to Start enabled, as its "listening" log
// line says; it waits for the line a few seconds at most. Call it soon
// after Start: it reads the log from the start, and decision lines follow.
func (p *Process) ListenerAddr(name string) (string, error) {
	deadline := time.Now().Add(5 * time.Second)
	for {
		if addr := listening(p.log, name); addr != "" {
			return addr, nil
		}
		if err := p.Alive(); err != nil || time.Now().After(deadline) {
			return "", fmt.Errorf("extauthz logged no %s listener:\n%s", name, p.Tail(4096))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// listening returns the address of the "listening" log line for listener
// name in the log file, or "".
func listening(logFile, name string) string {
	f, err := os.Open(logFile)
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var e struct{ Message, Listener, Addr string }
		if json.Unmarshal(sc.Bytes(), &e) == nil && e.Message == "listening" && e.Listener == name {
			return e.Addr
		}
	}
	return ""
}

// cleanEnv is the environment without EXTAUTHZ_* settings that would change
// the server under test, and without a drain delay: there is no health
// checker to wait for, so Stop means stopped.
func cleanEnv() []string {
	env := []string{"EXTAUTHZ_DRAIN_DELAY=0"}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "EXTAUTHZ_") {
			env = append(env, kv)
		}
	}
	return env
}

// PID is the process id, for reading its CPU time.
func (p *Process) PID() int { return p.cmd.Process.Pid }

// Tail returns at most the last n bytes of the log.
func (p *Process) Tail(n int) string { return Tail(p.log, n) }

// Tail returns at most the last n bytes of a file.
func Tail(file string, n int) string {
	b, err := os.ReadFile(file)
	if err != nil {
		return err.Error()
	}
	if len(b) > n {
		b = b[len(b)-n:]
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			b = b[i+1:]
		}
	}
	return string(b)
}

// Stop sends SIGTERM and kills the process after a bounded wait.
func (p *Process) Stop() { proc.Terminate(p.cmd.Process, p.done, 20*time.Second) }

// ErrExited is returned by Alive once the process has exited.
var ErrExited = errors.New("extauthz exited")

// Alive returns ErrExited if the process is no longer running.
func (p *Process) Alive() error {
	select {
	case <-p.done:
		return ErrExited
	default:
		return nil
	}
}
