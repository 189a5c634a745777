package main

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/extauthz/extauthz/bench/benchcmd"
	"github.com/extauthz/extauthz/bench/nopauthz"
	"github.com/extauthz/extauthz/internal/testutil/envoyproc"
)

// TestMain lets the test binary stand in for the benchmark binary when run
// re-executes itself as the do-nothing server.
func TestMain(m *testing.M) {
	nopauthz.ServeIfChild()
	os.Exit(m.Run())
}

// TestRun runs the benchmark for a moment so that `go run ./envoybench` (in
// bench/) cannot rot: every case through the shipped config answers only
// 200s (run fails on any other status), with nonzero throughput, and
// extauthz logged its decisions.
func TestRun(t *testing.T) {
	bin := envoyproc.Require(t)
	cfgFile, err := repoFile("deploy/envoy/envoy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var progress bytes.Buffer
	c := Config{
		EnvoyBin: bin, EnvoyConfig: cfgFile,
		Run: benchcmd.Run{Dir: t.TempDir(), Concurrency: 4, Rounds: 1, Duration: 300 * time.Millisecond,
			Warmup: 100 * time.Millisecond, Progress: &progress},
	}
	rep, err := run(context.Background(), c)
	if err != nil {
		t.Fatalf("run: %v\n%s", err, progress.String())
	}
	if len(rep.Cases) != 3 {
		t.Fatalf("cases = %d; want 3", len(rep.Cases))
	}
	for _, cr := range rep.Cases {
		if len(cr.Rounds) != c.Rounds {
			t.Errorf("%s: %d rounds; want %d", cr.Name, len(cr.Rounds), c.Rounds)
		}
		for _, m := range cr.Rounds {
			if m.Errors != 0 || m.RPS() <= 0 {
				t.Errorf("%s: %v; want no errors and nonzero throughput", cr.Name, m.Result)
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
	rep.write(&out, "test")
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if last := lines[len(lines)-1]; !strings.HasPrefix(last, "ratio ") || rep.Ratio(caseExtauth, caseNop) <= 0 {
		t.Errorf("last line %q, ratio %v; want \"ratio N\" with N > 0", last, rep.Ratio(caseExtauth, caseNop))
	}
}
