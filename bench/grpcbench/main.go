// Command grpcbench measures extauthz's gRPC Check side by side with a
// do-nothing ext_authz server: alternating rounds of both at a fixed
// concurrency over one HTTP/2 connection each (as Envoy holds one), allowed
// provider-route requests, extauthz built from the tree and run as users run
// it (its own process, decision logs at the default level, info, to a file).
// It prints requests/s, p50, p99, CPU per request and RSS of each server and
// their ratio; the last line is extauthz's throughput over the do-nothing
// server's (median of rounds).
//
//	go run ./bench/grpcbench              # one capability, repeated
//	go run ./bench/grpcbench -flood       # a fresh capability on every request
//
// The load generator runs in this process; both servers run in processes of
// their own.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/extauthz/extauthz/bench/loadgen"
	"github.com/extauthz/extauthz/bench/nopauthz"
)

func main() {
	nopauthz.ServeIfChild() // the do-nothing server, when run re-executes this binary
	os.Exit(realMain(os.Args[1:], os.Stdout, os.Stderr))
}

func realMain(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("grpcbench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	c := Config{Progress: stderr}
	fs.IntVar(&c.Concurrency, "concurrency", 32, "requests in flight (streams on one HTTP/2 connection per server)")
	fs.IntVar(&c.Rounds, "rounds", 9, "rounds; each measures both servers once")
	fs.DurationVar(&c.Duration, "duration", 5*time.Second, "measured time per server per round")
	fs.DurationVar(&c.Warmup, "warmup", 2*time.Second, "unmeasured load per server before the first round")
	fs.BoolVar(&c.Flood, "flood", false, "send a fresh, distinct valid capability on every request (sealed by the load generator for both servers)")
	extra := fs.String("extauthz-flags", "", "extra flags for extauthz serve, space-separated (e.g. --log-level=warn)")
	keep := fs.Bool("keep", false, "keep the work directory (key, logs) and print its path")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	c.ExtraFlags = strings.Fields(*extra)
	var err error
	if c.Dir, err = os.MkdirTemp("", "grpcbench-"); err != nil {
		fmt.Fprintln(stderr, "grpcbench:", err)
		return 1
	}
	if *keep {
		fmt.Fprintln(stderr, "work directory:", c.Dir)
	} else {
		defer os.RemoveAll(c.Dir)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	rep, err := run(ctx, c)
	if err != nil {
		fmt.Fprintln(stderr, "grpcbench:", err)
		return 1
	}
	rep.write(stdout)
	return 0
}

// write prints the table: per server the median over rounds of each column.
func (r *Report) write(w io.Writer) {
	c := r.Config
	mode := "one capability, repeated"
	if c.Flood {
		mode = "a fresh capability on every request"
	}
	fmt.Fprintf(w, "gRPC Check, allowed provider_model requests, %s; %d in flight on one HTTP/2 connection per server\n", mode, c.Concurrency)
	fmt.Fprintf(w, "%d rounds x %v per server, alternating, after %v warm-up each; extauthz logs at info unless -extauthz-flags says otherwise\n",
		c.Rounds, c.Duration, c.Warmup)
	fmt.Fprintf(w, "%d CPUs (%s), %s; medians over rounds\n\n", runtime.NumCPU(), cpuModel(), runtime.Version())
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "server\treq/s\tp50\tp99\tserver CPU/req\tRSS end\tRSS peak\terrors\t")
	for _, s := range r.Servers {
		ms := s.Rounds
		errs := 0
		for _, m := range ms {
			errs += m.Errors
		}
		fmt.Fprintf(tw, "%s\t%.0f\t%v\t%v\t%.1f µs\t%.1f MiB\t%.1f MiB\t%d\t\n", s.Name,
			loadgen.Median(ms, func(m Measurement) float64 { return m.RPS() }),
			round(loadgen.Median(ms, func(m Measurement) time.Duration { return m.Percentile(0.50) })),
			round(loadgen.Median(ms, func(m Measurement) time.Duration { return m.Percentile(0.99) })),
			loadgen.Median(ms, func(m Measurement) float64 { return m.CPUPerRequest() }),
			float64(ms[len(ms)-1].RSS)/(1<<20), float64(s.PeakRSS)/(1<<20), errs)
	}
	tw.Flush()
	for _, s := range r.Servers {
		for _, m := range s.Rounds {
			if m.FirstErr != nil {
				fmt.Fprintf(w, "%s: first failure: %v\n", s.Name, m.FirstErr)
				break
			}
		}
	}
	if c.Flood {
		fmt.Fprintf(w, "distinct capabilities sent to extauthz: %d\n", r.Distinct)
	}
	fmt.Fprintf(w, "\nextauthz / do-nothing: throughput %.3f (goal >= 0.95), p99 %.3f (goal <= 1.1), p50 %.3f, RSS %.2f\n",
		r.Ratio(), r.Ratio99(), r.ratioOf(func(m Measurement) float64 { return float64(m.Percentile(0.50)) }),
		float64(r.Servers[1].PeakRSS)/float64(max(r.Servers[0].PeakRSS, 1)))
	cpu := func(i int) float64 {
		return loadgen.Median(r.Servers[i].Rounds, func(m Measurement) float64 { return m.CPUPerRequest() })
	}
	if c1 := cpu(1); c1 > 0 {
		fmt.Fprintf(w, "do-nothing / extauthz server CPU per request: %.3f (steadier than throughput on a shared machine)\n", cpu(0)/c1)
	}
	fmt.Fprint(w, "extauthz / do-nothing throughput in each round:")
	for _, x := range r.RoundRatios() {
		fmt.Fprintf(w, " %.3f", x)
	}
	fmt.Fprintf(w, "\nratio %.3f\n", r.Ratio())
}

// Ratio is extauthz's median throughput over the do-nothing server's.
func (r *Report) Ratio() float64 { return r.ratioOf(func(m Measurement) float64 { return m.RPS() }) }

// Ratio99 is extauthz's median p99 over the do-nothing server's.
func (r *Report) Ratio99() float64 {
	return r.ratioOf(func(m Measurement) float64 { return float64(m.Percentile(0.99)) })
}

func (r *Report) ratioOf(f func(Measurement) float64) float64 {
	if d := loadgen.Median(r.Servers[0].Rounds, f); d > 0 {
		return loadgen.Median(r.Servers[1].Rounds, f) / d
	}
	return 0
}

// RoundRatios is extauthz's throughput over the do-nothing server's in each
// round (measured seconds apart).
func (r *Report) RoundRatios() []float64 {
	var out []float64
	nop, ext := r.Servers[0].Rounds, r.Servers[1].Rounds
	for i := range min(len(nop), len(ext)) {
		if d := nop[i].RPS(); d > 0 {
			out = append(out, ext[i].RPS()/d)
		}
	}
	return out
}

func round(d time.Duration) time.Duration {
	if d > time.Millisecond {
		return d.Round(10 * time.Microsecond)
	}
	return d.Round(time.Microsecond)
}

func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return "unknown CPU"
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown CPU"
}
