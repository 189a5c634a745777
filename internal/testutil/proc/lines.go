package proc

import (
	"encoding/json"
	"strings"
	"sync"
	"time"
)

// Lines collects the lines written to it (a process's stderr, a logger's
// JSON output) and lets a test wait for one. The zero value is ready to
// use.
type Lines struct {
	mu      sync.Mutex
	cond    *sync.Cond
	lines   []string
	partial string
	ended   string // why no more lines will come; "" while they may
}

// T is what Wait reports a failure to: a *testing.T, for instance.
type T interface {
	Helper()
	Fatalf(format string, args ...any)
}

// Write adds the complete lines in p; a trailing partial line waits for
// the rest.
func (l *Lines) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	text := l.partial + string(p)
	parts := strings.Split(text, "\n")
	l.partial = parts[len(parts)-1]
	l.lines = append(l.lines, parts[:len(parts)-1]...)
	l.broadcast()
	return len(p), nil
}

// Add adds one line.
func (l *Lines) Add(line string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, line)
	l.broadcast()
}

// End says that no more lines will come, and why (the process exited):
// Wait fails from then on rather than wait.
func (l *Lines) End(why string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.ended == "" {
		l.ended = why
	}
	l.broadcast()
}

func (l *Lines) broadcast() {
	if l.cond == nil {
		l.cond = sync.NewCond(&l.mu)
	}
	l.cond.Broadcast()
}

// Len is the number of lines so far: a mark for Wait.
func (l *Lines) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.lines)
}

// All returns the lines so far.
func (l *Lines) All() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.lines...)
}

// String is the lines so far, joined.
func (l *Lines) String() string { return strings.Join(l.All(), "\n") }

// Wait waits up to 20 s for a line from the from-th on that is a JSON
// object satisfying match, and returns it parsed. A line written before
// the event waited for (a poll reload racing a SIGHUP) must not satisfy
// it: take a mark with Len first.
func (l *Lines) Wait(t T, from int, what string, match func(map[string]any) bool) map[string]any {
	t.Helper()
	timeout := time.AfterFunc(20*time.Second, func() { l.End("timeout") })
	defer timeout.Stop()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.cond == nil {
		l.cond = sync.NewCond(&l.mu)
	}
	for next := from; ; l.cond.Wait() {
		for ; next < len(l.lines); next++ {
			var m map[string]any
			if json.Unmarshal([]byte(l.lines[next]), &m) == nil && match(m) {
				return m
			}
		}
		if l.ended != "" {
			t.Fatalf("waiting for %s: %s; log:\n%s", what, l.ended, strings.Join(l.lines, "\n"))
		}
	}
}
