package loadgen

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"
)

func TestRunCountsSuccessesAndErrors(t *testing.T) {
	var n atomic.Int64
	r, err := Run(context.Background(), Options{Concurrency: 4, Duration: 200 * time.Millisecond}, func(int) Func {
		return func(context.Context) error {
			time.Sleep(time.Millisecond)
			if n.Add(1)%10 == 0 {
				return errors.New("every tenth fails")
			}
			return nil
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if r.Requests == 0 || r.Errors == 0 || r.FirstErr == nil {
		t.Fatalf("Run = %v; want requests and some errors", r)
	}
	if got := len(r.Latencies); got != r.Requests-r.Errors {
		t.Errorf("latencies = %d; want %d", got, r.Requests-r.Errors)
	}
	if p50, p99 := r.Percentile(0.5), r.Percentile(0.99); p50 < time.Millisecond || p99 < p50 {
		t.Errorf("p50 %v, p99 %v; want ≥ 1ms and p99 ≥ p50", p50, p99)
	}
	if r.RPS() <= 0 {
		t.Errorf("RPS = %v; want > 0", r.RPS())
	}
}

func TestPercentile(t *testing.T) {
	var r Result
	for i := 1; i <= 100; i++ {
		r.Latencies = append(r.Latencies, time.Duration(i))
	}
	for _, tc := range []struct {
		q    float64
		want time.Duration
	}{{0.01, 1}, {0.5, 50}, {0.99, 99}, {1, 100}} {
		if got := r.Percentile(tc.q); got != tc.want {
			t.Errorf("Percentile(%v) = %v; want %v", tc.q, got, tc.want)
		}
	}
	if got := (Result{}).Percentile(0.5); got != 0 {
		t.Errorf("Percentile of nothing = %v; want 0", got)
	}
}

func TestRunRejectsNonPositive(t *testing.T) {
	if _, err := Run(context.Background(), Options{}, nil); err == nil {
		t.Fatal("Run with zero options: want an error")
	}
}

func TestMedian(t *testing.T) {
	id := func(v int64) int64 { return v }
	for _, c := range []struct {
		in   []int64
		want int64
	}{{nil, 0}, {[]int64{5}, 5}, {[]int64{9, 1, 5}, 5}, {[]int64{4, 1, 3, 2}, 2}} {
		if got := Median(c.in, id); got != c.want {
			t.Errorf("Median(%v) = %d; want %d", c.in, got, c.want)
		}
	}
}
