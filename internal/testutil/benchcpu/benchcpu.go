// Package benchcpu reports the CPU time a benchmark used per operation, next
// to the wall time `go test -bench` reports. On a shared machine other
// processes stretch ns/op (the benchmark waits for a CPU); the process's own
// CPU time is what the operation costs. Only benchmarks import it.
package benchcpu

import (
	"syscall"
	"testing"
	"time"
)

// Now returns the CPU time the process has used so far: user and system
// time of every thread, the garbage collector's included.
func Now() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// Report reports the process's CPU time since start divided by b.N as
// "cpu-ns/op". Call it right after the b.Loop loop, with start taken right
// before it.
func Report(b *testing.B, start time.Duration) {
	if b.N > 0 && start > 0 {
		b.ReportMetric(float64(Now()-start)/float64(b.N), "cpu-ns/op")
	}
}
