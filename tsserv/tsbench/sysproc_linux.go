package main

import "syscall"

// childAttr makes a server process die with tsbench, so that no server
// outlives a crashed or killed benchmark.
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
