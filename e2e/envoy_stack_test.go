package e2e

import (
	"bufio"
	"crypto/rand"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/extauthz/extauthz/capability"
	"github.com/extauthz/extauthz/internal/testutil/envoyproc"
	"github.com/extauthz/extauthz/internal/testutil/testpki"
)

// The shipped configs' names: the tests seal capabilities for exactly these.
const (
	apiHost         = "api.kilo.example"
	ingestHost      = "ingest.kilo.example"
	shippedID       = "outbound-container-CHANGE-ME"
	sentinelUser    = "user-token-SENTINEL-3f9a"
	sentinelProv    = "provider-token-SENTINEL-77c1"
	kiloSessionID   = "kilo-session-1"
	systemCABundle  = "/etc/ssl/certs/ca-certificates.crt"
	capabilityHdr   = "x-kilo-capability"
	envoyListener   = "sandbox_egress"
	decisionTimeout = 5 * time.Second
)

// shippedTargets are the targets of a capability for the hosts the shipped
// Envoy configs route.
var shippedTargets = capability.Targets{
	BackendBaseURL:       "https://" + apiHost,
	ProviderBaseURL:      "https://" + apiHost,
	SessionIngestBaseURL: "https://" + ingestHost,
}

// subjectFor is a subject bound to container id with the sentinel tokens.
func subjectFor(id string, targets capability.Targets) capability.Subject {
	return capability.Subject{
		UserID:              "user-1",
		CloudAgentSessionID: "cloud-session-1",
		KiloSessionID:       kiloSessionID,
		OutboundContainerID: id,
		UserToken:           sentinelUser,
		ProviderToken:       sentinelProv,
		Targets:             targets,
	}
}

// tlsUpstream is an HTTPS upstream with a certificate from the test CA that
// records every request and echoes it back as JSON. A handler set for a path
// answers that path instead.
type tlsUpstream struct {
	*httptest.Server
	name string
	mu   sync.Mutex
	reqs []seen
	hook map[string]http.HandlerFunc
}

func newTLSUpstream(t *testing.T, name string, cert tls.Certificate) *tlsUpstream {
	t.Helper()
	u := &tlsUpstream{name: name, hook: map[string]http.HandlerFunc{}}
	u.Server = httptest.NewUnstartedServer(http.HandlerFunc(u.serve))
	u.Server.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	u.Server.Config.ErrorLog = nil
	u.StartTLS()
	t.Cleanup(u.Close)
	return u
}

func (u *tlsUpstream) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	s := seen{Method: r.Method, RequestURI: r.RequestURI, Host: r.Host, Header: r.Header.Clone(), Body: string(body)}
	u.mu.Lock()
	u.reqs = append(u.reqs, s)
	h := u.hook[r.URL.Path]
	u.mu.Unlock()
	if h != nil {
		r.Body = io.NopCloser(strings.NewReader(string(body))) // read above, for the record
		h(w, r)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"upstream": u.name, "path": r.RequestURI, "bytes": len(body)})
}

func (u *tlsUpstream) handle(path string, h http.HandlerFunc) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.hook[path] = h
}

func (u *tlsUpstream) count() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return len(u.reqs)
}

func (u *tlsUpstream) last() seen {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.reqs[len(u.reqs)-1]
}

func (u *tlsUpstream) port() int {
	return u.Listener.Addr().(*net.TCPAddr).Port
}

// relay is a TCP forwarder between Envoy and extauthz. It lets a test move
// extauthz (a restart on a new port) and slow it down (each chunk delayed)
// without touching Envoy.
type relay struct {
	ln     net.Listener
	mu     sync.Mutex
	target string
	delay  time.Duration
}

func newRelay(t *testing.T, target string) *relay {
	t.Helper()
	r := &relay{target: target}
	r.ln = acceptLoopback(t, func(c net.Conn) { go r.pipe(c) })
	return r
}

// acceptLoopback listens on a free loopback port and hands every connection
// to handle until the test ends.
func acceptLoopback(t *testing.T, handle func(net.Conn)) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			handle(c)
		}
	}()
	return ln
}

func (r *relay) set(target string, delay time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.target, r.delay = target, delay
}

func (r *relay) current() (string, time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.target, r.delay
}

// pipe forwards one connection; the delay is read for every chunk, so a
// connection Envoy keeps open slows down and recovers with the relay.
func (r *relay) pipe(c net.Conn) {
	target, _ := r.current()
	u, err := net.DialTimeout("tcp", target, time.Second)
	if err != nil {
		c.Close()
		return
	}
	cp := func(dst, src net.Conn) {
		buf := make([]byte, 32<<10)
		for {
			n, err := src.Read(buf)
			if n > 0 {
				_, delay := r.current()
				time.Sleep(delay)
				if _, werr := dst.Write(buf[:n]); werr != nil {
					break
				}
			}
			if err != nil {
				break
			}
		}
		dst.Close()
		src.Close()
	}
	go cp(u, c)
	cp(c, u)
}

func (r *relay) port() int { return r.ln.Addr().(*net.TCPAddr).Port }

// extauthzProc is a running `extauthz serve` whose decision lines a test
// can read.
type extauthzProc struct {
	*process
	grpc, http, admin string
}

// startServe starts `extauthz serve` with args on loopback port 0 (gRPC and,
// when withHTTP, the HTTP listener; admin off unless args set it) and waits
// until it logs "ready"; the addresses come from its "listening" lines.
func startServe(t *testing.T, bin, keyFile string, withHTTP bool, args ...string) *extauthzProc {
	t.Helper()
	httpAddr := ""
	if withHTTP {
		httpAddr = "127.0.0.1:0"
	}
	full := append([]string{"serve", "--key-file", keyFile, "--key-reload-interval", "0",
		"--grpc-addr", "127.0.0.1:0", "--http-addr", httpAddr, "--admin-addr", ""}, args...)
	cmd := exec.Command(bin, full...)
	cmd.Env = cleanEnv()
	type logLine struct{ Listener, Addr, Message string }
	x := &extauthzProc{}
	ready := make(chan struct{})
	x.process = start(t, cmd, func(line string) bool {
		var e logLine
		if json.Unmarshal([]byte(line), &e) != nil {
			return true
		}
		switch {
		case e.Message == "listening" && e.Listener == "grpc":
			x.grpc = e.Addr
		case e.Message == "listening" && e.Listener == "http":
			x.http = e.Addr
		case e.Message == "listening" && e.Listener == "admin":
			x.admin = e.Addr
		case e.Message == "ready":
			close(ready)
			return false
		}
		return true
	})
	select {
	case <-ready:
	case <-x.done:
		t.Fatalf("extauthz exited before it was ready:\n%s", x.output)
	case <-time.After(startTimeout):
		t.Fatalf("extauthz not ready within %v:\n%s", startTimeout, x.output)
	}
	return x
}

// decision is one decision line of extauthz's log.
type decision struct {
	Decision, Reason, RouteClass, Protocol, Method, Host, Path string
}

// decisions returns every decision line logged so far.
func (x *extauthzProc) decisions() []decision {
	var out []decision
	for _, line := range strings.Split(x.output.String(), "\n") {
		var e struct {
			Message    string `json:"message"`
			Decision   string `json:"decision"`
			Reason     string `json:"reason"`
			RouteClass string `json:"route_class"`
			Protocol   string `json:"protocol"`
			Method     string `json:"method"`
			Host       string `json:"host"`
			Path       string `json:"path"`
		}
		if json.Unmarshal([]byte(line), &e) == nil && e.Message == "decision" {
			out = append(out, decision{e.Decision, e.Reason, e.RouteClass, e.Protocol, e.Method, e.Host, e.Path})
		}
	}
	return out
}

// decisionAfter waits for decision number n (0-based), or returns false.
func (x *extauthzProc) decisionAfter(n int) (decision, bool) {
	deadline := time.Now().Add(decisionTimeout)
	for {
		if d := x.decisions(); len(d) > n {
			return d[n], true
		}
		if time.Now().After(deadline) {
			return decision{}, false
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// envoyStack is the shipped deploy/envoy/envoy.yaml (gRPC mode) or
// deploy/envoy/envoy-http-service.yaml running for real: extauthz built from the
// tree behind a relay, HTTPS upstreams for the shipped host names with
// certificates from a test CA, and a codec to seal capabilities. Only
// addresses, ports and certificate paths of the shipped file are changed.
type envoyStack struct {
	t         *testing.T
	bin       string
	keyFile   string
	codec     *capability.Codec
	ca        *testpki.CA
	ext       *extauthzProc
	relay     *relay
	api       *tlsUpstream
	ingest    *tlsUpstream
	envoy     *envoyproc.Process
	proxy     string // Envoy's listener, host:port
	httpMode  bool
	serveArgs []string
	// adminRelay carries the HTTP mode's health checks to extauthz's
	// /readyz, so that they follow a restarted extauthz (new ports) too.
	adminRelay *relay
}

// stackOptions vary a stack.
type stackOptions struct {
	httpMode  bool                              // envoy-http-service.yaml instead of envoy.yaml
	serveArgs []string                          // more flags for extauthz serve
	edit      func(*envoyproc.Config) error     // a further change to the config (mTLS)
	apiCert   func(*testpki.CA) tls.Certificate // the api upstream's certificate
}

func newEnvoyStack(t *testing.T, opts stackOptions) *envoyStack {
	t.Helper()
	envoyBin := envoyproc.Require(t)
	s := &envoyStack{t: t, bin: extauthzBin(t), ca: testpki.NewCA(t, "e2e"), httpMode: opts.httpMode, serveArgs: opts.serveArgs}
	if s.httpMode {
		// envoy-http-service.yaml's health check asks the admin listener.
		s.serveArgs = slices.Concat(s.serveArgs, []string{"--admin-addr", "127.0.0.1:0"})
	}
	s.keyFile, s.codec = newKey(t)

	apiCert := s.ca.Issue(testpki.Spec{CommonName: apiHost, DNSNames: []string{apiHost}}).TLS
	if opts.apiCert != nil {
		apiCert = opts.apiCert(s.ca)
	}
	s.api = newTLSUpstream(t, apiHost, apiCert)
	s.ingest = newTLSUpstream(t, ingestHost, s.ca.Issue(testpki.Spec{CommonName: ingestHost, DNSNames: []string{ingestHost}}).TLS)

	s.ext = startServe(t, s.bin, s.keyFile, s.httpMode, s.serveArgs...)
	target := s.ext.grpc
	file := "envoy.yaml"
	if s.httpMode {
		target, file = s.ext.http, "envoy-http-service.yaml"
	}
	s.relay = newRelay(t, target)

	cfg := shippedEnvoyConfig(t, file)
	must := func(err error) {
		t.Helper()
		mustOK(t, err)
	}
	must(cfg.SetCluster("extauthz", "127.0.0.1", s.relay.port()))
	if s.httpMode {
		s.adminRelay = newRelay(t, s.ext.admin)
		must(cfg.SetEndpointHealthPorts("extauthz", []int{s.adminRelay.port()}))
	}
	must(cfg.SetCluster("kilo_api", "127.0.0.1", s.api.port()))
	if !s.httpMode {
		must(cfg.SetCluster("kilo_ingest", "127.0.0.1", s.ingest.port()))
	}
	if n := cfg.ReplaceString(systemCABundle, s.ca.File); n == 0 {
		t.Fatalf("%s names no %s to replace", file, systemCABundle)
	}
	if opts.edit != nil {
		must(opts.edit(cfg))
	}
	var err error
	s.envoy, err = envoyproc.Start(envoyBin, cfg, envoyproc.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.envoy.Stop)
	s.proxy, err = s.envoy.ListenerAddr(envoyListener)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// shippedEnvoyConfig loads deploy/envoy/<file> with its admin interface and
// sandbox listener moved to loopback port 0; the test points its clusters.
func shippedEnvoyConfig(t *testing.T, file string) *envoyproc.Config {
	t.Helper()
	cfg, err := envoyproc.Load(filepath.Join("..", "deploy", "envoy", file))
	if err != nil {
		t.Fatal(err)
	}
	mustOK(t, cfg.SetAdmin("127.0.0.1", 0))
	mustOK(t, cfg.SetListener(envoyListener, "127.0.0.1", 0))
	return cfg
}

// mustOK fails the test on err.
func mustOK(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// extauthzBin builds extauthz once per test binary, into testTempRoot.
func extauthzBin(t *testing.T) string {
	t.Helper()
	builtMu.Lock()
	defer builtMu.Unlock()
	if builtBin == "" {
		builtBin = buildCommand(t, testTempRoot, "extauthz")
	}
	return builtBin
}

var (
	builtMu  sync.Mutex
	builtBin string
	// testTempRoot outlives single tests (TestMain removes it).
	testTempRoot string
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "extauthz-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	testTempRoot = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// seal seals a capability for subject, valid for an hour.
func (s *envoyStack) seal(sub capability.Subject) string {
	s.t.Helper()
	c, err := s.codec.Seal(sub, time.Hour)
	if err != nil {
		s.t.Fatal(err)
	}
	return c
}

// capability is a valid capability bound to the shipped container id.
func (s *envoyStack) capability() string {
	return s.seal(subjectFor(shippedID, shippedTargets))
}

// rawResponse is what came back for a raw request.
type rawResponse struct {
	status int
	header http.Header
	body   string
}

// raw writes request bytes to Envoy's listener as they are (no client
// library normalises them) and reads one response.
func (s *envoyStack) raw(request string) rawResponse {
	s.t.Helper()
	c, err := net.DialTimeout("tcp", s.proxy, 5*time.Second)
	if err != nil {
		s.t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(15 * time.Second))
	if _, err := io.WriteString(c, request); err != nil {
		s.t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return rawResponse{status: -1, body: err.Error()}
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return rawResponse{status: resp.StatusCode, header: resp.Header, body: string(b)}
}

// get sends GET http://host+path through Envoy in absolute form with the
// given extra header lines ("name: value").
func (s *envoyStack) get(host, path string, headers ...string) rawResponse {
	s.t.Helper()
	return s.raw(buildRequest("GET", "http://"+host+path, host, headers, ""))
}

func buildRequest(method, target, host string, headers []string, body string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n", method, target, host)
	for _, h := range headers {
		b.WriteString(h + "\r\n")
	}
	if body != "" {
		b.WriteString("Content-Length: " + strconv.Itoa(len(body)) + "\r\n")
	}
	b.WriteString("\r\n")
	b.WriteString(body)
	return b.String()
}

// randomBody returns n random bytes as a string.
func randomBody(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return string(b)
}
