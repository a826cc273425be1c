package nfs3

import (
	"errors"
	"os"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"example.com/appliance/filesrv/internal/export"
	"example.com/appliance/filesrv/internal/handles"
	"example.com/appliance/filesrv/internal/oncrpc"
)

// nfsstat3 values (RFC 1813 section 2.6).
const (
	nfsOK          = 0
	errPerm        = 1
	errNoEnt       = 2
	errIO          = 5
	errNXIO        = 6
	errAcces       = 13
	errExist       = 17
	errXDev        = 18
	errNoDev       = 19
	errNotDir      = 20
	errIsDir       = 21
	errInval       = 22
	errFBig        = 27
	errNoSpc       = 28
	errROFS        = 30
	errMLink       = 31
	errNameTooLong = 63
	errNotEmpty    = 66
	errDQuot       = 69
	errStale       = 70
	errBadHandle   = 10001
	errNotSync     = 10002
	errBadCookie   = 10003
	errNotSupp     = 10004
	errTooSmall    = 10005
	errServerFault = 10006
	errBadType     = 10007
)

// ftype3 values.
const (
	typeReg  = 1
	typeDir  = 2
	typeBlk  = 3
	typeChr  = 4
	typeLnk  = 5
	typeSock = 6
	typeFIFO = 7
)

// Limits of the protocol and of Linux.
const (
	fhMax      = 64   // NFS3_FHSIZE
	nameMax    = 255  // NAME_MAX
	pathMax    = 4096 // PATH_MAX, for symlink targets
	fattrBytes = 84   // encoded fattr3
)

// statusOf maps an error from a file operation to an nfsstat3.
func statusOf(err error) uint32 {
	if err == nil {
		return nfsOK
	}
	switch {
	case errors.Is(err, handles.ErrStale):
		return errStale
	case errors.Is(err, handles.ErrBadHandle):
		return errBadHandle
	}
	var errno syscall.Errno
	if errors.As(err, &errno) {
		switch errno {
		case unix.EPERM:
			return errPerm
		case unix.ENOENT:
			return errNoEnt
		case unix.ENXIO:
			return errNXIO
		case unix.EACCES:
			return errAcces
		case unix.EEXIST:
			return errExist
		case unix.EXDEV:
			return errXDev
		case unix.ENODEV:
			return errNoDev
		case unix.ENOTDIR:
			return errNotDir
		case unix.EISDIR:
			return errIsDir
		case unix.EINVAL:
			return errInval
		case unix.EFBIG:
			return errFBig
		case unix.ENOSPC:
			return errNoSpc
		case unix.EROFS:
			return errROFS
		case unix.EMLINK:
			return errMLink
		case unix.ENAMETOOLONG:
			return errNameTooLong
		case unix.ENOTEMPTY:
			return errNotEmpty
		case unix.EDQUOT:
			return errDQuot
		case unix.ESTALE:
			return errStale
		case unix.ELOOP:
			// A symlink where a file or folder was expected: os.Root
			// refuses to follow it out of the export.
			return errAcces
		case unix.EOPNOTSUPP:
			return errNotSupp
		case unix.EBADF:
			return errStale
		}
		return errIO
	}
	switch {
	case errors.Is(err, os.ErrNotExist):
		return errNoEnt
	case errors.Is(err, os.ErrExist):
		return errExist
	case errors.Is(err, os.ErrPermission):
		return errAcces
	case strings.Contains(err.Error(), "escapes"):
		// os.Root: a path or symlink leading out of the export.
		return errAcces
	}
	return errIO
}

// attrOf converts the stat of os.Root.Lstat.
func attrOf(fi os.FileInfo) (*unix.Stat_t, bool) {
	s, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return nil, false
	}
	return &unix.Stat_t{
		Dev: s.Dev, Ino: s.Ino, Nlink: s.Nlink, Mode: s.Mode, Uid: s.Uid, Gid: s.Gid,
		Rdev: s.Rdev, Size: s.Size, Blksize: s.Blksize, Blocks: s.Blocks,
		Atim: unix.Timespec(s.Atim), Mtim: unix.Timespec(s.Mtim), Ctim: unix.Timespec(s.Ctim),
	}, true
}

func ftype(mode uint32) uint32 {
	switch mode & unix.S_IFMT {
	case unix.S_IFREG:
		return typeReg
	case unix.S_IFDIR:
		return typeDir
	case unix.S_IFBLK:
		return typeBlk
	case unix.S_IFCHR:
		return typeChr
	case unix.S_IFLNK:
		return typeLnk
	case unix.S_IFSOCK:
		return typeSock
	case unix.S_IFIFO:
		return typeFIFO
	}
	return typeReg
}

func isDir(st *unix.Stat_t) bool { return st.Mode&unix.S_IFMT == unix.S_IFDIR }
func isReg(st *unix.Stat_t) bool { return st.Mode&unix.S_IFMT == unix.S_IFREG }
func isLnk(st *unix.Stat_t) bool { return st.Mode&unix.S_IFMT == unix.S_IFLNK }

func putTime(w *oncrpc.Writer, t unix.Timespec) {
	w.Uint32(uint32(t.Sec))
	w.Uint32(uint32(t.Nsec))
}

// putFattr writes a fattr3; fsid is the export's, so every export is
// its own file system to the client.
func putFattr(w *oncrpc.Writer, e *export.Export, st *unix.Stat_t) {
	w.Uint32(ftype(st.Mode))
	w.Uint32(st.Mode & 0o7777)
	w.Uint32(uint32(st.Nlink))
	w.Uint32(st.Uid)
	w.Uint32(st.Gid)
	w.Uint64(uint64(st.Size))
	w.Uint64(uint64(st.Blocks) * 512)
	w.Uint32(unix.Major(st.Rdev))
	w.Uint32(unix.Minor(st.Rdev))
	w.Uint64(uint64(e.ID))
	w.Uint64(st.Ino)
	putTime(w, st.Atim)
	putTime(w, st.Mtim)
	putTime(w, st.Ctim)
}

// putPostOp writes a post_op_attr; st may be nil.
func putPostOp(w *oncrpc.Writer, e *export.Export, st *unix.Stat_t) {
	if st == nil {
		w.Bool(false)
		return
	}
	w.Bool(true)
	putFattr(w, e, st)
}

// putWcc writes a wcc_data; either may be nil.
func putWcc(w *oncrpc.Writer, e *export.Export, pre, post *unix.Stat_t) {
	if pre == nil {
		w.Bool(false)
	} else {
		w.Bool(true)
		w.Uint64(uint64(pre.Size))
		putTime(w, pre.Mtim)
		putTime(w, pre.Ctim)
	}
	putPostOp(w, e, post)
}

// putPostFH writes a post_op_fh3.
func putPostFH(w *oncrpc.Writer, h []byte) {
	if h == nil {
		w.Bool(false)
		return
	}
	w.Bool(true)
	w.Opaque(h)
}

// Values of time_how.
const (
	dontChange      = 0
	setToServerTime = 1
	setToClientTime = 2
)

// sattr is a decoded sattr3.
type sattr struct {
	setMode, setUID, setGID, setSize bool
	mode, uid, gid                   uint32
	size                             uint64
	atimeHow, mtimeHow               uint32
	atime, mtime                     unix.Timespec
}

func getTime(r *oncrpc.Reader) unix.Timespec {
	sec := r.Uint32()
	nsec := r.Uint32()
	return unix.Timespec{Sec: int64(sec), Nsec: int64(nsec)}
}

func getSattr(r *oncrpc.Reader) sattr {
	var a sattr
	if a.setMode = r.Bool(); a.setMode {
		a.mode = r.Uint32()
	}
	if a.setUID = r.Bool(); a.setUID {
		a.uid = r.Uint32()
	}
	if a.setGID = r.Bool(); a.setGID {
		a.gid = r.Uint32()
	}
	if a.setSize = r.Bool(); a.setSize {
		a.size = r.Uint64()
	}
	a.atimeHow = r.Uint32()
	if a.atimeHow == setToClientTime {
		a.atime = getTime(r)
	}
	a.mtimeHow = r.Uint32()
	if a.mtimeHow == setToClientTime {
		a.mtime = getTime(r)
	}
	if a.atimeHow > setToClientTime || a.mtimeHow > setToClientTime {
		// An invalid discriminant: make the Reader report garbage.
		r.Fixed(1 << 30)
	}
	return a
}

// timespecs returns the utimensat arguments of a's times.
func (a *sattr) timespecs() []unix.Timespec {
	ts := []unix.Timespec{{Nsec: unix.UTIME_OMIT}, {Nsec: unix.UTIME_OMIT}}
	for i, how := range []uint32{a.atimeHow, a.mtimeHow} {
		switch how {
		case setToServerTime:
			ts[i] = unix.Timespec{Nsec: unix.UTIME_NOW}
		case setToClientTime:
			ts[i] = []unix.Timespec{a.atime, a.mtime}[i]
		}
	}
	return ts
}
