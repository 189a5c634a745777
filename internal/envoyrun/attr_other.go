//go:build !linux

package envoyrun

import "syscall"

// childAttr leaves Envoy in the caller's process group: without Linux's
// parent-death signal, a terminal's Ctrl-C is what stops it if the program
// that started it dies first.
func childAttr() *syscall.SysProcAttr { return nil }
