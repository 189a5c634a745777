// Command envoybench measures extauthz through a real Envoy: requests per
// second and p50/p99 latency at a fixed concurrency for the shipped
// deploy/envoy/envoy.yaml with no ext_authz filter, with a do-nothing ext_authz
// server, and with extauthz built from the tree, in alternating rounds of one
// run. The last line is extauthz's throughput as a fraction of the
// do-nothing server's.
//
//	cd bench && go run ./envoybench
//
// (bench/ is a module of its own, so run it from there.)
//
// Envoy is found like the tests find it ($ENVOY_BIN, else envoy on PATH) and
// runs with --concurrency 1. What is substituted in the shipped config, and
// why the baseline removes a filter, is in BENCHMARKS.md.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/extauthz/extauthz/bench/benchcmd"
	"github.com/extauthz/extauthz/bench/loadgen"
	"github.com/extauthz/extauthz/bench/nopauthz"
	"github.com/extauthz/extauthz/internal/testutil/envoyproc"
)

func main() {
	nopauthz.ServeIfChild() // the do-nothing server, when run re-executes this binary
	os.Exit(realMain(os.Args[1:], os.Stdout, os.Stderr))
}

func realMain(args []string, stdout, stderr io.Writer) int {
	var c Config
	cmd := benchcmd.New("envoybench", stderr, &c.Run,
		benchcmd.Run{Concurrency: 32, Rounds: 9, Duration: 6 * time.Second, Warmup: 3 * time.Second},
		benchcmd.Help{
			Concurrency: "connections to Envoy, one request in flight on each",
			Rounds:      "rounds; each measures every case once",
			Keep:        "configs and logs",
		})
	fs := cmd.Flags
	fs.BoolVar(&c.BareNop, "bare-nop", false, "do-nothing server answers a bare OK instead of an allow shaped like extauthz's")
	fs.StringVar(&c.EnvoyConfig, "envoy-config", "", "Envoy config to measure (default: the repository's deploy/envoy/envoy.yaml)")
	setup := func() error {
		var err error
		if c.EnvoyBin, err = envoyproc.Find(); err != nil {
			return err
		}
		if c.EnvoyConfig == "" {
			c.EnvoyConfig, err = repoFile("deploy/envoy/envoy.yaml")
		}
		return err
	}
	return cmd.Main(args, setup, func(ctx context.Context) error {
		rep, err := run(ctx, c)
		if err != nil {
			return err
		}
		rep.write(stdout, envoyVersion(c.EnvoyBin))
		return nil
	})
}

// write prints the table: per case the median over rounds of each column.
func (r *Report) write(w io.Writer, envoy string) {
	c := r.Config
	nop := "an allow shaped like extauthz's"
	if c.BareNop {
		nop = "a bare OK"
	}
	fmt.Fprintf(w, "Envoy %s (--concurrency 1), shipped deploy/envoy/envoy.yaml; %d connections (HTTP/1.1 keep-alive, POST %s via the proxy)\n",
		envoy, c.Concurrency, benchcmd.RequestPath)
	fmt.Fprintf(w, "%d rounds x %v per case, alternating, after %v warm-up per case; do-nothing server answers %s\n",
		c.Rounds, c.Duration, c.Warmup, nop)
	fmt.Fprintf(w, "%d CPUs (%s), GOMAXPROCS %d, %s; medians over rounds\n\n", runtime.NumCPU(), benchcmd.CPUModel(), runtime.GOMAXPROCS(0), runtime.Version())
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "case\treq/s\tp50\tp99\tEnvoy CPU/req\tauthz CPU/req\tbench CPU/req\ttotal CPU/req\tother load\t")
	perReq := func(d time.Duration, m Measurement) float64 {
		ok := m.Requests - m.Errors
		if ok == 0 {
			return 0
		}
		return float64(d.Microseconds()) / float64(ok)
	}
	for _, cr := range r.Cases {
		ms := cr.Rounds
		authz := "-"
		if cr.Name != caseNone {
			authz = fmt.Sprintf("%.0f µs", loadgen.Median(ms, func(m Measurement) float64 { return perReq(m.AuthzCPU, m) }))
		}
		fmt.Fprintf(tw, "%s\t%.0f\t%v\t%v\t%.0f µs\t%s\t%.0f µs\t%.0f µs\t%.2f CPU\t\n", cr.Name,
			loadgen.Median(ms, func(m Measurement) float64 { return m.RPS() }),
			benchcmd.Round(loadgen.Median(ms, func(m Measurement) time.Duration { return m.Percentile(0.50) })),
			benchcmd.Round(loadgen.Median(ms, func(m Measurement) time.Duration { return m.Percentile(0.99) })),
			loadgen.Median(ms, func(m Measurement) float64 { return perReq(m.EnvoyCPU, m) }),
			authz,
			loadgen.Median(ms, func(m Measurement) float64 { return perReq(m.SelfCPU, m) }),
			r.CPUPerRequest(cr.Name),
			loadgen.Median(ms, func(m Measurement) float64 { return m.OtherCPU.Seconds() / m.Elapsed.Seconds() }))
	}
	tw.Flush()
	for _, cr := range r.Cases {
		n, total, first := 0, 0, error(nil)
		for _, m := range cr.Rounds {
			n, total = n+m.Errors, total+m.Requests
			if first == nil {
				first = m.FirstErr
			}
		}
		if n > 0 {
			fmt.Fprintf(w, "%s: %d of %d requests failed (not counted in req/s or latency), first: %v\n", cr.Name, n, total, first)
		}
	}
	fmt.Fprintln(w, "(CPU/req: CPU time of that process over successful requests; bench: the load generator and the upstream;")
	fmt.Fprintln(w, " other load: CPUs busy outside the benchmark's processes, which a quiet machine keeps near 0)")
	fmt.Fprintf(w, "\nextauthz / do-nothing throughput: %.3f (goal >= 0.95); no ext_authz / do-nothing: %.3f\n",
		r.Ratio(caseExtauth, caseNop), r.Ratio(caseNone, caseNop))
	fmt.Fprintf(w, "do-nothing / extauthz total CPU per request: %.3f (the throughput ratio if CPU time were the only limit)\n",
		r.CPUPerRequest(caseNop)/r.CPUPerRequest(caseExtauth))
	fmt.Fprint(w, "extauthz / do-nothing in each round:")
	for _, x := range r.RoundRatios(caseExtauth, caseNop) {
		fmt.Fprintf(w, " %.3f", x)
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "ratio %.3f\n", r.Ratio(caseExtauth, caseNop))
}

// Ratio is the median throughput of case a over that of case b.
func (r *Report) Ratio(a, b string) float64 {
	rps := func(name string) float64 {
		for _, cr := range r.Cases {
			if cr.Name == name {
				return loadgen.Median(cr.Rounds, func(m Measurement) float64 { return m.RPS() })
			}
		}
		return 0
	}
	if d := rps(b); d > 0 {
		return rps(a) / d
	}
	return 0
}

// CPUPerRequest is the median over rounds of the CPU time Envoy, the
// ext_authz server and the benchmark process spent per successful request,
// in µs.
func (r *Report) CPUPerRequest(name string) float64 {
	for _, cr := range r.Cases {
		if cr.Name == name {
			return loadgen.Median(cr.Rounds, func(m Measurement) float64 {
				ok := m.Requests - m.Errors
				if ok == 0 {
					return 0
				}
				return float64((m.EnvoyCPU + m.AuthzCPU + m.SelfCPU).Microseconds()) / float64(ok)
			})
		}
	}
	return 0
}

// RoundRatios is the throughput of case a over that of case b in each round
// (measured a few seconds apart).
func (r *Report) RoundRatios(a, b string) []float64 {
	var ra, rb []Measurement
	for _, cr := range r.Cases {
		switch cr.Name {
		case a:
			ra = cr.Rounds
		case b:
			rb = cr.Rounds
		}
	}
	var out []float64
	for i := range min(len(ra), len(rb)) {
		if d := rb[i].RPS(); d > 0 {
			out = append(out, ra[i].RPS()/d)
		}
	}
	return out
}

func envoyVersion(bin string) string {
	out, err := exec.Command(bin, "--version").Output()
	if err != nil {
		return "(unknown version)"
	}
	// "envoy  version: <sha>/1.40.0/Clean/RELEASE/BoringSSL"
	for f := range strings.SplitSeq(string(out), "/") {
		if strings.Count(f, ".") == 2 && f[0] >= '0' && f[0] <= '9' {
			return f
		}
	}
	return strings.TrimSpace(string(out))
}
