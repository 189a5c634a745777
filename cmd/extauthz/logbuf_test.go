package main

import (
	"context"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/rs/zerolog"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/extauthz/extauthz/internal/testutil/testsupport"
)

// TestLogBuffer: info lines wait for a flush, a warning is written at once
// with everything before it, Close writes the rest and later lines go
// straight through.
func TestLogBuffer(t *testing.T) {
	var out testsupport.LockedBuffer
	b := newLogBuffer(&out, time.Hour)
	log := zerolog.New(b)
	log.Info().Msg("one")
	log.Info().Msg("two")
	if out.String() != "" {
		t.Fatalf("info lines written before a flush: %q", out.String())
	}
	log.Warn().Msg("three")
	if got := strings.Count(out.String(), "\n"); got != 3 {
		t.Fatalf("after a warning, %d lines written; want 3:\n%s", got, out.String())
	}
	log.Info().Msg("four")
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	log.Info().Msg("five")
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 5 || !strings.Contains(lines[3], "four") || !strings.Contains(lines[4], "five") {
		t.Fatalf("lines = %q; want five in order", lines)
	}

	var ticked testsupport.LockedBuffer
	b = newLogBuffer(&ticked, 10*time.Millisecond)
	defer b.Close()
	tl := zerolog.New(b)
	tl.Info().Msg("x")
	deadline := time.Now().Add(10 * time.Second)
	for ticked.String() == "" && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if ticked.String() == "" {
		t.Fatal("a buffered line was never flushed by the interval")
	}
}

// TestServeLogsEveryDecisionBeforeExit: decision lines are buffered, and
// SIGTERM straight after a burst of checks still writes one line for each.
func TestServeLogsEveryDecisionBeforeExit(t *testing.T) {
	keyFile := filepath.Join(t.TempDir(), "keys")
	key := newKey(t)
	writeKeys(t, keyFile, key)
	p := startServe(t, "--grpc-addr", "127.0.0.1:0", "--http-addr", "", "--admin-addr", "", "--key-file", keyFile)
	grpcAddr := p.addr(t, "grpc")
	p.waitLog(t, "ready", msg("ready"))
	conn, err := grpc.NewClient(grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := authv3.NewAuthorizationClient(conn)
	tok := sealFor(t, key)
	const workers, each = 8, 50
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for range each {
				resp, err := client.Check(context.Background(), checkRequest(tok))
				if err != nil || resp.GetOkResponse() == nil {
					t.Errorf("Check = %v, %v; want an allow", resp, err)
					return
				}
			}
		})
	}
	wg.Wait()
	stopServe(t, p) // lines are complete once it has exited
	log := p.log()
	if got := strings.Count(log, `"message":"decision"`); got != workers*each {
		t.Errorf("%d decision lines after SIGTERM; want %d", got, workers*each)
	}
	if !strings.Contains(log, `"message":"stopped"`) {
		t.Errorf("the last line before exit is missing:\n%.2000s", log[max(0, len(log)-2000):])
	}
}
