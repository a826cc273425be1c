//go:build !linux

package main

import "syscall"

// childAttr returns nil: only Linux can tie a child's life to its parent's.
// The baseline still exits when its standard input closes.
func childAttr() *syscall.SysProcAttr { return nil }
