package e2e

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// TestComposeDemoFlow runs the docker-compose demo without Docker: the
// demo-init steps (keygen, issue with deploy/demo-subject.json), extauthz with
// the compose service's flags, the echo upstream and the sandbox client, all
// built from this repo, with a Go stand-in for Envoy in between that calls
// Check exactly as envoy/envoy-compose.yaml configures it and applies the
// answer with Envoy's header-mutation semantics.
func TestComposeDemoFlow(t *testing.T) {
	dir := t.TempDir()
	bins := demoBuild(t, dir, "extauthz", "echo-upstream", "sandbox-client")

	// demo-init: a key, then a capability for the demo subject.
	keyFile := filepath.Join(dir, "keys")
	demoRun(t, exec.Command(bins["extauthz"], "keygen"), "", keyFile)
	subject, err := os.ReadFile(filepath.Join("..", "deploy", "demo-subject.json"))
	if err != nil {
		t.Fatal(err)
	}
	capFile := filepath.Join(dir, "capability")
	demoRun(t, exec.Command(bins["extauthz"], "issue", "--key-file", keyFile, "--dev-http-hosts", "echo", "--ttl", "1h"), string(subject), capFile)

	// The services.
	grpcAddr := demoStartExtauthz(t, bins["extauthz"], keyFile)
	echoAddr := demoStartEcho(t, bins["echo-upstream"])
	ext := demoContextExtensions(t)
	conn, err := grpc.NewClient(grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	proxy := &envoyStandIn{
		client:     authv3.NewAuthorizationClient(conn),
		extensions: ext,
		clusters:   map[string]string{"echo:8080": echoAddr},
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: proxy}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	proxyURL := "http://" + ln.Addr().String()

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
