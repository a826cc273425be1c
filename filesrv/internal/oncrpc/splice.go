package oncrpc

import (
	"os"

	"golang.org/x/sys/unix"
)

// SpliceMin is the least reply data worth splicing (see
// Writer.SpliceFrom): below it, the two system calls more cost more than
// the copy they save.
const SpliceMin = 64 << 10

// pipeSize is the capacity asked for the pipes that carry spliced data:
// twice the largest READ, as a pipe holds whole pages of the page cache
// and 1 MiB that does not start on a page spans one more. Without
// CAP_SYS_RESOURCE a pipe gets at most /proc/sys/fs/pipe-max-size
// (1 MiB by default), and such a READ may come a page short.
const pipeSize = 2 << 20

// maxPipes bounds the idle pipes kept for reuse. Each holds up to
// pipeSize of kernel memory only while a reply is in flight; idle, it
// is empty.
const maxPipes = 16

var pipePool = make(chan *pipe, maxPipes)

// pipe is a pipe whose read end's data goes to a connection by splice.
type pipe struct {
	r, w int
}

// getPipe returns an empty pipe from the pool or a new one.
func getPipe() (*pipe, error) {
	select {
	case p := <-pipePool:
		return p, nil
	default:
	}
	var fds [2]int
	if err := unix.Pipe2(fds[:], unix.O_CLOEXEC|unix.O_NONBLOCK); err != nil {
		return nil, err
	}
	p := &pipe{r: fds[0], w: fds[1]}
	// Refused past the user's quota of pipe pages (pipe-user-pages-soft):
	// the caller copies instead.
	if _, err := unix.FcntlInt(uintptr(p.w), unix.F_SETPIPE_SZ, pipeSize); err != nil {
		if _, err := unix.FcntlInt(uintptr(p.w), unix.F_SETPIPE_SZ, pipeSize/2); err != nil {
			p.close()
			return nil, err
		}
	}
	return p, nil
}

// put returns an empty pipe to the pool; one that may still hold data
// is closed instead.
func (p *pipe) put(empty bool) {
	if !empty {
		p.close()
		return
	}
	select {
	case pipePool <- p:
	default:
		p.close()
	}
}

func (p *pipe) close() {
	unix.Close(p.r)
	unix.Close(p.w)
}

// tail is reply data held in a pipe, sent after the Writer's bytes.
type tail struct {
	p   *pipe
	n   int // bytes in the pipe
	pad int // zero bytes sent after them (XDR padding)
}

// SpliceFrom reads up to n bytes of f at off, as the reply's last field's
// data, into a pipe that the connection then sends on to the client
// without the data passing through the process: it returns how many
// bytes it read, after which the caller writes nothing more to w. It
// may read fewer than n before the end of the file (a pipe holds a
// bounded number of pages), which NFS allows. ok is false when the
// reply cannot carry spliced data (UDP, a connection that is not a
// socket, no pipe to be had, a file that cannot be spliced): then
// nothing was read and the caller reads into the buffer instead.
func (w *Writer) SpliceFrom(f *os.File, off int64, n int) (got int, ok bool, err error) {
	if !w.spliceOK || w.tail != nil || n <= 0 {
		return 0, false, nil
	}
	p, err := getPipe()
	if err != nil {
		return 0, false, nil
	}
	rc, err := f.SyscallConn()
	if err != nil {
		p.put(true)
		return 0, false, nil
	}
	var serr error
	// Control, not Read: a file's Read lock would serialize the READs of
	// one file, which pread does not. The file is not pollable, so no
	// waiting is lost.
	err = rc.Control(func(fd uintptr) {
		for got < n {
			k, err := unix.Splice(int(fd), &off, p.w, nil, n-got, unix.SPLICE_F_MOVE|unix.SPLICE_F_NONBLOCK)
			switch {
			case err == unix.EINTR:
				continue
			case err == unix.EAGAIN:
				// The pipe is full (its pages, not its bytes: the file's
				// data need not start on a page): send what it holds.
				return
			case err != nil:
				serr = err
				return
			case k == 0:
				return // end of file
			}
			got += int(k)
		}
	})
	if err == nil {
		err = serr
	}
	if got == 0 {
		// At the end of the file; or failed (a file system that cannot
		// splice): then the caller's copy finds out.
		p.put(true)
		return 0, err == nil, nil
	}
	w.tail = &tail{p: p, n: got, pad: pad(got)}
	return got, true, err
}

// dropTail discards spliced data that will not be sent.
func (w *Writer) dropTail() {
	if w.tail != nil {
		w.tail.p.put(false)
		w.tail = nil
	}
}
