package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/extauthz/extauthz/internal/echoupstream"
)

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
	var got echoupstream.Echoed
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
