package netsrv

import (
	"errors"
	"syscall"

	"golang.org/x/sys/unix"
)

// errPipeEmpty: SpliceFrom was asked for more than the pipe held.
var errPipeEmpty = errors.New("splice: pipe empty")

// SpliceFrom sends the next n bytes of the pipe whose read end is pipe
// (a file descriptor) to the connection without copying them through
// the process, under the write timeout, and counts them like Write. It
// returns how many it sent; errors.ErrUnsupported, with nothing sent,
// when the connection is not a socket. The pipe must hold the n bytes.
func (c *Conn) SpliceFrom(pipe int, n int) (int64, error) {
	sc, ok := c.Conn.(syscall.Conn)
	if !ok {
		return 0, errors.ErrUnsupported
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return 0, errors.ErrUnsupported
	}
	c.armWrite()
	var sent int64
	var serr error
	err = rc.Write(func(fd uintptr) bool {
		for sent < int64(n) {
			k, err := unix.Splice(pipe, nil, int(fd), nil, n-int(sent), unix.SPLICE_F_MOVE|unix.SPLICE_F_NONBLOCK)
			switch {
			case err == unix.EINTR:
				continue
			case err == unix.EAGAIN:
				if avail, err := unix.IoctlGetInt(pipe, unix.TIOCINQ); err != nil || avail == 0 {
					// Not the socket: the pipe ran dry, and waiting
					// for room in the socket would spin.
					serr = errPipeEmpty
					return true
				}
				return false // the socket is full: wait for room
			case err != nil:
				serr = err
				return true
			case k == 0:
				serr = errPipeEmpty
				return true
			}
			sent += k
		}
		return true
	})
	c.stats.sent(int(sent))
	if err == nil {
		err = serr
	}
	return sent, err
}
