// Package subproc holds what every piece of code that runs another program
// (extauthz demo, the tests and benchmark commands that run extauthz,
// Envoy, nginx, Prometheus) shares: a goroutine-safe sink for its output,
// and one way to stop it.
package subproc

import (
	"bytes"
	"os"
	"sync"
	"syscall"
	"time"
)

// Output is a goroutine-safe io.Writer that collects a process's output (or
// log lines) for assertions. The zero value is ready to use.
type Output struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (o *Output) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.b.Write(p)
}

// String returns everything written so far.
func (o *Output) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.b.String()
}

// Terminate asks p to exit with SIGTERM and waits for done (closed when it
// has exited); after grace it kills p and waits again. It returns at once
// if p has already exited.
func Terminate(p *os.Process, done <-chan struct{}, grace time.Duration) {
	select {
	case <-done:
		return
	default:
	}
	_ = p.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(grace):
		_ = p.Kill()
		<-done
	}
}
