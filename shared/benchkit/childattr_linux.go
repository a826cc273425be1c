package benchkit

import "syscall"

// ChildAttr makes a started process die with this program, so that no
// server outlives a crashed or killed benchmark.
func ChildAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
