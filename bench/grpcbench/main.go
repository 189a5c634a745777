// Command grpcbench measures extauthz's gRPC Check side by side with a
// do-nothing ext_authz server: alternating rounds at a fixed concurrency over
// one HTTP/2 connection per server (as Envoy holds one), allowed
// provider-route requests, extauthz built from the tree and run as users run
// it (its own process, decision logs at the default level, info, to a file).
// It prints requests/s, p50, p99, CPU per request and RSS of each case, how
// many distinct capabilities extauthz received and its RSS (peak and at the
// end), and the ratios; the last line, "ratio", is extauthz's throughput
// over the do-nothing server's (medians of rounds), followed with -flood by
// "flood/repeated".
//
//	cd bench && go run ./grpcbench              # one capability, repeated
//	cd bench && go run ./grpcbench -flood       # and a flood of 1,000,000 distinct capabilities
//	cd bench && go run ./grpcbench -profile openai                     # a profile capability instead of kka1
//	cd bench && go run ./grpcbench -profile openai -reload-every 200ms # and the profiles reloaded under load
//
// (bench/ is a module of its own, so run it from there.)
//
// # Profile capabilities
//
// -profile NAME sends, instead of a kka1 capability, a profile capability
// (eac1.) of a shipped profile where that provider's SDK sends its key:
// openai as authorization: Bearer to POST https://api.openai.com/v1/chat/completions,
// anthropic as x-api-key to /v1/messages, gemini as x-goog-api-key to a
// generateContent call (upstream scheme https, from the context extension
// as the shipped config sets it). extauthz loads the tree's
// profiles/providers.yaml, copied into the work directory, with
// --profiles-file. Every answer is checked: an allow that sets the
// injected header to the capability's secret and removes the profile's
// capability headers, exactly; anything else is a failure, counted, and
// fails the run. The do-nothing server answers that same allow (header,
// value, headers removed, dynamic metadata), so that both answers cost the
// same to encode and send.
//
// -reload-every D also rewrites the profiles file every D during the
// measured rounds: the same profiles with a comment that changes, two
// writes in three by rename (as a ConfigMap update puts a new file in
// place), one in three in place. extauthz polls it every D/4
// (--key-reload-interval), so that each rewrite is reloaded before the
// next. At the end the run reads extauthz_profile_reloads_total from
// extauthz's admin listener (--admin-addr 127.0.0.1:0) and reports the
// rewrites, the reloads, and the checks sent during them with their
// failures; it fails if any check failed or extauthz never reloaded.
//
// A reload may fail: an in-place rewrite truncates the file, then writes
// it, and when the rewriting goroutine is held up between the two for a
// poll interval (a loaded machine, a 10 ms poll) extauthz reads the empty
// file twice, takes it as stable, refuses it ("profiles reload failed;
// keeping the last good profiles" in its log) and keeps the profiles in
// force. That is the server's rule for a bad edit, not a lost check: the
// run reports such reloads and does not fail on them.
//
// # Flood
//
// -flood answers "does a flood of distinct valid capabilities (every one a
// cache miss: decrypted, decoded, cached, evicting another) keep RSS bounded
// and throughput within 0.8 of the repeated case" in the same run as the
// usual comparison. Before the first round the load generator seals a pool
// of -flood-capabilities distinct capabilities (default 1,000,000; on every
// CPU, about 700 bytes each, held as a few large strings) for the
// benchmark's container and targets, each numbered in its session id so
// that they are distinct by construction and all of one length. Then three
// cases run in every round:
//
//   - do-nothing: the do-nothing server, sent the pool's capabilities in order;
//   - extauthz repeated: extauthz, sent one capability (sealed like the
//     pool's, number 0) on every request: the usual case, a cache hit;
//   - extauthz flood: the same extauthz process, sent the pool's
//     capabilities in order, continuing where its last window stopped.
//
// Sending a pooled capability costs the load generator an index, the same as
// the repeated one, so no case pays for sealing and the load generator's CPU
// is the same in all three. Each server has its own place in the pool: each
// capability reaches each server at most once, unless a run sends a server
// more than the pool holds; then it wraps around, and the summary says so
// for that server (on a quiet machine both may wrap; a repeat reaches
// extauthz a whole pool after its first visit, long evicted from its cache).
// The repeated and flood cases share one extauthz process, as one server
// would see both: the flood/repeated ratio then compares the two paths
// through the same process, heap and cache, and the RSS reported is that of
// a process that took the whole flood. The flood's warm-up fills the cache
// (10,000 entries by default), so every measured flood request evicts.
//
// The order of the cases alternates, forward in even rounds and backward in
// odd ones (A B C, C B A), so that a load on this shared machine that rises
// or falls over two rounds weighs on every case alike; every case gets the
// same window. The second-to-last line, "ratio", is extauthz repeated over
// do-nothing, as without -flood; the last, "flood/repeated", is extauthz
// flood over extauthz repeated; both are ratios of medians over rounds (the
// lines before them give each round's ratio and the median of those).
//
// Short windows alternated many times give every case the same share of
// the machine's swings better than long ones: -flood keeps the 5 s window
// and raises the default rounds to 30, enough for a million capabilities to
// reach extauthz at 7,000 requests/s, its flood rate on the shared 2-CPU
// machine under other work (26 rounds at 6,900 fell 85,000 short); a run
// takes about eight minutes, as three cases of equal windows take three
// times the flood's time. When fewer than the pool reached extauthz the
// summary says so, with the -rounds that would have sent it all at the rate
// measured.
//
// The load generator runs in this process; both servers run in processes of
// their own.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/extauthz/extauthz/bench/benchcmd"
	"github.com/extauthz/extauthz/bench/loadgen"
	"github.com/extauthz/extauthz/bench/nopauthz"
)

func main() {
	nopauthz.ServeIfChild() // the do-nothing server, when run re-executes this binary
	os.Exit(realMain(os.Args[1:], os.Stdout, os.Stderr))
}

func realMain(args []string, stdout, stderr io.Writer) int {
	var c Config
	cmd := benchcmd.New("grpcbench", stderr, &c.Run,
		benchcmd.Run{Concurrency: 32, Rounds: 0, Duration: 5 * time.Second, Warmup: 2 * time.Second},
		benchcmd.Help{
			Concurrency: "requests in flight (streams on one HTTP/2 connection per server)",
			Rounds:      fmt.Sprintf("rounds; each measures every case once (default %d, with -flood %d)", defaultRounds, floodRounds),
			Keep:        "key, logs",
		})
	fs := cmd.Flags
	fs.BoolVar(&c.Flood, "flood", false, "add a third case, extauthz sent a distinct valid capability on every request from a pool sealed before the first round, and compare it with the repeated case")
	fs.IntVar(&c.PoolSize, "flood-capabilities", 1_000_000, "with -flood: distinct capabilities to seal before the first round")
	fs.StringVar(&c.Profile, "profile", "", "send a profile capability where the provider's SDK sends its key, instead of kka1: "+
		strings.Join(profileNames(), ", ")+" (extauthz loads profiles/providers.yaml); the run fails if any check fails")
	fs.DurationVar(&c.ReloadEvery, "reload-every", 0, "with -profile: rewrite the profiles file at this interval during the measured rounds, "+
		"so that extauthz reloads it under load; the run fails unless it reloaded and no check failed")
	extra := fs.String("extauthz-flags", "", "extra flags for extauthz serve, space-separated (e.g. --log-level=warn)")
	setup := func() error {
		if c.Rounds == 0 {
			c.Rounds = map[bool]int{false: defaultRounds, true: floodRounds}[c.Flood]
		}
		if err := c.validate(); err != nil {
			return benchcmd.Usage(err)
		}
		c.ExtraFlags = strings.Fields(*extra)
		return nil
	}
	return cmd.Main(args, setup, func(ctx context.Context) error {
		rep, err := run(ctx, c)
		if err != nil {
			return err
		}
		rep.write(stdout)
		return rep.failure()
	})
}

// Defaults of -rounds. The flood's sends a million capabilities to extauthz
// at 7,000 requests/s in 5 s windows.
const (
	defaultRounds = 9
	floodRounds   = 30
)

// write prints the table (per case the median over rounds of each column),
// what extauthz received and held, and the ratios; the last line is the
// main ratio, preceded in flood mode by the flood's.
func (r *Report) write(w io.Writer) {
	c := r.Config
	mib := func(b int64) float64 { return float64(b) / (1 << 20) }
	if c.Flood {
		fmt.Fprintf(w, "gRPC Check, allowed provider_model requests; %d in flight on one HTTP/2 connection per server\n", c.Concurrency)
		fmt.Fprintf(w, "flood: %s distinct valid capabilities sealed before the first round in %v on %d CPUs (%.0f MiB in the load generator)\n",
			thousands(int64(c.PoolSize)), r.Seal.Round(10*time.Millisecond), runtime.GOMAXPROCS(0), mib(r.PoolBytes))
		fmt.Fprintln(w, "cases: do-nothing and extauthz flood are each sent the pool's capabilities in order; extauthz repeated, one capability (same extauthz process)")
	} else if pc, ok := profileCalls[c.Profile]; ok {
		fmt.Fprintf(w, "gRPC Check, allowed %s requests (POST https://%s%s) with a capability of profile %s in %s, one capability, repeated; %d in flight on one HTTP/2 connection per server\n",
			pc.class, pc.host, pc.path, c.Profile, pc.capHeader, c.Concurrency)
		fmt.Fprintf(w, "every answer checked: %s set to the secret, %v removed; the do-nothing server answers the same\n", pc.inject, pc.remove)
	} else {
		fmt.Fprintf(w, "gRPC Check, allowed provider_model requests, one capability, repeated; %d in flight on one HTTP/2 connection per server\n", c.Concurrency)
	}
	fmt.Fprintf(w, "%d rounds x %v per case, order alternating, after %v warm-up each; extauthz logs at info unless -extauthz-flags says otherwise\n",
		c.Rounds, c.Duration, c.Warmup)
	fmt.Fprintf(w, "%d CPUs (%s), %s; medians over rounds\n\n", runtime.NumCPU(), benchcmd.CPUModel(), runtime.Version())
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "case\treq/s\tp50\tp99\tserver CPU/req\tRSS end\tRSS peak\terrors\t")
	for _, cr := range r.Cases {
		ms := cr.Rounds
		errs := 0
		for _, m := range ms {
			errs += m.Errors
		}
		fmt.Fprintf(tw, "%s\t%.0f\t%v\t%v\t%.1f µs\t%.1f MiB\t%.1f MiB\t%d\t\n", cr.Name,
			loadgen.Median(ms, func(m Measurement) float64 { return m.RPS() }),
			benchcmd.Round(loadgen.Median(ms, func(m Measurement) time.Duration { return m.Percentile(0.50) })),
			benchcmd.Round(loadgen.Median(ms, func(m Measurement) time.Duration { return m.Percentile(0.99) })),
			loadgen.Median(ms, func(m Measurement) float64 { return m.CPUPerRequest() }),
			mib(ms[len(ms)-1].RSS), mib(cr.PeakRSS), errs)
	}
	tw.Flush()
	for _, cr := range r.Cases {
		for _, m := range cr.Rounds {
			if m.FirstErr != nil {
				fmt.Fprintf(w, "%s: first failure: %v\n", cr.Name, m.FirstErr)
				break
			}
		}
	}
	fmt.Fprintln(w)
	if c.Flood {
		fmt.Fprintf(w, "extauthz received %s distinct capabilities over the run, warm-up included (%s from the pool, the repeated one)\n",
			thousands(r.ExtDistinct()), thousands(min(r.ExtPoolSent, int64(c.PoolSize))))
		fmt.Fprintf(w, "pool of %s: extauthz was sent %s, do-nothing %s\n", thousands(int64(c.PoolSize)),
			r.poolUse(r.ExtPoolSent), r.poolUse(r.NopPoolSent))
		if short := r.ExtPoolSent < int64(c.PoolSize); short && r.ExtPoolSent > 0 {
			// Rounds for the whole pool at this run's rate, rounded up to an
			// even number so that the order stays balanced.
			n := (int64(c.Rounds)*int64(c.PoolSize) + r.ExtPoolSent - 1) / r.ExtPoolSent
			fmt.Fprintf(w, "not the whole pool reached extauthz: at this rate -rounds %d would send it all\n", n+n%2)
		}
	} else {
		fmt.Fprintf(w, "extauthz received %s distinct capability (sent %s times)\n", thousands(r.ExtDistinct()), thousands(r.ExtRepeatedSent))
	}
	if c.Profile != "" {
		for i, cr := range r.Cases {
			fmt.Fprintf(w, "%s: %s checks over the run, warm-up included, %s failed\n", cr.Name, thousands(r.Checks[i]), thousands(r.Failed[i]))
		}
	}
	if rl := r.Reload; rl != nil {
		fmt.Fprintf(w, "profiles file rewritten every %v during the measured rounds: %d times (%d by rename, %d in place)\n",
			c.ReloadEvery, rl.Renames+rl.InPlace, rl.Renames, rl.InPlace)
		fmt.Fprintf(w, "extauthz reloaded it %d times (%s{result=\"ok\"}), refused %d reloads (result=\"error\", the last good profiles kept)\n",
			rl.OK, reloadCounter, rl.Errors)
		for i, cr := range r.Cases {
			fmt.Fprintf(w, "during the reloads, %s: %s checks, %s failed\n", cr.Name, thousands(rl.Checks[i]), thousands(rl.Failed[i]))
		}
	}
	fmt.Fprintf(w, "extauthz RSS: peak (VmHWM) %.1f MiB, at the end %.1f MiB\n", mib(r.ExtPeakRSS), mib(r.ExtRSS))
	rps := func(m Measurement) float64 { return m.RPS() }
	p99 := func(m Measurement) float64 { return float64(m.Percentile(0.99)) }
	cpu := func(m Measurement) float64 { return m.CPUPerRequest() }
	name := r.Cases[caseRepeated].Name
	fmt.Fprintf(w, "%s / do-nothing: throughput %.3f (goal >= 0.95), p99 %.3f (goal <= 1.1), p50 %.3f", name,
		r.Ratio(), r.ratioOf(caseRepeated, caseNop, p99),
		r.ratioOf(caseRepeated, caseNop, func(m Measurement) float64 { return float64(m.Percentile(0.50)) }))
	if !c.Flood { // in a flood the process's RSS is the flood's
		fmt.Fprintf(w, ", RSS %.2f", float64(r.Cases[caseRepeated].PeakRSS)/float64(max(r.Cases[caseNop].PeakRSS, 1)))
	}
	fmt.Fprintln(w)
	if x := r.ratioOf(caseNop, caseRepeated, cpu); x > 0 {
		fmt.Fprintf(w, "do-nothing / %s server CPU per request: %.3f (steadier than throughput on a shared machine)\n", name, x)
	}
	if c.Flood {
		fmt.Fprintf(w, "extauthz flood / repeated: throughput %.3f (goal >= 0.8), p99 %.3f, server CPU per request %.3f\n",
			r.FloodRatio(), r.ratioOf(caseFlood, caseRepeated, p99), r.ratioOf(caseFlood, caseRepeated, cpu))
		fmt.Fprintf(w, "extauthz flood / do-nothing: throughput %.3f\n", r.ratioOf(caseFlood, caseNop, rps))
	}
	perRound := func(label string, xs []float64) {
		fmt.Fprintf(w, "%s throughput in each round (median %.3f):", label, loadgen.Median(xs, func(x float64) float64 { return x }))
		for _, x := range xs {
			fmt.Fprintf(w, " %.3f", x)
		}
		fmt.Fprintln(w)
	}
	perRound(name+" / do-nothing", r.RoundRatios(caseRepeated, caseNop))
	if c.Flood {
		perRound("extauthz flood / repeated", r.RoundRatios(caseFlood, caseRepeated))
	}
	fmt.Fprintf(w, "ratio %.3f\n", r.Ratio())
	if c.Flood {
		fmt.Fprintf(w, "flood/repeated %.3f\n", r.FloodRatio())
	}
}

// failure is why a run failed its own checks, nil if it did not: with
// -profile, any check that failed; with -reload-every also a rewrite that
// failed or no reload at all (a refused reload keeps the profiles in
// force: reported, not a failure). A kka1 run reports its errors in the
// table and does not fail on them.
func (r *Report) failure() error {
	if r.Config.Profile == "" {
		return nil
	}
	var failed, checks int64
	for i := range r.Failed {
		failed, checks = failed+r.Failed[i], checks+r.Checks[i]
	}
	rl := r.Reload
	switch {
	case failed > 0:
		return fmt.Errorf("%d of %d checks failed", failed, checks)
	case rl == nil:
		return nil
	case rl.Err != nil:
		return fmt.Errorf("rewriting the profiles file: %w", rl.Err)
	case rl.OK == 0:
		return errors.New("extauthz never reloaded the profiles file: the run proves nothing about reloads")
	}
	return nil
}

// poolUse says how sent pool capabilities used the pool: each once, or
// wrapping around.
func (r *Report) poolUse(sent int64) string {
	if extra := sent - int64(r.Config.PoolSize); extra > 0 {
		return fmt.Sprintf("%s (wrapped around: %s of them repeats)", thousands(sent), thousands(extra))
	}
	return thousands(sent) + " (each once)"
}

// Ratio is extauthz's median throughput (repeated capability) over the
// do-nothing server's.
func (r *Report) Ratio() float64 {
	return r.ratioOf(caseRepeated, caseNop, func(m Measurement) float64 { return m.RPS() })
}

// FloodRatio is extauthz's median throughput in the flood over its median
// throughput with the repeated capability; 0 without a flood.
func (r *Report) FloodRatio() float64 {
	if len(r.Cases) <= caseFlood {
		return 0
	}
	return r.ratioOf(caseFlood, caseRepeated, func(m Measurement) float64 { return m.RPS() })
}

// ratioOf is case a's median of f over case b's.
func (r *Report) ratioOf(a, b int, f func(Measurement) float64) float64 {
	if d := loadgen.Median(r.Cases[b].Rounds, f); d > 0 {
		return loadgen.Median(r.Cases[a].Rounds, f) / d
	}
	return 0
}

// RoundRatios is case a's throughput over case b's in each round (measured
// seconds apart).
func (r *Report) RoundRatios(a, b int) []float64 {
	var out []float64
	ra, rb := r.Cases[a].Rounds, r.Cases[b].Rounds
	for i := range min(len(ra), len(rb)) {
		if d := rb[i].RPS(); d > 0 {
			out = append(out, ra[i].RPS()/d)
		}
	}
	return out
}

// thousands formats n with commas: 1,000,000.
func thousands(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	if neg {
		b.WriteByte('-')
	}
	for i, d := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(d)
	}
	return b.String()
}
