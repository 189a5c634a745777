package benchcpu

import (
	"testing"
	"time"
)

// TestNowCountsWork: spinning for 50 ms of wall time adds CPU time, and
// sleeping adds almost none.
func TestNowCountsWork(t *testing.T) {
	start := Now()
	for deadline := time.Now().Add(50 * time.Millisecond); time.Now().Before(deadline); {
	}
	spun := Now() - start
	if spun < 10*time.Millisecond {
		t.Fatalf("50 ms of spinning counted %v of CPU", spun)
	}
	start = Now()
	time.Sleep(50 * time.Millisecond)
	if slept := Now() - start; slept > 25*time.Millisecond {
		t.Errorf("50 ms of sleep counted %v of CPU", slept)
	}
}

func BenchmarkReport(b *testing.B) {
	start := Now()
	x := 0
	for b.Loop() {
		x++
	}
	Report(b, start)
}
