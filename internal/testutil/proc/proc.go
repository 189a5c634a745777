// Package proc holds what the tests and benchmark commands that run other
// programs (extauthz, Envoy, nginx, Prometheus) share: a goroutine-safe sink
// for their output and one way to stop them (both from internal/subproc,
// which the demo command uses too), and Lines, to wait for a log line.
package proc

import (
	"os"
	"time"

	"github.com/extauthz/extauthz/internal/subproc"
)

// Output is a goroutine-safe io.Writer that collects a process's output.
type Output = subproc.Output

// Terminate asks p to exit with SIGTERM and waits for done; after grace it
// kills p (subproc.Terminate).
func Terminate(p *os.Process, done <-chan struct{}, grace time.Duration) {
	subproc.Terminate(p, done, grace)
}
