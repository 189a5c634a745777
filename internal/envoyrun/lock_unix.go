//go:build unix

package envoyrun

import (
	"os"
	"syscall"
)

// lockFile holds an exclusive lock on the file name (created if need be)
// until unlock: one Install at a time per directory, across processes.
func lockFile(name string) (unlock func(), err error) {
	f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, err
	}
	return func() { f.Close() }, nil
}
