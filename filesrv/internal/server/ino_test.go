package server_test

import (
	"io/fs"
	"syscall"
)

// fileIno returns the inode number behind a FileInfo.
func fileIno(fi fs.FileInfo) uint64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return st.Ino
	}
	return 0
}
