package e2e

import (
	"bytes"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/extauthz/extauthz/internal/testutil/envoyproc"
)

// TestComposeDemoFlow runs the docker-compose demo without Docker: the
// demo-init steps (keygen, issue with deploy/compose/demo-subject.json), extauthz with
// the compose service's flags, the echo upstream and the sandbox client, all
// built from this repo, behind a real Envoy running deploy/envoy/envoy-compose.yaml.
func TestComposeDemoFlow(t *testing.T) {
	envoyBin := envoyproc.Require(t)
	dir := t.TempDir()
	bins := demoBuild(t, dir, "extauthz", "echo-upstream", "sandbox-client")

	// demo-init: a key, then a capability for the demo subject.
	keyFile := filepath.Join(dir, "keys")
	demoRun(t, exec.Command(bins["extauthz"], "keygen"), "", keyFile)
	subject, err := os.ReadFile(filepath.Join("..", "deploy", "compose", "demo-subject.json"))
	if err != nil {
		t.Fatal(err)
	}
	capFile := filepath.Join(dir, "capability")
	demoRun(t, exec.Command(bins["extauthz"], "issue", "--key-file", keyFile, "--dev-http-hosts", "echo", "--ttl", "1h"), string(subject), capFile)

	// The services, and the demo's Envoy config with only its addresses
	// changed: extauthz and echo on loopback ports instead of compose names.
	grpcAddr := demoStartExtauthz(t, bins["extauthz"], keyFile)
	echoAddr := demoStartEcho(t, bins["echo-upstream"])
	cfg, err := envoyproc.Load(filepath.Join("..", "deploy", "envoy", "envoy-compose.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, err := range []error{
		cfg.SetAdmin("127.0.0.1", 0),
		cfg.SetListener(envoyListener, "127.0.0.1", 0),
		cfg.SetCluster("extauthz", "127.0.0.1", portOf(t, grpcAddr)),
		cfg.SetCluster("echo", "127.0.0.1", portOf(t, echoAddr)),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	envoy, err := envoyproc.Start(envoyBin, cfg, envoyproc.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(envoy.Stop)
	listener, err := envoy.ListenerAddr(envoyListener)
	if err != nil {
		t.Fatal(err)
	}
	proxyURL := "http://" + listener

	// The sandbox client, with the compose service's arguments.
	out, err := exec.Command(bins["sandbox-client"], "--proxy="+proxyURL, "--capability-file="+capFile,
		"--allowed-url=http://echo:8080/api/profile",
		"--denied-url=http://echo:8080/api/session/someone-elses-session/export",
		"--retry-for=5s").CombinedOutput()
	if err != nil {
		t.Fatalf("sandbox-client failed: %v\n%s", err, out)
	}
	for _, want := range []string{"-> 200", "upstream_not_allowed"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("sandbox-client output lacks %q:\n%s", want, out)
		}
	}

	// And the same allowed call checked here, field by field.
	capability, _ := os.ReadFile(capFile)
	req, _ := http.NewRequest("GET", "http://echo:8080/api/profile?x=1", nil)
	req.Header.Set("x-kilo-capability", strings.TrimSpace(string(capability)))
	req.Header.Set("authorization", "Bearer something-the-sandbox-made-up")
	pu, _ := url.Parse(proxyURL)
	client := &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(pu)}}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var echoed struct {
		Method  string              `json:"method"`
		Headers map[string][]string `json:"headers"`
	}
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || json.Unmarshal(body, &echoed) != nil {
		t.Fatalf("allowed call = %d %s", resp.StatusCode, body)
	}
	if got := headerOf(echoed.Headers, "authorization"); len(got) != 1 || got[0] != "Bearer demo-user-token" {
		t.Errorf("upstream authorization = %q; want exactly the demo user token", got)
	}
	if got := headerOf(echoed.Headers, "x-kilo-capability"); len(got) != 0 {
		t.Errorf("upstream received the capability header")
	}
	if strings.Contains(string(body), "kka1.") {
		t.Errorf("upstream received a capability: %s", body)
	}
}

func headerOf(h map[string][]string, name string) []string {
	for k, v := range h {
		if strings.EqualFold(k, name) {
			return v
		}
	}
	return nil
}

// demoBuild builds the named commands of this repo into dir.
func demoBuild(t *testing.T, dir string, names ...string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, n := range names {
		out[n] = buildCommand(t, dir, n)
	}
	return out
}

// demoRun runs a one-shot command with stdin and writes its stdout to file.
func demoRun(t *testing.T, cmd *exec.Cmd, stdin, file string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	cmd.Env = cleanEnv()
	cmd.Stdin, cmd.Stdout, cmd.Stderr = strings.NewReader(stdin), &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(cmd.Args, " "), err, stderr.String())
	}
	if err := os.WriteFile(file, stdout.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
}

// demoStartExtauthz starts serve with the compose service's flags on loopback
// and returns its gRPC address.
func demoStartExtauthz(t *testing.T, bin, keyFile string) string {
	t.Helper()
	cmd := exec.Command(bin, "serve", "--key-file="+keyFile, "--dev-http-hosts=echo",
		"--container-id-from=context-extension:outbound_container_id",
		"--grpc-addr=127.0.0.1:0", "--http-addr=", "--admin-addr=")
	cmd.Env = cleanEnv()
	return demoWaitAddr(t, cmd, func(line string) string {
		var e struct{ Listener, Addr, Message string }
		if json.Unmarshal([]byte(line), &e) == nil && e.Message == "listening" && e.Listener == "grpc" {
			return e.Addr
		}
		return ""
	})
}

// demoStartEcho starts the echo upstream on a free loopback port.
func demoStartEcho(t *testing.T, bin string) string {
	t.Helper()
	return demoWaitAddr(t, exec.Command(bin, "--addr=127.0.0.1:0"), func(line string) string {
		addr, ok := strings.CutPrefix(line, "echo-upstream listening on ")
		if !ok {
			return ""
		}
		return strings.TrimSpace(addr)
	})
}

func demoWaitAddr(t *testing.T, cmd *exec.Cmd, addrOf func(string) string) string {
	t.Helper()
	addrc := make(chan string, 1)
	p := start(t, cmd, func(line string) bool {
		if a := addrOf(line); a != "" {
			addrc <- a
			return false
		}
		return true
	})
	select {
	case a := <-addrc:
		return a
	case <-p.done:
		t.Fatalf("%s exited before listening:\n%s", cmd.Path, p.output)
	case <-time.After(startTimeout):
		t.Fatalf("%s did not listen within %v:\n%s", cmd.Path, startTimeout, p.output)
	}
	return ""
}

// portOf returns the port of a host:port address.
func portOf(t *testing.T, addr string) int {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.Atoi(p)
	if err != nil {
		t.Fatal(err)
	}
	return n
}
