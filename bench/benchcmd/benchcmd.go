// Package benchcmd is what the benchmark commands (grpcbench, envoybench)
// share: the flags that shape a run and the command line around it (work
// directory, interrupt, exit status), starting the two ext_authz servers they
// compare, the names in the shipped Envoy config that their requests follow,
// and readings of CPU time.
package benchcmd

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"

	"github.com/extauthz/extauthz/bench/extauthzproc"
	"github.com/extauthz/extauthz/bench/nopauthz"
)

// Names in the shipped deploy/envoy/envoy.yaml that every benchmark request
// follows: an allowed provider_model call from the configured container.
const (
	APIHost     = "api.kilo.example"
	IngestHost  = "ingest.kilo.example"
	ContainerID = "outbound-container-CHANGE-ME" // the shipped context extension
	CapHeader   = "x-kilo-capability"
	RequestPath = "/api/openrouter/chat/completions"
)

// Run is what every benchmark run has, whatever it measures.
type Run struct {
	Concurrency int           // requests in flight
	Rounds      int           // each measures every case once
	Duration    time.Duration // measured, per case per round
	Warmup      time.Duration // per case, before the first round, not measured
	Dir         string        // work directory: keys, configs, logs
	Progress    io.Writer     // one line per step and measurement; nil: none
}

// Progressf writes one line of progress.
func (r Run) Progressf(format string, a ...any) {
	if r.Progress != nil {
		fmt.Fprintf(r.Progress, format+"\n", a...)
	}
}

// Help is what a command's shared flags mean for it.
type Help struct {
	Concurrency string // -concurrency
	Rounds      string // -rounds
	Keep        string // -keep: what the work directory holds
}

// Command is a benchmark command's command line: the shared flags
// (-concurrency, -rounds, -duration, -warmup, -keep) and any of its own,
// registered in Flags before Main.
type Command struct {
	Flags  *flag.FlagSet
	name   string
	stderr io.Writer
	run    *Run
	keep   bool
}

// New returns the command line of the benchmark name: the shared flags set
// r's fields, with def's as defaults, and progress goes to stderr.
func New(name string, stderr io.Writer, r *Run, def Run, help Help) *Command {
	c := &Command{Flags: flag.NewFlagSet(name, flag.ContinueOnError), name: name, stderr: stderr, run: r}
	c.Flags.SetOutput(stderr)
	r.Progress = stderr
	c.Flags.IntVar(&r.Concurrency, "concurrency", def.Concurrency, help.Concurrency)
	c.Flags.IntVar(&r.Rounds, "rounds", def.Rounds, help.Rounds)
	c.Flags.DurationVar(&r.Duration, "duration", def.Duration, "measured time per case per round")
	c.Flags.DurationVar(&r.Warmup, "warmup", def.Warmup, "unmeasured load per case before the first round")
	c.Flags.BoolVar(&c.keep, "keep", false, "keep the work directory ("+help.Keep+") and print its path")
	return c
}

// Main parses args, calls setup (if not nil), makes the work directory
// (Run.Dir, removed at the end unless -keep), calls measure with a context
// that an interrupt cancels, and returns the exit status: 2 for a bad flag
// or an error from setup that Usage marks, 1 for any other error, else 0.
func (c *Command) Main(args []string, setup func() error, measure func(ctx context.Context) error) int {
	if err := c.Flags.Parse(args); err != nil {
		return 2
	}
	if setup != nil {
		if err := setup(); err != nil {
			fmt.Fprintln(c.stderr, c.name+":", err)
			if errors.As(err, new(usageError)) {
				return 2
			}
			return 1
		}
	}
	dir, err := os.MkdirTemp("", c.name+"-")
	if err != nil {
		fmt.Fprintln(c.stderr, c.name+":", err)
		return 1
	}
	c.run.Dir = dir
	if c.keep {
		fmt.Fprintln(c.stderr, "work directory:", dir)
	} else {
		defer os.RemoveAll(dir)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := measure(ctx); err != nil {
		fmt.Fprintln(c.stderr, c.name+":", err)
		return 1
	}
	return 0
}

// usageError marks a setup error as a misuse of the command line (exit 2).
type usageError struct{ error }

func (e usageError) Unwrap() error { return e.error }

// Usage marks err, returned by a Main setup, as a misuse of the command line.
func Usage(err error) error { return usageError{err} }

// Servers are the two ext_authz servers a benchmark compares, each a process
// of its own: extauthz built from the tree, run as users run it, and a
// do-nothing server.
type Servers struct {
	Ext *extauthzproc.Process
	Nop *nopauthz.Process
}

// ServerOptions says how to start the Servers.
type ServerOptions struct {
	Bin      string                // extauthz binary; empty: built from the tree into Run.Dir
	KeyFile  string                // extauthz's key file
	TokenLen int                   // the do-nothing server sets authorization to a value this long (Mirror),
	BareNop  bool                  // or answers a bare OK,
	Nop      *authv3.CheckResponse // or, if not nil, this
	Extra    []string              // more flags for extauthz serve
}

// StartServers starts extauthz (serve, with o.Extra) and the do-nothing
// server, both logging into r.Dir (extauthz.log, nopauthz.log).
func StartServers(r Run, o ServerOptions) (*Servers, error) {
	if o.Bin == "" {
		r.Progressf("building extauthz")
		var err error
		if o.Bin, err = extauthzproc.Build(r.Dir); err != nil {
			return nil, err
		}
	}
	ext, err := extauthzproc.Start(o.Bin, o.KeyFile, filepath.Join(r.Dir, "extauthz.log"), o.Extra...)
	if err != nil {
		return nil, err
	}
	resp := o.Nop
	switch {
	case resp != nil:
	case o.BareNop:
		resp = nopauthz.Bare()
	default:
		resp = nopauthz.Mirror(CapHeader, o.TokenLen)
	}
	nop, err := nopauthz.StartProcess(resp, filepath.Join(r.Dir, "nopauthz.log"))
	if err != nil {
		ext.Stop()
		return nil, err
	}
	return &Servers{Ext: ext, Nop: nop}, nil
}

// Stop stops both servers.
func (s *Servers) Stop() {
	s.Nop.Stop()
	s.Ext.Stop()
}

// CPUTime is a process's user+system CPU time from /proc/PID/stat (clock
// ticks of 10 ms); 0 for pid 0 or when unreadable.
func CPUTime(pid int) time.Duration {
	if pid <= 0 {
		return 0
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	// Fields after the command name, which is in parentheses and may contain
	// spaces: state is field 3, utime 14 and stime 15.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0
	}
	return time.Duration(ut+st) * 10 * time.Millisecond
}

// CPUModel is the machine's CPU model name, for the report's header.
func CPUModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return "unknown CPU"
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown CPU"
}

// Round rounds a latency for the report: to 10 µs above a millisecond, to
// 1 µs below.
func Round(d time.Duration) time.Duration {
	if d > time.Millisecond {
		return d.Round(10 * time.Microsecond)
	}
	return d.Round(time.Microsecond)
}
