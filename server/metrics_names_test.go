package server

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/extauthz/extauthz/internal/testutil/testprog"
)

// dashboardMetricFiles are the files that name the metrics operators watch.
var dashboardMetricFiles = []string{
	"../deploy/observability/grafana/extauthz.json",
	"../deploy/observability/prometheus/alerts.yaml",
}

// watchedMetrics returns every extauthz_* series name the dashboard and the
// alert rules use.
func watchedMetrics(t *testing.T) []string {
	t.Helper()
	re := regexp.MustCompile(`extauthz_[a-z_]+`)
	var names []string
	for _, f := range dashboardMetricFiles {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, re.FindAllString(string(data), -1)...)
	}
	slices.Sort(names)
	names = slices.Compact(names)
	if len(names) < 5 {
		t.Fatalf("found only %v in %v", names, dashboardMetricFiles)
	}
	return names
}

// TestMetricsExistFromStart starts a server with each revocation store and
// asserts that every metric the dashboard and the alert rules name is
// exported before any event: a panel never shows "No data" because nothing
// has happened yet.
func TestMetricsExistFromStart(t *testing.T) {
	names := watchedMetrics(t)
	dir := t.TempDir()
	keyFile, _ := newKeyFile(t)
	redis := testprog.StartRedis(t)
	for store, args := range map[string][]string{
		"memory": nil,
		"file":   {"--revocation-file", filepath.Join(dir, "revocations")},
		"redis":  {"--revocation-store", redis.URL()},
	} {
		t.Run(store, func(t *testing.T) {
			p := startServer(t, append([]string{"--grpc-addr", "127.0.0.1:0", "--http-addr", "", "--admin-addr", "127.0.0.1:0", "--key-file", keyFile}, args...)...)
			body := httpBody(t, "http://"+p.addr(t, "admin")+"/metrics")
			exported := map[string]bool{}
			for line := range strings.SplitSeq(body, "\n") {
				if line == "" || line[0] == '#' {
					continue
				}
				name, _, _ := strings.Cut(line, "{")
				name, _, _ = strings.Cut(name, " ")
				exported[name] = true
			}
			for _, n := range names {
				if !exported[n] {
					t.Errorf("%s is named by the dashboard or the alerts but not exported at start", n)
				}
			}
			for _, series := range []string{
				`extauthz_key_reloads_total{result="error"} 0`,
				`extauthz_decisions_total{profile="",reason="",result="allow",route_class="backend_api"} 0`,
				`extauthz_decisions_total{profile="",reason="revoked_capability",result="deny",route_class=""} 0`,
			} {
				if !strings.Contains(body, series) {
					t.Errorf("series %s is not exported at 0 from the start", series)
				}
			}
		})
	}
}
