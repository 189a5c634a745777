package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
)

func TestEcho(t *testing.T) {
	tests := []struct {
		name    string
		method  string
		target  string
		headers [][2]string
		want    echoed
	}{
		{
			name:   "headers and raw path",
			method: http.MethodPost,
			target: "/api/x%2Fy?q=1",
			headers: [][2]string{
				{"Authorization", "Bearer real-token"},
				{"X-Multi", "a"},
				{"X-Multi", "b"},
			},
			want: echoed{
				Method: http.MethodPost,
				Path:   "/api/x%2Fy?q=1",
				Host:   "upstream.test",
				Headers: map[string][]string{
					"authorization": {"Bearer real-token"},
					"x-multi":       {"a", "b"},
				},
			},
		},
		{
			name:   "no headers",
			method: http.MethodGet,
			target: "/",
			want:   echoed{Method: http.MethodGet, Path: "/", Host: "upstream.test", Headers: map[string][]string{}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := httptest.NewRequest(tt.method, tt.target, nil)
			req.Host = "upstream.test"
			for _, h := range tt.headers {
				req.Header.Add(h[0], h[1])
			}
			rec := httptest.NewRecorder()
			echo(rec, req)
			if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type = %q; want application/json", ct)
			}
			var got echoed
			if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
				t.Fatal(err)
			}
			if got.Method != tt.want.Method || got.Path != tt.want.Path || got.Host != tt.want.Host {
				t.Errorf("echo = %+v; want %+v", got, tt.want)
			}
			if len(got.Headers) != len(tt.want.Headers) {
				t.Errorf("headers = %v; want %v", got.Headers, tt.want.Headers)
			}
			for k, v := range tt.want.Headers {
				if !slices.Equal(got.Headers[k], v) {
					t.Errorf("headers[%q] = %q; want %q", k, got.Headers[k], v)
				}
			}
		})
	}
}

// TestRunLoopback starts the real server on a free loopback port, makes one
// request and shuts it down.
func TestRunLoopback(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		err := run(ctx, []string{"--addr", "127.0.0.1:0"}, pw)
		pw.Close()
		done <- err
	}()
	line, err := bufio.NewReader(pr).ReadString('\n')
	if err != nil {
		t.Fatalf("reading the listen line: %v", err)
	}
	go io.Copy(io.Discard, pr) //nolint:errcheck // drain until run returns
	addr := strings.TrimSpace(strings.TrimPrefix(line, "echo-upstream listening on "))

	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/healthz", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Probe", "1")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var got echoed
	err = json.NewDecoder(resp.Body).Decode(&got)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK || got.Path != "/healthz" || !slices.Equal(got.Headers["x-probe"], []string{"1"}) {
		t.Errorf("GET /healthz = %d %+v", resp.StatusCode, got)
	}

	cancel()
	if err := <-done; err != nil {
		t.Errorf("run returned %v after cancel; want nil", err)
	}
}

func TestRunRejectsBadFlags(t *testing.T) {
	tests := []struct {
		name string
		args []string
	}{
		{"unknown flag", []string{"--nope"}},
		{"extra argument", []string{"extra"}},
		{"bad address", []string{"--addr", "127.0.0.1:notaport"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := run(context.Background(), tt.args, io.Discard); err == nil {
				t.Errorf("run(%q) = nil; want an error", tt.args)
			}
		})
	}
}
