package server

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
	logBufferSize = 64 << 10
	// LogFlushInterval is how long a line below warn may wait.
	LogFlushInterval = 100 * time.Millisecond
)

// LogBuffer is the server log's writer: lines below warn are buffered and
// written at least every flush interval, when the buffer fills, and at
// Close; a warning or error is written at once, with everything before it.
// Lines are never split or reordered. Close must run before the process
// exits, or up to one interval of lines is lost.
type LogBuffer struct {
	mu     sync.Mutex
	w      *bufio.Writer
	closed bool // after Close every line is written at once
	stop   chan struct{}
	done   chan struct{}
}

var _ zerolog.LevelWriter = (*LogBuffer)(nil)

// NewLogBuffer buffers lines for w, flushed at least every interval.
func NewLogBuffer(w io.Writer, interval time.Duration) *LogBuffer {
	b := &LogBuffer{w: bufio.NewWriterSize(w, logBufferSize), stop: make(chan struct{}), done: make(chan struct{})}
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
func (b *LogBuffer) Write(p []byte) (int, error) {
	return b.WriteLevel(zerolog.NoLevel, p)
}

// WriteLevel buffers a line below warn and writes a warning or worse at once.
func (b *LogBuffer) WriteLevel(l zerolog.Level, p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	n, err := b.w.Write(p)
	if err == nil && (b.closed || (l >= zerolog.WarnLevel && l != zerolog.NoLevel)) {
		err = b.w.Flush()
	}
	return n, err
}

// Flush writes what is buffered.
func (b *LogBuffer) Flush() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.w.Flush()
}

// Close stops the periodic flush and writes what is buffered; a line
// logged after Close (a library's goroutine) is written at once.
func (b *LogBuffer) Close() error {
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
