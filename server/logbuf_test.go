package server

import (
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/extauthz/extauthz/internal/testutil/testsupport"
)

// TestLogBuffer: info lines wait for a flush, a warning is written at once
// with everything before it, Close writes the rest and later lines go
// straight through.
func TestLogBuffer(t *testing.T) {
	var out testsupport.LockedBuffer
	b := NewLogBuffer(&out, time.Hour)
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
	b = NewLogBuffer(&ticked, 10*time.Millisecond)
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
