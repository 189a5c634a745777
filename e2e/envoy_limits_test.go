package e2e

import (
	"bufio"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/extauthz/extauthz/internal/testutil/envoyproc"
	"github.com/extauthz/extauthz/internal/testutil/testpki"
)

// shippedEnvoyConfigs are the Envoy bootstraps under deploy/envoy.
var shippedEnvoyConfigs = []string{"envoy.yaml", "envoy-http-service.yaml", "envoy-compose.yaml"}

// noLimitWarning is what Envoy logs at start when nothing caps its
// downstream connections.
const noLimitWarning = "no configured limit to the number of allowed active downstream connections"

// startShipped starts a shipped Envoy config with its listener and admin on
// loopback, the system CA bundle supplied if this machine lacks it, and the
// change edit makes; nothing else is changed (and nothing behind it runs).
func startShipped(t *testing.T, name string, edit func(*envoyproc.Config) error) *envoyproc.Process {
	t.Helper()
	bin := envoyproc.Require(t)
	cfg, err := envoyproc.Load(filepath.Join("..", "deploy", "envoy", name))
	if err != nil {
		t.Fatal(err)
	}
	for _, err := range []error{cfg.SetAdmin("127.0.0.1", 0), cfg.SetListener(envoyListener, "127.0.0.1", 0)} {
		if err != nil {
			t.Fatal(err)
		}
	}
	if _, err := os.Stat(systemCABundle); err != nil {
		cfg.ReplaceString(systemCABundle, testpki.NewCA(t, "limits").File)
	}
	if edit != nil {
		if err := edit(cfg); err != nil {
			t.Fatal(err)
		}
	}
	e, err := envoyproc.Start(bin, cfg, envoyproc.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Stop)
	return e
}

// TestEnvoyConnectionLimit: every shipped config caps its downstream
// connections. As shipped, Envoy starts without its warning that nothing
// does. With the cap lowered to a handful (the one change), a connection
// over it is closed unanswered while the admin interface still answers, and
// once one closes a new one is served.
func TestEnvoyConnectionLimit(t *testing.T) {
	const limit = 4
	for _, name := range shippedEnvoyConfigs {
		t.Run(name, func(t *testing.T) {
			shipped := startShipped(t, name, nil)
			if strings.Contains(shipped.Output(), noLimitWarning) {
				t.Errorf("Envoy warns as shipped: %s", shipped.Output())
			}
			shipped.Stop()

			e := startShipped(t, name, func(cfg *envoyproc.Config) error { return cfg.SetGlobalConnectionLimit(limit) })
			addr, err := e.ListenerAddr(envoyListener)
			if err != nil {
				t.Fatal(err)
			}
			var open []net.Conn
			t.Cleanup(func() {
				for _, c := range open {
					c.Close()
				}
			})
			for i := range limit {
				c, r := askUnrouted(t, addr)
				open = append(open, c)
				if r == nil || r.StatusCode != http.StatusForbidden {
					t.Fatalf("connection %d of %d: %v; want the catch-all's 403", i+1, limit, r)
				}
			}
			over, r := askUnrouted(t, addr)
			over.Close()
			if r != nil {
				t.Errorf("connection %d, over the cap of %d, got an answer: %s", limit+1, limit, r.Status)
			}
			// A new connection: Admin's client may hold one from before.
			if r := getFresh(t, e.AdminAddr(), "/ready"); r == nil || r.StatusCode != http.StatusOK {
				t.Errorf("the admin interface does not answer a new connection with the connections capped: %v", r)
			}
			if n := globalOverflows(t, e); n < 1 {
				t.Errorf("downstream_global_cx_overflow = %d; want at least 1", n)
			}

			open[0].Close()
			open = open[1:]
			deadline := time.Now().Add(5 * time.Second)
			for {
				c, r := askUnrouted(t, addr)
				open = append(open, c)
				if r != nil && r.StatusCode == http.StatusForbidden {
					break
				}
				c.Close()
				open = open[:len(open)-1]
				if time.Now().After(deadline) {
					t.Fatal("no connection served again after one under the cap closed")
				}
				time.Sleep(20 * time.Millisecond)
			}
		})
	}
}

// globalOverflows sums the listeners' downstream_global_cx_overflow: the
// connections Envoy closed because of the global cap.
func globalOverflows(t *testing.T, e *envoyproc.Process) int {
	t.Helper()
	body, err := e.Admin("/stats?filter=" + url.QueryEscape(`^listener\..*\.downstream_global_cx_overflow$`))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, line := range strings.Split(body, "\n") {
		if _, v, ok := strings.Cut(line, ": "); ok {
			k, _ := strconv.Atoi(strings.TrimSpace(v))
			n += k
		}
	}
	return n
}

// getFresh GETs path from addr on a new connection; nil if the connection
// is closed unanswered.
func getFresh(t *testing.T, addr, path string) *http.Response {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write([]byte("GET " + path + " HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n")); err != nil {
		return nil
	}
	r, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return nil
	}
	r.Body.Close()
	return r
}

// askUnrouted opens a keep-alive connection to Envoy's listener and sends a
// request for a host no route serves, which the catch-all answers itself; it
// returns the connection, open, and the response, nil if Envoy closed the
// connection instead.
func askUnrouted(t *testing.T, addr string) (net.Conn, *http.Response) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write([]byte("GET http://unrouted.example/ HTTP/1.1\r\nHost: unrouted.example\r\n\r\n")); err != nil {
		return c, nil
	}
	r, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return c, nil
	}
	r.Body.Close()
	return c, r
}
