package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const testCapability = "kka1.aaaa:bbbb:cccc"

// fakeProxy stands in for Envoy + extauthz + the echo upstream: it allows
// /api/profile (swapping the capability for a real token unless leak is set)
// and denies everything else.
func fakeProxy(t *testing.T, behaviour string) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !r.URL.IsAbs() {
			t.Errorf("request target %q is not absolute-form: the client did not use the proxy", r.RequestURI)
		}
		w.Header().Set("Content-Type", "application/json")
		allowed := r.URL.Path == "/api/profile" || behaviour == "allow everything"
		if !allowed {
			w.WriteHeader(http.StatusForbidden)
			w.Write([]byte(`{"error":"upstream_not_allowed"}`))
			return
		}
		if r.Header.Get("x-kilo-capability") != testCapability && r.Header.Get("Authorization") != "Bearer "+testCapability {
			w.WriteHeader(http.StatusUnauthorized)
			w.Write([]byte(`{"error":"missing_capability"}`))
			return
		}
		if behaviour != "leak capability" {
			r.Header.Del("x-kilo-capability")
			r.Header.Set("Authorization", "Bearer real-user-token")
		}
		h := map[string][]string{}
		for k, v := range r.Header {
			h[strings.ToLower(k)] = v
		}
		json.NewEncoder(w).Encode(echoed{Method: r.Method, Path: r.URL.Path, Host: r.Host, Headers: h})
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestRun(t *testing.T) {
	capFile := filepath.Join(t.TempDir(), "capability")
	if err := os.WriteFile(capFile, []byte(testCapability+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name      string
		behaviour string
		extra     []string
		wantCode  int
		wantOut   string
	}{
		{"demo behaves", "", nil, 0, "DENIED: upstream_not_allowed"},
		{"capability in authorization", "", []string{"--header", "authorization"}, 0, "ALLOWED"},
		{"proxy leaks the capability", "leak capability", nil, 1, "received the capability header"},
		{"proxy leaks the capability in authorization", "leak capability", []string{"--header", "authorization"}, 1, "capability in authorization"},
		{"proxy allows the out-of-scope call", "allow everything", nil, 1, "want 401 or 403"},
		{"missing capability file", "", []string{"--capability-file", filepath.Join(t.TempDir(), "none")}, 2, ""},
		{"bad proxy URL", "", []string{"--proxy", "https://proxy"}, 2, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := fakeProxy(t, tt.behaviour)
			args := append([]string{
				"--proxy", srv.URL,
				"--capability-file", capFile,
				"--allowed-url", "http://echo.test/api/profile",
				"--denied-url", "http://echo.test/api/session/other/export",
				"--retry-for", "0s",
			}, tt.extra...)
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), args, &stdout, &stderr)
			if code != tt.wantCode {
				t.Errorf("exit code = %d; want %d\nstdout:\n%s\nstderr:\n%s", code, tt.wantCode, &stdout, &stderr)
			}
			if !strings.Contains(stdout.String(), tt.wantOut) {
				t.Errorf("stdout does not contain %q:\n%s", tt.wantOut, &stdout)
			}
			if tt.behaviour == "" && strings.Contains(stdout.String()+stderr.String(), testCapability) {
				t.Errorf("the capability appears in the output")
			}
		})
	}
}
