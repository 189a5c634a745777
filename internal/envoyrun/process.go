package envoyrun

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/extauthz/extauthz/internal/subproc"
)

// Validate runs `envoy --mode validate` on a config file and returns Envoy's
// output when it refuses it.
func Validate(ctx context.Context, bin, file string) error {
	cmd := exec.CommandContext(ctx, bin, "--mode", "validate", "-c", file,
		"--disable-hot-restart", "--log-level", "error")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("envoy --mode validate %s: %w\n%s", file, err, out)
	}
	if !bytes.Contains(out, []byte("OK")) {
		return fmt.Errorf("envoy --mode validate %s: no OK in output:\n%s", file, out)
	}
	return nil
}

// Process is a running Envoy.
type Process struct {
	cmd    *exec.Cmd
	out    *Output
	done   chan struct{}
	admin  string
	client *http.Client
}

// Output collects a process's combined output, safe for concurrent use.
type Output = subproc.Output

// Options tune Start.
type Options struct {
	// Dir receives the config and the admin address file; required.
	Dir string
	// Concurrency is Envoy's worker count (default 1).
	Concurrency int
	// LogLevel is Envoy's log level (default "warn").
	LogLevel string
	// Ready bounds the wait for Envoy to be ready (default 30 s).
	Ready time.Duration
	// Output, if set, receives Envoy's stdout and stderr instead of the
	// in-memory buffer Process.Output returns (which then stays empty): for
	// long runs, whose access log would grow without bound. An *os.File is
	// handed to Envoy directly.
	Output io.Writer
}

// Start writes cfg into opts.Dir and starts Envoy on it. It returns once
// Envoy's admin /ready says LIVE, or an error with Envoy's output.
func Start(bin string, cfg *Config, opts Options) (*Process, error) {
	if opts.Concurrency == 0 {
		opts.Concurrency = 1
	}
	if opts.LogLevel == "" {
		opts.LogLevel = "warn"
	}
	if opts.Ready == 0 {
		opts.Ready = 30 * time.Second
	}
	file := filepath.Join(opts.Dir, "envoy.json")
	adminFile := filepath.Join(opts.Dir, "admin-address")
	if err := os.WriteFile(file, cfg.JSON(), 0o600); err != nil {
		return nil, err
	}
	_ = os.Remove(adminFile)
	p := &Process{
		cmd: exec.Command(bin, "-c", file, "--disable-hot-restart",
			"--admin-address-path", adminFile,
			"--concurrency", strconv.Itoa(opts.Concurrency),
			"--log-level", opts.LogLevel,
			// Access logs reach the output within 100 ms, for tests to read.
			"--file-flush-interval-msec", "100"),
		out:    &Output{},
		done:   make(chan struct{}),
		client: &http.Client{Transport: &http.Transport{Proxy: nil}, Timeout: 5 * time.Second},
	}
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if opts.Output != nil {
		p.cmd.Stdout, p.cmd.Stderr = opts.Output, opts.Output
	}
	// Envoy dies with the program that started it even if that one is
	// killed, and a terminal's Ctrl-C reaches that program alone, which
	// stops Envoy in order (Linux; elsewhere Envoy gets the Ctrl-C too).
	p.cmd.SysProcAttr = childAttr()
	if err := p.cmd.Start(); err != nil {
		return nil, err
	}
	go func() {
		_ = p.cmd.Wait()
		close(p.done)
	}()
	deadline := time.Now().Add(opts.Ready)
	for {
		if p.admin == "" {
			if b, err := os.ReadFile(adminFile); err == nil && len(bytes.TrimSpace(b)) > 0 {
				p.admin = strings.TrimSpace(string(b))
			}
		}
		if p.admin != "" {
			if body, err := p.Admin("/ready"); err == nil && strings.TrimSpace(body) == "LIVE" {
				return p, nil
			}
		}
		select {
		case <-p.done:
			return nil, fmt.Errorf("envoy exited before it was ready:\n%s", p.out)
		case <-time.After(25 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			p.Stop()
			return nil, fmt.Errorf("envoy not ready after %v:\n%s", opts.Ready, p.out)
		}
	}
}

// Output returns what Envoy printed (its log and a stdout access log), unless
// Options.Output took it.
func (p *Process) Output() string { return p.out.String() }

// PID is Envoy's process id, for reading its CPU time.
func (p *Process) PID() int { return p.cmd.Process.Pid }

// Done is closed when Envoy has exited.
func (p *Process) Done() <-chan struct{} { return p.done }

// AdminAddr is the admin listener's address, host:port.
func (p *Process) AdminAddr() string { return p.admin }

// Admin GETs path on the admin listener and returns the body of a 200.
func (p *Process) Admin(path string) (string, error) {
	resp, err := p.client.Get("http://" + p.admin + path)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return string(b), fmt.Errorf("admin %s: %s", path, resp.Status)
	}
	return string(b), nil
}

// HostHealth returns the health flags Envoy's admin /clusters page gives
// each endpoint of cluster ("healthy", "/failed_active_hc", …), by its
// address (host:port).
func (p *Process) HostHealth(cluster string) (map[string]string, error) {
	body, err := p.Admin("/clusters")
	if err != nil {
		return nil, err
	}
	flags := map[string]string{}
	for _, line := range strings.Split(body, "\n") {
		rest, ok := strings.CutPrefix(line, cluster+"::")
		if !ok {
			continue
		}
		if addr, v, ok := strings.Cut(rest, "::health_flags::"); ok {
			flags[addr] = v
		}
	}
	return flags, nil
}

// ListenerAddr returns the address the listener called name is bound to.
func (p *Process) ListenerAddr(name string) (string, error) {
	body, err := p.Admin("/listeners?format=json")
	if err != nil {
		return "", err
	}
	var ls struct {
		ListenerStatuses []struct {
			Name         string `json:"name"`
			LocalAddress struct {
				SocketAddress struct {
					Address   string `json:"address"`
					PortValue int    `json:"port_value"`
				} `json:"socket_address"`
			} `json:"local_address"`
		} `json:"listener_statuses"`
	}
	if err := json.Unmarshal([]byte(body), &ls); err != nil {
		return "", fmt.Errorf("admin /listeners: %w", err)
	}
	for _, l := range ls.ListenerStatuses {
		if l.Name == name {
			sa := l.LocalAddress.SocketAddress
			return net.JoinHostPort(sa.Address, strconv.Itoa(sa.PortValue)), nil
		}
	}
	return "", fmt.Errorf("no listener %q in %s", name, body)
}

// Stat returns the value of one counter or gauge from /stats, or -1 if
// Envoy does not report it.
func (p *Process) Stat(name string) (int64, error) {
	body, err := p.Admin("/stats?filter=" + url.QueryEscape(regexp.QuoteMeta(name)))
	if err != nil {
		return -1, err
	}
	for _, line := range strings.Split(body, "\n") {
		k, v, ok := strings.Cut(line, ": ")
		if ok && k == name {
			return strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		}
	}
	return -1, nil
}

// Stop asks Envoy to exit and kills it after a bounded wait.
func (p *Process) Stop() { subproc.Terminate(p.cmd.Process, p.done, 10*time.Second) }

// Kill ends Envoy at once and waits until it has exited.
func (p *Process) Kill() {
	_ = p.cmd.Process.Kill()
	<-p.done
}
