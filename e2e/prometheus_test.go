package e2e

import (
	"context"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"html"
	"io"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"sigs.k8s.io/yaml"

	"github.com/extauthz/extauthz/internal/testutil/dashpreview"
	"github.com/extauthz/extauthz/internal/testutil/testprog"
)

// TestPrometheusRules runs promtool on the shipped alert rules: the syntax
// check and the rule unit tests in deploy/observability/prometheus/alerts_test.yaml.
func TestPrometheusRules(t *testing.T) {
	promtool := testprog.Require(t, "promtool")
	dir := filepath.Join("..", "deploy", "observability", "prometheus")
	for _, args := range [][]string{{"check", "rules", "alerts.yaml"}, {"test", "rules", "alerts_test.yaml"}} {
		cmd := exec.Command(promtool, args...)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}

// alertRules reads the shipped alert rules.
func alertRules(t *testing.T) (raw []byte, rules []struct{ Alert, Expr, For string }) {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("..", "deploy", "observability", "prometheus", "alerts.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Groups []struct {
			Rules []struct{ Alert, Expr, For string }
		}
	}
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	for _, g := range doc.Groups {
		rules = append(rules, g.Rules...)
	}
	if len(rules) == 0 {
		t.Fatal("no alert rules")
	}
	return raw, rules
}

// dashPanel is one panel of the shipped Grafana dashboard.
type dashPanel struct {
	Title       string
	FieldConfig struct{ Defaults struct{ Unit string } }
	Targets     []struct{ RefID, Expr, LegendFormat string }
}

// dashboardPanels reads the shipped Grafana dashboard with the variables of
// its queries filled in for the test's Prometheus.
func dashboardPanels(t *testing.T, rateInterval string) []dashPanel {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("..", "deploy", "observability", "grafana", "extauthz.json"))
	if err != nil {
		t.Fatal(err)
	}
	var dash struct{ Panels []dashPanel }
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatal(err)
	}
	n := 0
	for i, p := range dash.Panels {
		for j, tg := range p.Targets {
			e := strings.NewReplacer("$__rate_interval", rateInterval, "$job", "extauthz").Replace(tg.Expr)
			if strings.Contains(e, "$") {
				t.Errorf("panel %q: unknown variable in %s", p.Title, tg.Expr)
			}
			dash.Panels[i].Targets[j].Expr = e
			n++
		}
	}
	if n < 10 {
		t.Fatalf("dashboard has %d queries", n)
	}
	return dash.Panels
}

// prometheus is a running Prometheus with an HTTP API.
type prometheus struct {
	base string
}

// query runs an instant query and returns the result's series.
func (p prometheus) query(t *testing.T, expr string) ([]json.RawMessage, error) {
	t.Helper()
	resp, err := client.Get(p.base + "/api/v1/query?query=" + url.QueryEscape(expr))
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var r struct {
		Status string
		Error  string
		Data   struct{ Result []json.RawMessage }
	}
	b, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("%s: %s", err, b)
	}
	if r.Status != "success" {
		return nil, fmt.Errorf("query %s: %s", expr, r.Error)
	}
	return r.Data.Result, nil
}

// firing reports whether the alert is firing.
func (p prometheus) firing(t *testing.T, alert string) bool {
	t.Helper()
	res, err := p.query(t, `ALERTS{alertname="`+alert+`",alertstate="firing"}`)
	return err == nil && len(res) > 0
}

// eventually polls cond every 250 ms for up to d.
func eventually(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// TestPrometheusScrapesExtauthz starts a real Prometheus scraping a running
// extauthz under a short load, with the shipped alert rules loaded. Every
// dashboard panel query returns data; every alert expression evaluates and
// names only series that exist; and the deny-ratio alert (its `for` set to
// 0 s for the test) stays quiet while most requests are allowed and fires
// once the test sends only denied requests.
func TestPrometheusScrapesExtauthz(t *testing.T) {
	promBin := testprog.Require(t, "prometheus")
	keyFile, codec := newKey(t)
	// A revocation store, so that the revocation panels and alert have their
	// series.
	redis := testprog.StartRedis(t)
	ext := startServe(t, extauthzBin(t), keyFile, false, "--admin-addr", "127.0.0.1:0",
		"--revocation-store", fmt.Sprintf("redis://127.0.0.1:%d", redis.Port))
	if ext.admin == "" {
		t.Fatal("no admin address")
	}

	dir := t.TempDir()
	raw, rules := alertRules(t)
	testRules := regexp.MustCompile(`(?m)^(\s*)for: .*$`).ReplaceAll(raw, []byte("${1}for: 0s"))
	if err := os.WriteFile(filepath.Join(dir, "alerts.yaml"), testRules, 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := fmt.Sprintf(`global: {scrape_interval: 1s, evaluation_interval: 1s}
rule_files: [alerts.yaml]
scrape_configs:
- job_name: extauthz
  static_configs: [{targets: [%q]}]
`, ext.admin)
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	prom := start(t, exec.Command(promBin, "--config.file="+filepath.Join(dir, "prometheus.yml"),
		"--storage.tsdb.path="+filepath.Join(dir, "data"), "--web.listen-address="+addr), nil)
	waitListening(t, prom, addr)
	p := prometheus{base: "http://" + addr}

	conn, err := grpc.NewClient(ext.grpc, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	authz := authv3.NewAuthorizationClient(conn)
	capa, err := codec.Seal(subjectFor(shippedID, shippedTargets), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	check := func(allowed bool) {
		path := "/api/openrouter/chat"
		if !allowed {
			path = "/api/%2e%2e/admin"
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, err := authz.Check(ctx, &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
			ContextExtensions: map[string]string{"outbound_container_id": shippedID, "upstream_scheme": "https"},
			Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
				Method: "POST", Host: apiHost, Path: path, Headers: map[string]string{capabilityHdr: capa},
			}},
		}})
		if err != nil {
			t.Fatal(err)
		}
	}
	began := time.Now()
	// Mostly allowed traffic, and one key reload, for about 12 s.
	_ = ext.cmd.Process.Signal(syscall.SIGHUP)
	for end := time.Now().Add(12 * time.Second); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		check(true)
		check(true)
		check(true)
		check(false)
	}

	panels := dashboardPanels(t, "10s")
	for _, panel := range panels {
		for _, tg := range panel.Targets {
			var last error
			if !eventually(15*time.Second, func() bool {
				res, err := p.query(t, tg.Expr)
				last = err
				return err == nil && len(res) > 0
			}) {
				t.Errorf("dashboard %s/%s: no data for %s (%v)", panel.Title, tg.RefID, tg.Expr, last)
			}
		}
	}
	names := regexp.MustCompile(`\b(extauthz_[a-z_]+|up|process_[a-z_]+|go_[a-z_]+)\b`)
	for _, r := range rules {
		if _, err := p.query(t, r.Expr); err != nil {
			t.Errorf("alert %s: %v", r.Alert, err)
		}
		for _, n := range names.FindAllString(r.Expr, -1) {
			if res, err := p.query(t, n); err != nil || len(res) == 0 {
				t.Errorf("alert %s names %s, which has no series (%v)", r.Alert, n, err)
			}
		}
	}
	if p.firing(t, "ExtauthzDenyRatioHigh") {
		t.Errorf("deny-ratio alert fires with 25%% denies")
	}
	for _, quiet := range []string{"ExtauthzDown", "ExtauthzNotReady", "ExtauthzErrorDecisions", "ExtauthzKeyReloadFailed", "ExtauthzSlowDecisions", "ExtauthzRevocationsStale"} {
		if p.firing(t, quiet) {
			t.Errorf("%s fires on a healthy server", quiet)
		}
	}

	// Only denied requests from now on.
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
				check(false)
			}
		}
	}()
	fired := eventually(40*time.Second, func() bool { return p.firing(t, "ExtauthzDenyRatioHigh") })
	close(stop)
	<-done
	if !fired {
		t.Errorf("deny-ratio alert did not fire while only denied requests were sent:\n%s", prom.output)
	}
	previewDashboard(t, p, panels, began)
}

// previewDashboard draws the dashboard's panels from the test's own data as
// SVG (internal/testutil/dashpreview) and checks the drawing; with
// EXTAUTHZ_DASHBOARD_SVG=FILE it also keeps it there (the picture in
// docs/operations.md is made that way, then converted with rsvg-convert).
func previewDashboard(t *testing.T, p prometheus, panels []dashPanel, since time.Time) {
	t.Helper()
	var out []dashpreview.Panel
	for _, panel := range panels {
		dp := dashpreview.Panel{Title: panel.Title, Unit: panel.FieldConfig.Defaults.Unit}
		for _, tg := range panel.Targets {
			series, err := p.queryRange(tg.Expr, since, time.Now(), time.Second)
			if err != nil {
				t.Errorf("panel %s: %v", panel.Title, err)
				continue
			}
			for _, s := range series {
				dp.Series = append(dp.Series, dashpreview.Series{Label: legend(tg.LegendFormat, s.labels), Points: s.points})
			}
		}
		if len(dp.Series) == 0 {
			t.Errorf("panel %s has no series over the test", panel.Title)
		}
		out = append(out, dp)
	}
	var b strings.Builder
	if err := dashpreview.SVG(&b, "extauthz — deploy/observability/grafana/extauthz.json, drawn from e2e/prometheus_test.go's data", out); err != nil {
		t.Fatal(err)
	}
	if err := xml.Unmarshal([]byte(b.String()), new(struct{})); err != nil {
		t.Errorf("dashboard preview is not well-formed SVG: %v", err)
	}
	for _, panel := range panels {
		if !strings.Contains(b.String(), html.EscapeString(panel.Title)) {
			t.Errorf("dashboard preview lacks panel %q", panel.Title)
		}
	}
	if f := os.Getenv("EXTAUTHZ_DASHBOARD_SVG"); f != "" {
		if err := os.WriteFile(f, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// legend fills a Grafana legend format ("{{result}} {{reason}}").
func legend(format string, labels map[string]string) string {
	out := format
	for k, v := range labels {
		out = strings.ReplaceAll(out, "{{"+k+"}}", v)
	}
	return strings.TrimSpace(regexp.MustCompile(`\{\{[^}]*\}\}`).ReplaceAllString(out, ""))
}

// rangeSeries is one series of a range query.
type rangeSeries struct {
	labels map[string]string
	points [][2]float64
}

// queryRange runs a range query.
func (p prometheus) queryRange(expr string, from, to time.Time, step time.Duration) ([]rangeSeries, error) {
	q := url.Values{"query": {expr}, "start": {fmt.Sprint(from.Unix())}, "end": {fmt.Sprint(to.Unix())}, "step": {step.String()}}
	resp, err := client.Get(p.base + "/api/v1/query_range?" + q.Encode())
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var r struct {
		Status, Error string
		Data          struct {
			Result []struct {
				Metric map[string]string
				Values [][2]any
			}
		}
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		return nil, err
	}
	if r.Status != "success" {
		return nil, fmt.Errorf("query_range %s: %s", expr, r.Error)
	}
	var out []rangeSeries
	for _, res := range r.Data.Result {
		s := rangeSeries{labels: res.Metric}
		for _, v := range res.Values {
			ts, _ := v[0].(float64)
			str, _ := v[1].(string)
			f, err := strconv.ParseFloat(str, 64)
			if err != nil {
				continue
			}
			s.points = append(s.points, [2]float64{ts, f})
		}
		out = append(out, s)
	}
	return out, nil
}
