package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/extauthz/extauthz/capability"
)

const (
	userToken     = "e2e-user-token-SECRET-4b1d"
	providerToken = "e2e-provider-token-SECRET-9e0c"
	// devContainer is the identity deploy/nginx/nginx.conf gives 127.0.0.1.
	devContainer = "dev-container"
)

// nginxConfig rewrites deploy/nginx/nginx.conf for this test: free ports, the echo
// upstream, paths inside dir. Every rewritten literal must still be in the
// shipped file, so that the test cannot drift away from it unnoticed.
func nginxConfig(t *testing.T, dir string, egressPort int, extauthzAddr, upstreamAddr string) string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("..", "deploy", "nginx", "nginx.conf"))
	if err != nil {
		t.Fatal(err)
	}
	conf := string(raw)
	temp := ""
	for _, d := range []string{"client_body", "proxy", "fastcgi", "uwsgi", "scgi"} {
		temp += fmt.Sprintf("    %s_temp_path %s;\n", d, filepath.Join(dir, d+"_temp"))
	}
	for _, r := range []struct{ old, new string }{
		{"server 127.0.0.1:8181;", "server " + extauthzAddr + ";"},
		{"listen 127.0.0.1:8080;", fmt.Sprintf("listen 127.0.0.1:%d;", egressPort)},
		{"127.0.0.1:9000", upstreamAddr},
		{"/var/log/nginx/", dir + "/"},
		{"\nhttp {\n", "\nhttp {\n" + temp},
	} {
		if !strings.Contains(conf, r.old) {
			t.Fatalf("deploy/nginx/nginx.conf no longer contains %q: update this test with it", r.old)
		}
		conf = strings.ReplaceAll(conf, r.old, r.new)
	}
	if os.Geteuid() == 0 {
		// Workers would switch to nobody, who cannot enter the test's
		// private temporary directory.
		conf = "user root;\n" + conf
	}
	name := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(name, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	return name
}

// nginxEgress is a running nginx on the shipped config.
type nginxEgress struct {
	url  string // where sandboxes send their requests
	dir  string // its prefix, with its logs
	proc *process
}

// startNginx runs the shipped nginx.conf (nginxConfig) in front of the
// extauthz process authz, listening on authzAddr, and the upstream at
// upAddr. On failure the test logs both processes' output and nginx's logs.
func startNginx(t *testing.T, nginx string, authz *process, authzAddr, upAddr string) *nginxEgress {
	t.Helper()
	dir := t.TempDir()
	port := freePort(t)
	conf := nginxConfig(t, dir, port, authzAddr, upAddr)
	ngx := start(t, exec.Command(nginx, "-p", dir, "-c", conf, "-e", "stderr", "-g", "daemon off; pid "+filepath.Join(dir, "nginx.pid")+";"), nil)
	egress := fmt.Sprintf("http://127.0.0.1:%d", port)
	waitListening(t, ngx, egress[len("http://"):])
	t.Cleanup(func() {
		if t.Failed() {
			access, _ := os.ReadFile(filepath.Join(dir, "extauthz-egress-access.log"))
			errs, _ := os.ReadFile(filepath.Join(dir, "extauthz-egress-error.log"))
			t.Logf("extauthz output:\n%s\nnginx output:\n%s%s\nnginx access log:\n%s", authz.output, ngx.output, errs, access)
		}
	})
	return &nginxEgress{url: egress, dir: dir, proc: ngx}
}

func subject(container, origin string) capability.Subject {
	return capability.Subject{
		UserID:              "e2e-user",
		CloudAgentSessionID: "e2e-cas",
		KiloSessionID:       "e2e-session",
		OutboundContainerID: container,
		UserToken:           userToken,
		ProviderToken:       providerToken,
		Targets: capability.Targets{
			BackendBaseURL:       origin,
			ProviderBaseURL:      origin,
			SessionIngestBaseURL: "http://localhost:1",
		},
	}
}

func sealed(t *testing.T, c *capability.Codec, s capability.Subject) string {
	t.Helper()
	tok, err := c.Seal(s, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// TestNginxEgress runs extauthz, an echo upstream and nginx with the shipped
// deploy/nginx/nginx.conf, and checks through nginx that allowed requests reach the
// upstream with the real token and no capability, that denied ones never do
// and get extauthz's status and JSON body, and that nginx fails closed when
// extauthz is gone.
func TestNginxEgress(t *testing.T) {
	nginx := findNginx(t)
	bin := buildExtauthz(t)
	keyFile, codec := newKey(t)
	authz, authzAddr := startExtauthz(t, bin, keyFile)
	up := newEchoUpstream(t)
	upAddr := up.Listener.Addr().String()
	ng := startNginx(t, nginx, authz, authzAddr, upAddr)
	egress := ng.url

	origin := "http://" + upAddr
	good := sealed(t, codec, subject(devContainer, origin))
	otherContainer := sealed(t, codec, subject("other-container", origin))
	elsewhere := sealed(t, codec, subject(devContainer, "https://api.kilo.example"))
	past := capability.NewCodec(codec.KeyRing(), capability.WithClock(func() time.Time { return time.Now().Add(-2 * time.Hour) }))
	expired := sealed(t, past, subject(devContainer, origin))
	capabilities := []string{good, otherContainer, elsewhere, expired, "kka1."}
	secrets := append([]string{userToken, providerToken}, capabilities...)

	t.Run("allowed GET reaches the upstream with the real token", func(t *testing.T) {
		resp, body := do(t, "GET", egress+"/api/profile?x=1", map[string]string{"Authorization": "Bearer " + good}, "")
		if resp.StatusCode != 200 {
			t.Fatalf("status = %d %s; want 200", resp.StatusCode, body)
		}
		_, got := up.requests()
		assertUpstream(t, got, "GET", "/api/profile?x=1", upAddr, userToken, capabilities)
	})

	t.Run("dedicated header replaces the sandbox's own authorization", func(t *testing.T) {
		resp, body := do(t, "GET", egress+"/api/me", map[string]string{"Authorization": "Bearer sandbox-junk", "X-Kilo-Capability": good}, "")
		if resp.StatusCode != 200 {
			t.Fatalf("status = %d %s; want 200", resp.StatusCode, body)
		}
		_, got := up.requests()
		assertUpstream(t, got, "GET", "/api/me", upAddr, userToken, capabilities)
	})

	t.Run("POST with a body is authorised by its original method", func(t *testing.T) {
		payload := `{"model":"m","messages":[{"role":"user","content":"hi"}]}`
		resp, body := do(t, "POST", egress+"/api/openrouter/v1/chat/completions", map[string]string{
			"Authorization": "Bearer " + good, "Content-Type": "application/json"}, payload)
		if resp.StatusCode != 200 {
			t.Fatalf("status = %d %s; want 200", resp.StatusCode, body)
		}
		_, got := up.requests()
		assertUpstream(t, got, "POST", "/api/openrouter/v1/chat/completions", upAddr, providerToken, capabilities)
		if got.Body != payload {
			t.Errorf("upstream body = %q; want %q", got.Body, payload)
		}
		waitForDecision(t, authz, "POST", "/api/openrouter/v1/chat/completions", "provider_model")
	})

	denials := []struct {
		name   string
		method string
		path   string
		header map[string]string
		status int
		reason string
	}{
		{"no capability", "GET", "/api/profile", nil, 401, "missing_capability"},
		{"garbage capability", "GET", "/api/profile", map[string]string{"Authorization": "Bearer kka1.AAAA:BBBB:CCCC"}, 401, "invalid_capability"},
		{"expired capability", "GET", "/api/profile", map[string]string{"Authorization": "Bearer " + expired}, 401, "expired_capability"},
		{"another container's capability", "GET", "/api/profile", map[string]string{"Authorization": "Bearer " + otherContainer}, 403, "container_mismatch"},
		{"forged identity header", "GET", "/api/profile", map[string]string{"Authorization": "Bearer " + otherContainer, "X-Outbound-Container-Id": "other-container"}, 403, "container_mismatch"},
		{"upstream not in the capability", "POST", "/api/profile", map[string]string{"Authorization": "Bearer " + elsewhere}, 403, "upstream_not_allowed"},
		{"encoded dot segment", "GET", "/api/%2e%2e/admin", map[string]string{"Authorization": "Bearer " + good}, 403, "invalid_upstream_url"},
		{"encoded slash", "GET", "/api/a%2fb", map[string]string{"Authorization": "Bearer " + good}, 403, "invalid_upstream_url"},
		{"forged forwarded URI", "GET", "/api/../../admin", map[string]string{"Authorization": "Bearer " + good, "X-Forwarded-Uri": "/api/ok"}, 400, ""},
	}
	for _, tc := range denials {
		t.Run("denied: "+tc.name, func(t *testing.T) {
			before, _ := up.requests()
			resp, body := do(t, tc.method, egress+tc.path, tc.header, "")
			if after, _ := up.requests(); after != before {
				t.Errorf("a denied request reached the upstream")
			}
			if resp.StatusCode != tc.status {
				t.Fatalf("status = %d %s; want %d", resp.StatusCode, body, tc.status)
			}
			if tc.reason == "" {
				return // rejected by nginx itself before any check
			}
			assertDenyBody(t, resp.Header.Get("Content-Type"), body, tc.reason)
			wantChallenge := ""
			switch {
			case tc.status == 401 && tc.reason == "missing_capability":
				wantChallenge = `Bearer realm="extauthz"`
			case tc.status == 401:
				wantChallenge = `Bearer realm="extauthz", error="invalid_token"`
			}
			if got := resp.Header.Values("WWW-Authenticate"); strings.Join(got, "|") != wantChallenge {
				t.Errorf("WWW-Authenticate = %q; want %q", got, wantChallenge)
			}
		})
	}

	t.Run("extauthz down: fail closed", func(t *testing.T) {
		authz.stop()
		before, _ := up.requests()
		resp, body := do(t, "GET", egress+"/api/profile", map[string]string{"Authorization": "Bearer " + good}, "")
		if after, _ := up.requests(); after != before {
			t.Errorf("a request reached the upstream while extauthz was down")
		}
		if resp.StatusCode != 503 {
			t.Fatalf("status = %d %s; want 503", resp.StatusCode, body)
		}
		assertDenyBody(t, resp.Header.Get("Content-Type"), body, "authorization_unavailable")
	})

	access, _ := os.ReadFile(filepath.Join(ng.dir, "extauthz-egress-access.log"))
	errs, _ := os.ReadFile(filepath.Join(ng.dir, "extauthz-egress-error.log"))
	for what, s := range map[string]string{"extauthz log": authz.output.String(), "nginx output": ng.proc.output.String() + string(errs), "nginx access log": string(access)} {
		for _, sec := range secrets {
			if strings.Contains(s, sec) {
				t.Errorf("%s contains a secret (%.12s…)", what, sec)
			}
		}
	}
}

// assertUpstream checks what the upstream received: the original request, the
// real credential exactly once, and no capability or identity header.
func assertUpstream(t *testing.T, got seen, method, uri, host, credential string, capabilities []string) {
	t.Helper()
	if got.Method != method || got.RequestURI != uri || got.Host != host {
		t.Errorf("upstream got %s %s (Host %s); want %s %s (Host %s)", got.Method, got.RequestURI, got.Host, method, uri, host)
	}
	if a := got.Header.Values("Authorization"); len(a) != 1 || a[0] != "Bearer "+credential {
		t.Errorf("upstream Authorization = %.24q; want the real credential once", a)
	}
	for _, h := range []string{"X-Kilo-Capability", "X-Outbound-Container-Id"} {
		if v := got.Header.Values(h); len(v) > 0 {
			t.Errorf("upstream received %s", h)
		}
	}
	for name, values := range got.Header {
		for _, v := range values {
			for _, c := range capabilities {
				if strings.Contains(v, c) {
					t.Errorf("upstream header %s carries a capability", name)
				}
			}
		}
	}
}

func assertDenyBody(t *testing.T, contentType, body, reason string) {
	t.Helper()
	var got map[string]string
	if err := json.Unmarshal([]byte(body), &got); err != nil || len(got) != 1 || got["error"] != reason {
		t.Errorf("body = %q; want {\"error\":%q}", body, reason)
	}
	if contentType != "application/json" {
		t.Errorf("Content-Type = %q; want application/json", contentType)
	}
}

// waitForDecision waits (bounded) for extauthz's decision log line for an
// allowed forward-auth request with this method, path and route class.
func waitForDecision(t *testing.T, p *process, method, path, class string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		for line := range strings.Lines(p.output.String()) {
			var e map[string]any
			if json.Unmarshal([]byte(line), &e) != nil || e["message"] != "decision" {
				continue
			}
			if e["protocol"] == "http-forward" && e["decision"] == "allow" && e["method"] == method && e["path"] == path && e["route_class"] == class {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no allow decision logged for %s %s (%s)", method, path, class)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
