package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/extauthz/extauthz/bench/benchcmd"
	"github.com/extauthz/extauthz/bench/extauthzproc"
	"github.com/extauthz/extauthz/bench/loadgen"
	"github.com/extauthz/extauthz/internal/testutil/envoyproc"
	"github.com/extauthz/extauthz/internal/testutil/testpki"
)

// Config is one benchmark run: Run.Concurrency connections, one request in
// flight on each; certificates, keys, configs and logs in Run.Dir.
type Config struct {
	benchcmd.Run
	EnvoyBin    string
	EnvoyConfig string // the shipped deploy/envoy/envoy.yaml
	BareNop     bool   // do-nothing server answers a bare OK
}

// The cases, in the order of the first round.
const (
	caseNone    = "no ext_authz"
	caseNop     = "do-nothing ext_authz"
	caseExtauth = "extauthz"
)

// Measurement is one case in one round.
type Measurement struct {
	loadgen.Result
	// CPU time used during the measurement by Envoy, by the ext_authz server
	// the case uses (none for the baseline), and by this process (the load
	// generator and the upstream).
	EnvoyCPU, AuthzCPU, SelfCPU time.Duration
	// OtherCPU is the CPU time the machine spent outside this benchmark's
	// processes (other users of a shared machine, steal): it should be near 0.
	OtherCPU time.Duration
}

// CaseResult is every round of one case.
type CaseResult struct {
	Name   string
	Rounds []Measurement
}

// Report is a whole run.
type Report struct {
	Config Config
	Cases  []CaseResult
}

type benchCase struct {
	name     string
	envoy    *envoyproc.Process
	authzPID int // 0: none
	clients  []*http.Client
}

// run sets everything up, measures the cases in alternating rounds, and
// tears everything down.
func run(ctx context.Context, c Config) (*Report, error) {
	progress := c.Progressf
	// The upstream's certificate, from a throwaway CA that Envoy trusts in
	// place of the system bundle.
	ca, err := testpki.New(c.Dir, "envoybench")
	if err != nil {
		return nil, err
	}
	cert, err := ca.Sign(testpki.Spec{CommonName: benchcmd.APIHost, DNSNames: []string{benchcmd.APIHost}})
	if err != nil {
		return nil, err
	}
	caFile := ca.File
	upstream, stopUpstream, err := startUpstream(cert.TLS)
	if err != nil {
		return nil, err
	}
	defer stopUpstream()

	keyFile, codec, err := extauthzproc.NewKey(c.Dir)
	if err != nil {
		return nil, err
	}
	subject := extauthzproc.Subject(benchcmd.ContainerID, benchcmd.APIHost, benchcmd.IngestHost)
	ttl := min(capabilityTTL(c), 4*time.Hour)
	capability, err := codec.Seal(subject, ttl)
	if err != nil {
		return nil, err
	}
	// The provider route sends the provider token: the do-nothing server
	// overwrites authorization with a value of the same length.
	servers, err := benchcmd.StartServers(c.Run, benchcmd.ServerOptions{
		KeyFile: keyFile, TokenLen: len(subject.ProviderToken), BareNop: c.BareNop})
	if err != nil {
		return nil, err
	}
	defer servers.Stop()
	ext, nop := servers.Ext, servers.Nop

	var cases []*benchCase
	defer func() {
		for _, bc := range cases {
			bc.envoy.Stop()
		}
	}()
	for _, spec := range []struct {
		name      string
		authzAddr string
		authzPID  int
		noFilter  bool
	}{
		{caseNone, nop.Addr, 0, true},
		{caseNop, nop.Addr, nop.PID(), false},
		{caseExtauth, ext.GRPCAddr, ext.PID(), false},
	} {
		cfg, err := envoyConfig(c.EnvoyConfig, upstream, caFile, spec.authzAddr)
		if err != nil {
			return nil, err
		}
		if spec.noFilter && cfg.RemoveHTTPFilter(authzFilter) != 1 {
			return nil, fmt.Errorf("%s: no %s filter to remove", c.EnvoyConfig, authzFilter)
		}
		dir := filepath.Join(c.Dir, "envoy-"+strconv.Itoa(len(cases)))
		if err := os.Mkdir(dir, 0o700); err != nil {
			return nil, err
		}
		logFile := filepath.Join(dir, "envoy.log")
		out, err := os.Create(logFile)
		if err != nil {
			return nil, err
		}
		p, err := envoyproc.Start(c.EnvoyBin, cfg, envoyproc.Options{Dir: dir, Concurrency: 1, Output: out})
		out.Close() // Envoy holds its own descriptor
		if err != nil {
			return nil, fmt.Errorf("%s: %w\n%s", spec.name, err, extauthzproc.Tail(logFile, 8192))
		}
		bc := &benchCase{name: spec.name, envoy: p, authzPID: spec.authzPID}
		cases = append(cases, bc)
		addr, err := p.ListenerAddr(listenerName)
		if err != nil {
			return nil, err
		}
		proxy := &url.URL{Scheme: "http", Host: addr}
		for range c.Concurrency {
			bc.clients = append(bc.clients, &http.Client{Transport: &http.Transport{
				Proxy:               http.ProxyURL(proxy),
				MaxConnsPerHost:     1,
				MaxIdleConnsPerHost: 1,
				DisableCompression:  true,
			}})
		}
	}
	defer func() {
		for _, bc := range cases {
			for _, cl := range bc.clients {
				cl.CloseIdleConnections()
			}
		}
	}()

	target := "http://" + benchcmd.APIHost + benchcmd.RequestPath
	body := []byte(`{"model":"bench/model","messages":[{"role":"user","content":"hi"}]}`)
	measure := func(bc *benchCase, d time.Duration) (Measurement, error) {
		pids := []int{bc.envoy.PID(), bc.authzPID, os.Getpid()}
		ours := []int{os.Getpid(), ext.PID(), nop.PID()}
		for _, o := range cases {
			ours = append(ours, o.envoy.PID())
		}
		busy0, ours0, before := machineBusy(), sum(cpuTimes(ours)), cpuTimes(pids)
		res, err := loadgen.Run(ctx, loadgen.Options{Concurrency: c.Concurrency, Duration: d}, func(i int) loadgen.Func {
			return proxyRequest(bc.clients[i], target, capability, body)
		})
		busy1, ours1, after := machineBusy(), sum(cpuTimes(ours)), cpuTimes(pids)
		m := Measurement{Result: res,
			EnvoyCPU: after[0] - before[0], AuthzCPU: after[1] - before[1], SelfCPU: after[2] - before[2],
			OtherCPU: max(0, (busy1-busy0)-(ours1-ours0))}
		if err == nil {
			err = ext.Alive()
		}
		return m, err
	}

	if c.Warmup > 0 {
		for _, bc := range cases {
			progress("warm-up %s: %v", bc.name, c.Warmup)
			if _, err := measure(bc, c.Warmup); err != nil {
				return nil, err
			}
		}
	}
	rep := &Report{Config: c}
	for _, bc := range cases {
		rep.Cases = append(rep.Cases, CaseResult{Name: bc.name})
	}
	for r := range c.Rounds {
		// Rotate the order each round so that no case always follows another.
		for k := range cases {
			i := (r + k) % len(cases)
			m, err := measure(cases[i], c.Duration)
			if err != nil {
				return nil, err
			}
			rep.Cases[i].Rounds = append(rep.Cases[i].Rounds, m)
			progress("round %d/%d %-22s %s", r+1, c.Rounds, cases[i].name, m.Result)
		}
	}
	// Connection reuse and ext_authz failures (a check slower than the
	// filter's 0.5 s timeout is a 503, fail closed): say what they were.
	for _, bc := range cases {
		var v []string
		for _, st := range []string{"http.sandbox_egress.downstream_cx_total", "http.sandbox_egress.downstream_rq_total",
			"cluster.kilo_api.upstream_cx_total", "cluster.kilo_api.upstream_rq_total",
			"cluster.extauthz.upstream_cx_total", "cluster.extauthz.upstream_rq_total",
			"http.sandbox_egress.ext_authz.error", "cluster.extauthz.upstream_rq_timeout",
			"cluster.extauthz.health_check.failure"} {
			n, _ := bc.envoy.Stat(st)
			v = append(v, fmt.Sprintf("%s=%d", st, n))
		}
		progress("%s: %s", bc.name, strings.Join(v, " "))
	}
	return rep, nil
}

// capabilityTTL covers the whole run with a margin.
func capabilityTTL(c Config) time.Duration {
	return 10*time.Minute + time.Duration(c.Rounds*3)*(c.Duration+time.Second) + 3*c.Warmup
}

// proxyRequest is one allowed provider request, sent to Envoy as an HTTP/1.1
// proxy (absolute-form target) on the worker's own keep-alive connection.
func proxyRequest(client *http.Client, target, capability string, body []byte) loadgen.Func {
	return func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(body))
		if err != nil {
			return err
		}
		req.Header.Set(benchcmd.CapHeader, capability)
		req.Header.Set("content-type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return err
		}
		if resp.StatusCode != http.StatusOK || string(b) != upstreamReply {
			return fmt.Errorf("%s: %.200q", resp.Status, b)
		}
		return nil
	}
}

// cpuTimes returns the user+system CPU time of each process (0 for pid 0
// or an unreadable one).
func cpuTimes(pids []int) []time.Duration {
	out := make([]time.Duration, len(pids))
	for i, pid := range pids {
		out[i] = benchcmd.CPUTime(pid)
	}
	return out
}

// machineBusy is the CPU time all CPUs spent not idle (and not waiting for
// I/O), from the first line of /proc/stat, in ticks of 10 ms.
func machineBusy() time.Duration {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line) // cpu user nice system idle iowait irq softirq steal …
	if len(f) < 9 || f[0] != "cpu" {
		return 0
	}
	var t int64
	for _, i := range []int{1, 2, 3, 6, 7, 8} {
		n, _ := strconv.ParseInt(f[i], 10, 64)
		t += n
	}
	return time.Duration(t) * 10 * time.Millisecond
}

func sum(ds []time.Duration) time.Duration {
	var t time.Duration
	for _, d := range ds {
		t += d
	}
	return t
}
