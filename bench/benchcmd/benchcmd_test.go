package benchcmd

import (
	"bytes"
	"context"
	"errors"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestCommandMain: flags land in Run with the command's defaults, the work
// directory exists while measure runs and is gone after, and each way out
// has its exit status.
func TestCommandMain(t *testing.T) {
	def := Run{Concurrency: 8, Rounds: 3, Duration: time.Second, Warmup: 0}
	for _, tc := range []struct {
		name       string
		args       []string
		setup      error
		measure    error
		want       int
		wantStderr string
		wantRun    Run
	}{
		{name: "defaults", want: 0, wantRun: Run{Concurrency: 8, Rounds: 3, Duration: time.Second}},
		{name: "flags", args: []string{"-concurrency", "2", "-rounds=5", "-duration", "2s", "-warmup", "1s"}, want: 0,
			wantRun: Run{Concurrency: 2, Rounds: 5, Duration: 2 * time.Second, Warmup: time.Second}},
		{name: "unknown flag", args: []string{"-nope"}, want: 2, wantStderr: "flag provided but not defined"},
		{name: "usage", setup: Usage(errors.New("-rounds must be positive")), want: 2, wantStderr: "bench: -rounds must be positive"},
		{name: "setup fails", setup: errors.New("no envoy"), want: 1, wantStderr: "bench: no envoy"},
		{name: "measure fails", measure: errors.New("extauthz exited"), want: 1, wantStderr: "bench: extauthz exited"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stderr bytes.Buffer
			var r Run
			cmd := New("bench", &stderr, &r, def, Help{Concurrency: "c", Rounds: "r", Keep: "k"})
			var dir string
			code := cmd.Main(tc.args, func() error { return tc.setup }, func(ctx context.Context) error {
				dir = r.Dir
				if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
					t.Errorf("work directory %q: %v", dir, err)
				}
				return tc.measure
			})
			if code != tc.want || !strings.Contains(stderr.String(), tc.wantStderr) {
				t.Errorf("exit %d, stderr %q; want %d and %q", code, stderr.String(), tc.want, tc.wantStderr)
			}
			if dir != "" {
				if _, err := os.Stat(dir); !os.IsNotExist(err) {
					t.Errorf("work directory %s left behind without -keep", dir)
				}
			}
			if tc.want == 0 {
				got := r
				got.Dir, got.Progress = "", nil
				if got != tc.wantRun || r.Progress != &stderr {
					t.Errorf("Run = %+v; want %+v with progress to stderr", r, tc.wantRun)
				}
			}
		})
	}
}

func TestKeep(t *testing.T) {
	var stderr bytes.Buffer
	var r Run
	code := New("bench", &stderr, &r, Run{}, Help{}).Main([]string{"-keep"}, nil, func(context.Context) error { return nil })
	defer os.RemoveAll(r.Dir)
	if _, err := os.Stat(r.Dir); code != 0 || err != nil || !strings.Contains(stderr.String(), "work directory: "+r.Dir) {
		t.Errorf("exit %d, %v, stderr %q; want the directory kept and named", code, err, stderr.String())
	}
}

func TestCPUTime(t *testing.T) {
	if got := CPUTime(0); got != 0 {
		t.Errorf("CPUTime(0) = %v; want 0", got)
	}
	// Spin until the kernel has accounted 50 ms of CPU to this process (on a
	// busy machine that takes longer than 50 ms).
	for {
		var ru syscall.Rusage
		if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
			t.Fatal(err)
		}
		if ru.Utime.Nano()+ru.Stime.Nano() >= (50 * time.Millisecond).Nanoseconds() {
			break
		}
	}
	if got := CPUTime(os.Getpid()); got <= 0 {
		t.Errorf("CPUTime(self) = %v after 50 ms of CPU; want > 0", got)
	}
}

func TestRound(t *testing.T) {
	for _, tc := range []struct{ in, want time.Duration }{
		{1234567 * time.Nanosecond, 1230 * time.Microsecond},
		{123456 * time.Nanosecond, 123 * time.Microsecond},
	} {
		if got := Round(tc.in); got != tc.want {
			t.Errorf("Round(%v) = %v; want %v", tc.in, got, tc.want)
		}
	}
}
