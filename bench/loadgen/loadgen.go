// Package loadgen drives a request function at a fixed concurrency for a fixed
// time and reports throughput and latency percentiles. It knows nothing of the
// protocol: the caller supplies one function per worker (an HTTP request
// through a proxy, a gRPC Check, …), so every benchmark in bench/ measures the
// same way.
//
// Each worker issues its next request as soon as the previous one returns
// (closed loop), so the concurrency is the number of requests in flight.
package loadgen

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"
)

// Func sends one request and returns nil if it succeeded.
type Func func(ctx context.Context) error

// Options tune Run.
type Options struct {
	// Concurrency is the number of workers, each with one request in flight.
	Concurrency int
	// Duration is how long requests are measured.
	Duration time.Duration
}

// Result is one measured run.
type Result struct {
	Requests int           // requests that completed within Duration
	Errors   int           // of which failed
	FirstErr error         // the first failure, nil if none
	Elapsed  time.Duration // wall time of the measurement
	// Latencies of the successful requests, sorted ascending.
	Latencies []time.Duration
}

// RPS is successful requests per second.
func (r Result) RPS() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Requests-r.Errors) / r.Elapsed.Seconds()
}

// Percentile returns the q-quantile (0 < q ≤ 1) of the successful requests'
// latencies, nearest rank; 0 if there were none.
func (r Result) Percentile(q float64) time.Duration {
	n := len(r.Latencies)
	if n == 0 {
		return 0
	}
	i := int(q*float64(n)+0.999999) - 1
	return r.Latencies[min(max(i, 0), n-1)]
}

// Run calls newWorker once per worker, then has every worker call its Func in
// a loop for opts.Duration. A request still in flight when the time is up is
// left to finish (so that keep-alive connections survive into the next run)
// but not counted. newWorker lets each worker own its connection
// (or share one, as the caller prefers).
func Run(ctx context.Context, opts Options, newWorker func(i int) Func) (Result, error) {
	if opts.Concurrency < 1 || opts.Duration <= 0 {
		return Result{}, errors.New("loadgen: concurrency and duration must be positive")
	}
	fns := make([]Func, opts.Concurrency)
	for i := range fns {
		fns[i] = newWorker(i)
	}
	type tally struct {
		lat      []time.Duration
		errs     int
		firstErr error
	}
	tallies := make([]tally, opts.Concurrency)
	var wg sync.WaitGroup
	start := time.Now()
	deadline := start.Add(opts.Duration)
	for i, fn := range fns {
		t := &tallies[i]
		t.lat = make([]time.Duration, 0, 4096)
		wg.Go(func() {
			for ctx.Err() == nil {
				t0 := time.Now()
				if !t0.Before(deadline) {
					return
				}
				err := fn(ctx)
				t1 := time.Now()
				if t1.After(deadline) {
					return // finished after the window: not counted
				}
				if err != nil {
					t.errs++
					if t.firstErr == nil {
						t.firstErr = err
					}
					continue
				}
				t.lat = append(t.lat, t1.Sub(t0))
			}
		})
	}
	wg.Wait()
	r := Result{Elapsed: opts.Duration}
	for _, t := range tallies {
		r.Latencies = append(r.Latencies, t.lat...)
		r.Errors += t.errs
		if r.FirstErr == nil && t.firstErr != nil {
			r.FirstErr = t.firstErr
		}
	}
	r.Requests = len(r.Latencies) + r.Errors
	slices.Sort(r.Latencies)
	return r, ctx.Err() // interrupted: the result is incomplete
}

// String summarises a result on one line.
func (r Result) String() string {
	return fmt.Sprintf("%d requests (%d errors) in %v: %.0f req/s, p50 %v, p99 %v",
		r.Requests, r.Errors, r.Elapsed, r.RPS(), r.Percentile(0.50), r.Percentile(0.99))
}

// Median returns the median of the values f picks from xs (the mean of the
// middle two for an even count; 0 for none): each benchmark command reports
// medians over its rounds.
func Median[X any, T int64 | float64 | time.Duration](xs []X, f func(X) T) T {
	v := make([]T, len(xs))
	for i, x := range xs {
		v[i] = f(x)
	}
	slices.Sort(v)
	if len(v) == 0 {
		return 0
	}
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}
