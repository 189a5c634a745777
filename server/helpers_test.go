package server

import (
	"context"
	"io"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/rs/zerolog"

	"github.com/extauthz/extauthz/internal/flagspec"
	"github.com/extauthz/extauthz/internal/testutil/proc"
	"github.com/extauthz/extauthz/internal/testutil/testsupport"
)

// parseConfig is the configuration `extauthz serve` would run with for
// args, the environment left out.
func parseConfig(args ...string) (Config, error) { return parseConfigEnv(nil, args...) }

// parseConfigEnv is parseConfig with the environment variables env.
func parseConfigEnv(env map[string]string, args ...string) (Config, error) {
	var c Config
	if _, err := flagspec.Parse("serve", "serve", c.Flags(), args, func(k string) string { return env[k] }, io.Discard); err != nil {
		return c, err
	}
	return c, c.Validate()
}

func mustConfig(t testing.TB, args ...string) Config {
	t.Helper()
	c, err := parseConfig(args...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// running is a Server serving in this process, as `extauthz serve` with
// the flags it was started with, its JSON log lines collected.
type running struct {
	srv    *Server
	logs   proc.Lines
	stdout proc.Output
	hup    chan os.Signal
	stop   context.CancelFunc
	done   chan error
}

// startServer runs a server for args, with no drain delay unless args set
// one. It is stopped when the test ends.
func startServer(t *testing.T, args ...string) *running {
	t.Helper()
	r := &running{hup: make(chan os.Signal, 1), done: make(chan error, 1)}
	srv, err := New(mustConfig(t, append([]string{"--drain-delay", "0"}, args...)...), zerolog.New(&r.logs).With().Timestamp().Logger())
	if err != nil {
		t.Fatal(err)
	}
	r.srv = srv
	ctx, stop := context.WithCancel(context.Background())
	r.stop = stop
	go func() {
		r.done <- srv.Run(ctx, RunOptions{Reload: r.hup, Stdout: &r.stdout})
		r.logs.End("stopped")
	}()
	t.Cleanup(func() {
		stop()
		<-r.done
	})
	return r
}

// terminate stops the server as SIGTERM does, and waits until it has.
func (r *running) terminate(t *testing.T) {
	t.Helper()
	r.stop()
	select {
	case err := <-r.done:
		r.done <- err // for the cleanup
		if err != nil {
			t.Errorf("Run = %v after the stop; want nil", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the server did not stop within 20s")
	}
}

// reload sends a reload signal (SIGHUP).
func (r *running) reload() { r.hup <- syscall.SIGHUP }

func (r *running) waitLog(t *testing.T, what string, match func(map[string]any) bool) map[string]any {
	t.Helper()
	return r.logs.Wait(t, 0, what, match)
}

// addr is the address a listener bound, once it has.
func (r *running) addr(t *testing.T, listener string) string {
	t.Helper()
	m := r.waitLog(t, listener+" listener", func(m map[string]any) bool {
		return m["message"] == "listening" && m["listener"] == listener
	})
	return m["addr"].(string)
}

func msg(text string) func(map[string]any) bool {
	return func(m map[string]any) bool { return m["message"] == text }
}

func newKey(t testing.TB) []byte { return testsupport.NewKey(t) }

func writeKeys(t testing.TB, path string, keys ...[]byte) { testsupport.WriteKeys(t, path, keys...) }

// newKeyFile writes a key file holding a new key in a temporary directory.
func newKeyFile(t testing.TB) (path string, key []byte) {
	t.Helper()
	path, key = t.TempDir()+"/keys", newKey(t)
	writeKeys(t, path, key)
	return path, key
}

// sealFor seals the --dev subject with key.
func sealFor(t testing.TB, key []byte) string { return testsupport.Seal(t, key, DevSubject()) }

// checkRequest is the Check the --dev help prints, with tok.
func checkRequest(tok string) *authv3.CheckRequest {
	return testsupport.CheckRequest(DevSubject().OutboundContainerID, tok)
}

func httpBody(t *testing.T, url string) string {
	t.Helper()
	_, body := testsupport.HTTPCall(t, "GET", url, "", nil)
	return body
}

// noSecret fails when text contains one of secrets.
func noSecret(t *testing.T, what, text string, secrets ...string) {
	t.Helper()
	for _, s := range secrets {
		if strings.Contains(text, s) {
			t.Errorf("%s contains a secret (%.10s…)", what, s)
		}
	}
}
