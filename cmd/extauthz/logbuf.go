package main

import (
	"bufio"
	"io"
	"sync"
	"time"

	"github.com/rs/zerolog"
)

// Log buffering: one decision line per request would otherwise be one
// write system call per request, about 2 % of the server's CPU under load.
const (
	logBufferSize    = 64 << 10
	logFlushInterval = 100 * time.Millisecond
)

// logBuffer is the server log's writer: lines below warn are buffered and
// written at least every flush interval, when the buffer fills, and at
// Close; a warning or error is written at once, with everything before it.
// Lines are never split or reordered. Close must run before the process
// exits, or up to one interval of lines is lost.
type logBuffer struct {
	mu     sync.Mutex
	w      *bufio.Writer
	closed bool // after Close every line is written at once
	stop   chan struct{}
	done   chan struct{}
}

var _ zerolog.LevelWriter = (*logBuffer)(nil)

func newLogBuffer(w io.Writer, interval time.Duration) *logBuffer {
	b := &logBuffer{w: bufio.NewWriterSize(w, logBufferSize), stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(b.done)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-b.stop:
				return
			case <-t.C:
				b.Flush()
			}
		}
	}()
	return b
}

// Write buffers one line.
func (b *logBuffer) Write(p []byte) (int, error) {
	return b.WriteLevel(zerolog.NoLevel, p)
}

// WriteLevel buffers a line below warn and writes a warning or worse at once.
func (b *logBuffer) WriteLevel(l zerolog.Level, p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	n, err := b.w.Write(p)
	if err == nil && (b.closed || (l >= zerolog.WarnLevel && l != zerolog.NoLevel)) {
		err = b.w.Flush()
	}
	return n, err
}

// Flush writes what is buffered.
func (b *logBuffer) Flush() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.w.Flush()
}

// Close stops the periodic flush and writes what is buffered; a line
// logged after Close (a library's goroutine) is written at once.
func (b *logBuffer) Close() error {
	select {
	case <-b.stop:
	default:
		close(b.stop)
		<-b.done
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closed = true
	return b.w.Flush()
}
