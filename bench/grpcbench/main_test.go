package main

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/extauthz/extauthz/bench/nopauthz"
)

// TestMain lets the test binary stand in for the benchmark binary when run
// re-executes itself as the do-nothing server.
func TestMain(m *testing.M) {
	nopauthz.ServeIfChild()
	os.Exit(m.Run())
}

// TestRun runs the benchmark for a moment, in both modes, so that `go run
// ./bench/grpcbench` cannot rot: every request to both servers is allowed,
// throughput is nonzero, extauthz logged its decisions at the default level,
// and the last line is the ratio.
func TestRun(t *testing.T) {
	for _, flood := range []bool{false, true} {
		t.Run(map[bool]string{false: "repeated", true: "flood"}[flood], func(t *testing.T) {
			var progress bytes.Buffer
			c := Config{Dir: t.TempDir(), Concurrency: 4, Rounds: 2, Duration: 200 * time.Millisecond,
				Warmup: 50 * time.Millisecond, Flood: flood, Progress: &progress}
			rep, err := run(context.Background(), c)
			if err != nil {
				t.Fatalf("run: %v\n%s", err, progress.String())
			}
			for _, s := range rep.Servers {
				if len(s.Rounds) != c.Rounds || s.PeakRSS <= 0 {
					t.Errorf("%s: %d rounds, peak RSS %d; want %d rounds and an RSS", s.Name, len(s.Rounds), s.PeakRSS, c.Rounds)
				}
				for _, m := range s.Rounds {
					if m.Errors != 0 || m.RPS() <= 0 {
						t.Errorf("%s: %v (first error %v); want no errors and nonzero throughput", s.Name, m.Result, m.FirstErr)
					}
				}
			}
			logged, err := os.ReadFile(c.Dir + "/extauthz.log")
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Contains(logged, []byte(`"message":"decision"`)) || !bytes.Contains(logged, []byte(`"provider_model"`)) {
				t.Errorf("extauthz logged no provider_model decision at the default level:\n%.2000s", logged)
			}
			var out bytes.Buffer
			rep.write(&out)
			lines := strings.Split(strings.TrimSpace(out.String()), "\n")
			if last := lines[len(lines)-1]; !strings.HasPrefix(last, "ratio ") || rep.Ratio() <= 0 {
				t.Errorf("last line %q, ratio %v; want \"ratio N\" with N > 0\n%s", last, rep.Ratio(), out.String())
			}
		})
	}
}
