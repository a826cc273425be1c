package gonfs

import (
	"syscall"

	"golang.org/x/sys/unix"

	"example.com/appliance/filesrv/internal/oncrpc"
)

// NFSv3 procedures whose replies carry attributes that go-nfs gets wrong.
const (
	procReadlink = 5
	procRemove   = 12
	procRmdir    = 13
	procRename   = 14
	procFsstat   = 18
	procPathconf = 20
)

// fattr3Len is the size of an encoded fattr3.
const fattr3Len = 84

// fixAttrs rewrites the attributes in a forwarded reply's results with
// the ones filesrv's own procedures send. go-nfs writes fsid 0 (the Linux
// client then sees its mounted root change file system and answers
// ESTALE), Go's mode bits (0x800001ed for a folder) and mtime as ctime and
// atime. Each post_op_attr is replaced by a fresh lstat of the object and
// each pre_op_attr dropped (go-nfs's pre-op ctime is its mtime). Results
// that do not parse are returned as they are.
func (h *Handler) fixAttrs(c *oncrpc.Call, res []byte) []byte {
	args := oncrpc.NewReader(c.Args)
	r := oncrpc.NewReader(res)
	w := oncrpc.NewWriter(make([]byte, 0, len(res)+2*fattr3Len))
	w.Uint32(r.Uint32()) // status
	switch c.Proc {
	case procReadlink, procFsstat, procPathconf:
		fh := args.Opaque(64)
		skipPostOp(r)
		h.putPostOp(w, fh)
	case procRemove, procRmdir:
		fh := args.Opaque(64)
		skipWcc(r)
		h.putWcc(w, fh)
	case procRename:
		from := args.Opaque(64)
		args.Opaque(1 << 16) // name
		to := args.Opaque(64)
		skipWcc(r)
		h.putWcc(w, from)
		skipWcc(r)
		h.putWcc(w, to)
	default:
		return res
	}
	if r.Err() != nil || args.Err() != nil {
		return res
	}
	w.Raw(r.Rest())
	return w.Bytes()
}

func skipPostOp(r *oncrpc.Reader) {
	if r.Bool() {
		r.Fixed(fattr3Len)
	}
}

func skipWcc(r *oncrpc.Reader) {
	if r.Bool() {
		r.Fixed(24) // size, mtime, ctime
	}
	skipPostOp(r)
}

// putWcc writes a wcc_data without pre-op attributes.
func (h *Handler) putWcc(w *oncrpc.Writer, fh []byte) {
	w.Bool(false)
	h.putPostOp(w, fh)
}

// putPostOp writes the post_op_attr of the file behind fh, as nfs3 does.
func (h *Handler) putPostOp(w *oncrpc.Writer, fh []byte) {
	st := h.lstat(fh)
	if st == nil {
		w.Bool(false)
		return
	}
	w.Bool(true)
	w.Uint32(ftype(st.Mode))
	w.Uint32(st.Mode & 0o7777)
	w.Uint32(uint32(st.Nlink))
	w.Uint32(st.Uid)
	w.Uint32(st.Gid)
	w.Uint64(uint64(st.Size))
	w.Uint64(uint64(st.Blocks) * 512)
	w.Uint32(unix.Major(st.Rdev))
	w.Uint32(unix.Minor(st.Rdev))
	e, _, _ := h.store.Resolve(fh)
	w.Uint64(uint64(e.ID)) // fsid: the export's, as nfs3 sends it
	w.Uint64(st.Ino)
	for _, t := range []syscall.Timespec{st.Atim, st.Mtim, st.Ctim} {
		w.Uint32(uint32(t.Sec))
		w.Uint32(uint32(t.Nsec))
	}
}

// lstat returns the attributes of the file behind fh, or nil.
func (h *Handler) lstat(fh []byte) *syscall.Stat_t {
	if h.store == nil {
		return nil
	}
	e, p, err := h.store.Resolve(fh)
	if err != nil || e == nil || e.Root == nil {
		return nil
	}
	if p == "" {
		p = "."
	}
	fi, err := e.Root.Lstat(p)
	if err != nil {
		return nil
	}
	st, _ := fi.Sys().(*syscall.Stat_t)
	return st
}

// The NFSv3 file types (ftype3).
const (
	typeReg  = 1
	typeDir  = 2
	typeBlk  = 3
	typeChr  = 4
	typeLnk  = 5
	typeSock = 6
	typeFIFO = 7
)

func ftype(mode uint32) uint32 {
	switch mode & syscall.S_IFMT {
	case syscall.S_IFDIR:
		return typeDir
	case syscall.S_IFBLK:
		return typeBlk
	case syscall.S_IFCHR:
		return typeChr
	case syscall.S_IFLNK:
		return typeLnk
	case syscall.S_IFSOCK:
		return typeSock
	case syscall.S_IFIFO:
		return typeFIFO
	}
	return typeReg
}
