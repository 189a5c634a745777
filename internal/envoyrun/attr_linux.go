package envoyrun

import "syscall"

// childAttr puts Envoy in a process group of its own (a terminal's Ctrl-C
// goes to the program that started it, which stops it) and kills it when
// that program dies, however it dies.
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
}
