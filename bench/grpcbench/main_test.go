package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/extauthz/extauthz/bench/benchcmd"
	"github.com/extauthz/extauthz/bench/extauthzproc"
	"github.com/extauthz/extauthz/bench/nopauthz"
)

// TestMain lets the test binary stand in for the benchmark binary when run
// re-executes itself as the do-nothing server.
func TestMain(m *testing.M) {
	nopauthz.ServeIfChild()
	os.Exit(m.Run())
}

// TestRun runs the benchmark for a moment, in both modes, so that `go run
// ./grpcbench` (in bench/) cannot rot: every request in every case is allowed,
// throughput is nonzero, extauthz logged a decision for every request it was
// sent and saw as many distinct capabilities as the report says, and the
// last lines are the ratios. The flood runs with a pool that the run may or
// may not exhaust and with one it certainly does (the warm-up alone sends
// more), so that both summaries are exercised. The profile run rewrites the
// profiles file every 40 ms: extauthz reloads it, and every check is still
// the allow its profile injects.
func TestRun(t *testing.T) {
	bin, err := extauthzproc.Build(t.TempDir()) // once: linking takes seconds
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		flood   bool
		pool    int
		profile string
	}{
		{"repeated", false, 0, ""},
		{"flood", true, 2000, ""},
		{"flood wrapped", true, 50, ""},
		{"profile reloaded", false, 0, "openai"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var progress bytes.Buffer
			c := Config{Run: benchcmd.Run{Dir: t.TempDir(), Concurrency: 4, Rounds: 2, Duration: 300 * time.Millisecond,
				Warmup: 50 * time.Millisecond, Progress: &progress}, Bin: bin, Flood: tc.flood, PoolSize: tc.pool}
			wantClass := "provider_model"
			if tc.profile != "" {
				c.Profile, c.ReloadEvery = tc.profile, 40*time.Millisecond
				wantClass = profileCalls[tc.profile].class
			}
			if tc.flood {
				c.ExtraFlags = []string{"--log-level=debug"} // decisions name the capability's session
			}
			rep, err := run(context.Background(), c)
			if err != nil {
				t.Fatalf("run: %v\n%s", err, progress.String())
			}
			if want := map[bool]int{false: 2, true: 3}[tc.flood]; len(rep.Cases) != want {
				t.Fatalf("%d cases; want %d", len(rep.Cases), want)
			}
			for _, cr := range rep.Cases {
				if len(cr.Rounds) != c.Rounds || cr.PeakRSS <= 0 {
					t.Errorf("%s: %d rounds, peak RSS %d; want %d rounds and an RSS", cr.Name, len(cr.Rounds), cr.PeakRSS, c.Rounds)
				}
				for _, m := range cr.Rounds {
					if m.Errors != 0 || m.RPS() <= 0 {
						t.Errorf("%s: %v (first error %v); want no errors and nonzero throughput", cr.Name, m.Result, m.FirstErr)
					}
				}
			}
			if rep.ExtPeakRSS <= 0 || rep.ExtRSS <= 0 {
				t.Errorf("extauthz RSS end %d, peak %d; want both", rep.ExtRSS, rep.ExtPeakRSS)
			}

			if err := rep.failure(); err != nil {
				t.Errorf("failure() = %v", err)
			}
			if tc.profile != "" {
				rl := rep.Reload
				if rl == nil || rl.OK < 2 || rl.Err != nil || rl.InPlace < 1 || rl.Checks[caseRepeated] == 0 || rl.Failed[caseRepeated] != 0 {
					t.Errorf("reloads %+v; want several, one at least in place, checks during them, none failed", rl)
				}
				if n := len(logLines(t, c.Dir+"/extauthz.log", "profiles reloaded")); rl != nil && int64(n) < rl.OK {
					t.Errorf("extauthz logged %d reloads; its counter says %d", n, rl.OK)
				}
				// A refused reload can only be an in-place rewrite read
				// between its truncation and its write, twice.
				refused := logLines(t, c.Dir+"/extauthz.log", "profiles reload failed; keeping the last good profiles")
				for _, l := range refused {
					if !strings.Contains(l, "profiles.yaml: empty") {
						t.Errorf("extauthz: %s", l)
					}
				}
				if rl != nil && int64(len(refused)) < rl.Errors {
					t.Errorf("extauthz logged %d refused reloads; its counter says %d", len(refused), rl.Errors)
				}
			}

			decisions, sessions := readDecisions(t, c.Dir+"/extauthz.log", wantClass)
			if sent := rep.ExtPoolSent + rep.ExtRepeatedSent; int64(decisions) != sent {
				t.Errorf("extauthz logged %d decisions; sent %d requests", decisions, sent)
			}
			wantDistinct := int64(1)
			if tc.flood {
				t.Logf("pool capabilities sent of %d: extauthz %d, do-nothing %d", tc.pool, rep.ExtPoolSent, rep.NopPoolSent)
				wantDistinct = min(rep.ExtPoolSent, int64(tc.pool)) + 1
				if wrapped := rep.ExtPoolSent > int64(tc.pool) || rep.NopPoolSent > int64(tc.pool); rep.Wrapped() != wrapped {
					t.Errorf("Wrapped() = %v with %d and %d sent of %d", rep.Wrapped(), rep.ExtPoolSent, rep.NopPoolSent, tc.pool)
				}
				if tc.pool == 50 && !rep.Wrapped() {
					t.Errorf("a pool of 50: want it to wrap (sent %d)", rep.ExtPoolSent)
				}
				if got := int64(len(sessions)); got != wantDistinct {
					t.Errorf("extauthz's decisions name %d distinct sessions; want %d", got, wantDistinct)
				}
			}
			if got := rep.ExtDistinct(); got != wantDistinct || got < 1 {
				t.Errorf("ExtDistinct() = %d; want %d", got, wantDistinct)
			}

			var out bytes.Buffer
			rep.write(&out)
			text := out.String()
			lines := strings.Split(strings.TrimSpace(text), "\n")
			last := lines[len(lines)-1]
			if tc.flood {
				if !strings.HasPrefix(last, "flood/repeated ") || rep.FloodRatio() <= 0 {
					t.Errorf("last line %q, flood ratio %v; want \"flood/repeated N\" with N > 0\n%s", last, rep.FloodRatio(), text)
				}
				last = lines[len(lines)-2]
				if got := strings.Contains(text, "wrapped around"); got != rep.Wrapped() {
					t.Errorf("summary says wrapped: %v; Wrapped() = %v\n%s", got, rep.Wrapped(), text)
				}
			}
			if !strings.HasPrefix(last, "ratio ") || rep.Ratio() <= 0 {
				t.Errorf("ratio line %q, ratio %v; want \"ratio N\" with N > 0\n%s", last, rep.Ratio(), text)
			}
			wants := []string{"extauthz received " + thousands(wantDistinct) + " distinct"}
			if tc.profile != "" {
				wants = append(wants, "extauthz reloaded it", "reloads (result=\"error\", the last good profiles kept)", "during the reloads, extauthz "+tc.profile)
			}
			for _, want := range wants {
				if !strings.Contains(text, want) {
					t.Errorf("summary lacks %q\n%s", want, text)
				}
			}
		})
	}
}

// readDecisions counts the decision lines of an extauthz log, checks that
// every one allowed a request of route class class, and collects the
// sessions they name (logged at debug only).
func readDecisions(t *testing.T, file, class string) (n int, sessions map[string]bool) {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sessions = map[string]bool{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var e struct {
			Message    string `json:"message"`
			Decision   string `json:"decision"`
			RouteClass string `json:"route_class"`
			Session    string `json:"kilo_session_id"`
		}
		if json.Unmarshal(sc.Bytes(), &e) != nil || e.Message != "decision" {
			continue
		}
		n++
		if e.RouteClass != class || e.Decision != "allow" {
			t.Errorf("decision %s; want an allowed %s request", sc.Bytes(), class)
		}
		if e.Session != "" {
			sessions[e.Session] = true
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if n == 0 {
		t.Errorf("extauthz logged no decision at the default level")
	}
	return n, sessions
}

// logLines are the log lines of file with message msg.
func logLines(t *testing.T, file, msg string) []string {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var e struct {
			Message string `json:"message"`
		}
		if json.Unmarshal(sc.Bytes(), &e) == nil && e.Message == msg {
			lines = append(lines, sc.Text())
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return lines
}

func TestThousands(t *testing.T) {
	for _, tc := range []struct {
		in   int64
		want string
	}{{0, "0"}, {999, "999"}, {1000, "1,000"}, {1000000, "1,000,000"}, {-12345, "-12,345"}} {
		if got := thousands(tc.in); got != tc.want {
			t.Errorf("thousands(%d) = %q; want %q", tc.in, got, tc.want)
		}
	}
}

func TestOrder(t *testing.T) {
	for _, tc := range []struct {
		n, r int
		want string
	}{{2, 0, "[0 1]"}, {2, 1, "[1 0]"}, {3, 0, "[0 1 2]"}, {3, 1, "[2 1 0]"}, {3, 2, "[0 1 2]"}} {
		if got := fmt.Sprint(order(tc.n, tc.r)); got != tc.want {
			t.Errorf("order(%d, %d) = %s; want %s", tc.n, tc.r, got, tc.want)
		}
	}
}
