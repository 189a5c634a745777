// Command sandbox-client plays the sandboxed container in the docker-compose
// demo. Through the egress proxy it makes one request its capability allows and
// one it does not, prints what happened, and exits non-zero unless:
//
//   - the allowed request reached the upstream (the echo service) with an
//     `authorization` header that is not a capability, and without the
//     capability header;
//   - the denied request was refused by the proxy (401 or 403 with a JSON
//     `{"error": "<reason>"}` body) and never reached the upstream.
//
// It holds only the capability, exactly as a real sandbox would.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

type config struct {
	proxy          *url.URL
	capabilityFile string
	header         string
	allowedURL     string
	deniedURL      string
	timeout        time.Duration
	retryFor       time.Duration
}

func parseFlags(args []string, stderr io.Writer) (config, error) {
	fs := flag.NewFlagSet("sandbox-client", flag.ContinueOnError)
	fs.SetOutput(stderr)
	proxy := fs.String("proxy", "http://envoy:10000", "egress proxy URL")
	var c config
	fs.StringVar(&c.capabilityFile, "capability-file", "/demo/capability", "file holding the kka1 capability")
	fs.StringVar(&c.header, "header", "x-kilo-capability", `header carrying the capability ("authorization" sends "Bearer <capability>")`)
	fs.StringVar(&c.allowedURL, "allowed-url", "http://echo:8080/api/profile", "a URL the capability allows")
	fs.StringVar(&c.deniedURL, "denied-url", "http://echo:8080/api/session/someone-elses-session/export", "a URL the capability does not allow")
	fs.DurationVar(&c.timeout, "timeout", 10*time.Second, "per-request timeout")
	fs.DurationVar(&c.retryFor, "retry-for", 20*time.Second, "keep retrying the allowed request this long while the proxy is not ready (connection error or 503)")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	u, err := url.Parse(*proxy)
	if err != nil || u.Scheme != "http" || u.Host == "" {
		return c, fmt.Errorf("--proxy %q: want http://host:port", *proxy)
	}
	c.proxy = u
	return c, nil
}

// run returns the exit code: 0 demo behaved, 1 it did not, 2 usage error.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	c, err := parseFlags(args, stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintln(stderr, "sandbox-client:", err)
		return 2
	}
	raw, err := os.ReadFile(c.capabilityFile)
	if err != nil {
		fmt.Fprintln(stderr, "sandbox-client:", err)
		return 2
	}
	capability := strings.TrimSpace(string(raw))
	client := &http.Client{
		Transport: &http.Transport{Proxy: http.ProxyURL(c.proxy)},
		Timeout:   c.timeout,
		// A redirect would be followed without the proxy deciding on it first.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	ok := true
	if err := allowedCall(ctx, client, c, capability, stdout); err != nil {
		fmt.Fprintln(stdout, "FAIL allowed call:", err)
		ok = false
	}
	if err := deniedCall(ctx, client, c, capability, stdout); err != nil {
		fmt.Fprintln(stdout, "FAIL denied call:", err)
		ok = false
	}
	if !ok {
		return 1
	}
	fmt.Fprintln(stdout, "OK: the upstream got the real token and never the capability; the out-of-scope call was refused")
	return 0
}

// echoed is what the echo upstream answers.
type echoed struct {
	Method  string              `json:"method"`
	Path    string              `json:"path"`
	Host    string              `json:"host"`
	Headers map[string][]string `json:"headers"`
}

func allowedCall(ctx context.Context, client *http.Client, c config, capability string, stdout io.Writer) error {
	deadline := time.Now().Add(c.retryFor)
	for {
		status, body, err := call(ctx, client, c, c.allowedURL, capability)
		retry := err != nil || status == http.StatusServiceUnavailable
		if retry && time.Now().Before(deadline) && ctx.Err() == nil {
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
			continue
		}
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "GET %s -> %d\n%s\n", c.allowedURL, status, body)
		if status != http.StatusOK {
			return fmt.Errorf("status %d; want 200", status)
		}
		var e echoed
		if err := json.Unmarshal(body, &e); err != nil || e.Method == "" {
			return fmt.Errorf("the response is not from the echo upstream")
		}
		if _, leaked := e.Headers[strings.ToLower(c.header)]; leaked && !strings.EqualFold(c.header, "authorization") {
			return fmt.Errorf("the upstream received the capability header %s", c.header)
		}
		auth := e.Headers["authorization"]
		switch {
		case len(auth) != 1:
			return fmt.Errorf("the upstream received %d authorization headers; want 1", len(auth))
		case strings.Contains(auth[0], "kka1."):
			return errors.New("the upstream received the capability in authorization")
		case !strings.HasPrefix(auth[0], "Bearer "):
			return errors.New("the upstream's authorization is not a bearer token")
		}
		fmt.Fprintln(stdout, "ALLOWED: the upstream received a real bearer token and no capability")
		return nil
	}
}

func deniedCall(ctx context.Context, client *http.Client, c config, capability string, stdout io.Writer) error {
	status, body, err := call(ctx, client, c, c.deniedURL, capability)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "GET %s -> %d %s\n", c.deniedURL, status, strings.TrimSpace(string(body)))
	if status != http.StatusUnauthorized && status != http.StatusForbidden {
		return fmt.Errorf("status %d; want 401 or 403", status)
	}
	var deny struct {
		Error  string `json:"error"`
		Method string `json:"method"`
	}
	if err := json.Unmarshal(body, &deny); err != nil || deny.Error == "" || deny.Method != "" {
		return errors.New(`the body is not {"error":"<reason>"} from the proxy`)
	}
	fmt.Fprintf(stdout, "DENIED: %s\n", deny.Error)
	return nil
}

// call sends GET target through the proxy with the capability and returns the
// status and up to 64 KiB of the body.
func call(ctx context.Context, client *http.Client, c config, target, capability string) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return 0, nil, err
	}
	if strings.EqualFold(c.header, "authorization") {
		req.Header.Set("Authorization", "Bearer "+capability)
	} else {
		req.Header.Set(c.header, capability)
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return 0, nil, err
	}
	return resp.StatusCode, body, nil
}
