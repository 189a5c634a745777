package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc/codes"
	"sigs.k8s.io/yaml"
)

// envoyStandIn is a forward proxy that behaves like the demo's Envoy for the
// parts that matter to authorization: it takes absolute-form requests, sends
// Check with the raw path, the headers and the route's context extensions,
// fails closed on an RPC error, answers a deny with the denied response, and
// on allow applies header mutations with Envoy's semantics (set with the
// append action, then headers_to_remove) before forwarding to the cluster.
type envoyStandIn struct {
	client     authv3.AuthorizationClient
	extensions map[string]string
	clusters   map[string]string // authority -> loopback address
}

func (p *envoyStandIn) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	target, ok := p.clusters[r.Host]
	if !ok {
		http.Error(w, "no route", http.StatusNotFound)
		return
	}
	path := r.RequestURI
	if i := strings.Index(path, "://"); i >= 0 {
		path = path[i+3:]
		if j := strings.IndexByte(path, '/'); j >= 0 {
			path = path[j:]
		} else {
			path = "/"
		}
	}
	headers := map[string]string{}
	for k, v := range r.Header {
		headers[strings.ToLower(k)] = strings.Join(v, ",")
	}
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	resp, err := p.client.Check(ctx, &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		ContextExtensions: p.extensions,
		Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
			Method: r.Method, Scheme: "http", Host: r.Host, Path: path, Headers: headers, Protocol: "HTTP/1.1",
		}},
	}})
	if err != nil {
		// failure_mode_allow: false; status_on_error defaults to 403.
		w.WriteHeader(http.StatusForbidden)
		return
	}
	if codes.Code(resp.GetStatus().GetCode()) != codes.OK {
		d := resp.GetDeniedResponse()
		applyHeaders(w.Header(), d.GetHeaders())
		status := int(d.GetStatus().GetCode())
		if status == 0 {
			status = http.StatusForbidden
		}
		w.WriteHeader(status)
		io.WriteString(w, d.GetBody())
		return
	}
	ok2 := resp.GetOkResponse()
	out := r.Header.Clone()
	applyHeaders(out, ok2.GetHeaders())
	for _, h := range ok2.GetHeadersToRemove() {
		out.Del(h)
	}
	up, err := http.NewRequestWithContext(r.Context(), r.Method, "http://"+target+path, r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	up.Header = out
	up.Host = r.Host
	ur, err := http.DefaultTransport.RoundTrip(up)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	defer ur.Body.Close()
	for k, v := range ur.Header {
		w.Header()[k] = v
	}
	w.WriteHeader(ur.StatusCode)
	io.Copy(w, ur.Body)
}

// applyHeaders applies HeaderValueOptions as Envoy does for ext_authz.
func applyHeaders(h http.Header, opts []*corev3.HeaderValueOption) {
	for _, o := range opts {
		k, v := o.GetHeader().GetKey(), o.GetHeader().GetValue()
		switch o.GetAppendAction() {
		case corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD:
			h.Set(k, v)
		case corev3.HeaderValueOption_ADD_IF_ABSENT:
			if h.Get(k) == "" {
				h.Set(k, v)
			}
		case corev3.HeaderValueOption_OVERWRITE_IF_EXISTS:
			if h.Get(k) != "" {
				h.Set(k, v)
			}
		default: // APPEND_IF_EXISTS_OR_ADD: a second value, the trap DESIGN.md warns about
			h.Add(k, v)
		}
	}
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

// demoContextExtensions reads the context extensions of the demo Envoy's
// allowed route from envoy/envoy-compose.yaml, so the test runs what the demo
// configures.
func demoContextExtensions(t *testing.T) map[string]string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("..", "envoy", "envoy-compose.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var doc any
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	var found map[string]string
	var walk func(any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, c := range v {
				if k == "context_extensions" && found == nil {
					found = map[string]string{}
					for ek, ev := range c.(map[string]any) {
						found[ek], _ = ev.(string)
					}
				}
				walk(c)
			}
		case []any:
			for _, c := range v {
				walk(c)
			}
		}
	}
	walk(doc)
	if found["outbound_container_id"] == "" || found["upstream_scheme"] == "" {
		t.Fatalf("envoy-compose.yaml context_extensions = %v; want outbound_container_id and upstream_scheme", found)
	}
	return found
}
