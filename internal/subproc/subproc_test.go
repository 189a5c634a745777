package subproc

import (
	"os/exec"
	"testing"
	"time"
)

// TestTerminate: a process that exits on SIGTERM stops at once; one that
// ignores it is killed after the grace period.
func TestTerminate(t *testing.T) {
	for _, c := range []struct {
		name   string
		script string
		min    time.Duration
	}{
		{"exits on SIGTERM", "sleep 30", 0},
		{"ignores SIGTERM", "trap '' TERM; while :; do sleep 0.05; done", 300 * time.Millisecond},
	} {
		t.Run(c.name, func(t *testing.T) {
			cmd := exec.Command("sh", "-c", c.script)
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			done := make(chan struct{})
			go func() { _ = cmd.Wait(); close(done) }()
			time.Sleep(100 * time.Millisecond) // let the shell set its trap
			start := time.Now()
			Terminate(cmd.Process, done, 300*time.Millisecond)
			select {
			case <-done:
			default:
				t.Fatal("Terminate returned before the process exited")
			}
			if took := time.Since(start); took < c.min || took > 5*time.Second {
				t.Errorf("took %v; want at least %v", took, c.min)
			}
			Terminate(cmd.Process, done, time.Second) // an exited process: returns at once
		})
	}
}
