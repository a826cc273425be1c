package nfs3

import (
	"encoding/binary"
	"errors"
	"io"
	"math"
	"os"
	"strings"

	"golang.org/x/sys/unix"

	"example.com/appliance/filesrv/internal/export"
	"example.com/appliance/filesrv/internal/oncrpc"
)

// obj is a resolved file handle.
type obj struct {
	e *export.Export
	p string // slash-separated, relative to the export root; "." is the root
	h []byte
	// st, when set, are the attributes that resolving the handle found
	// (before the call changed anything).
	st *unix.Stat_t
}

// resolve maps a handle to its export and path, and to its attributes
// where the handle store checks the handle with a stat (statStore).
func (s *Server) resolve(h []byte) (obj, uint32) {
	if s.hs == nil {
		return obj{}, errServerFault
	}
	if len(h) == 0 {
		return obj{}, errBadHandle
	}
	var e *export.Export
	var p string
	var st *unix.Stat_t
	if s.ss != nil {
		var sx *unix.Statx_t
		var err error
		if e, p, sx, err = s.ss.ResolveStat(h); err != nil {
			return obj{}, statusOf(err)
		}
		if sx != nil {
			st = statOfStatx(sx)
		}
	} else {
		var err error
		if e, p, err = s.hs.Resolve(h); err != nil {
			return obj{}, statusOf(err)
		}
	}
	if e == nil || e.Root == nil {
		return obj{}, errStale
	}
	if p == "" {
		p = "."
	}
	return obj{e: e, p: p, h: h, st: st}, nfsOK
}

// resolveAttr resolves h and returns its attributes.
func (s *Server) resolveAttr(h []byte) (obj, *unix.Stat_t, uint32) {
	o, stat := s.resolve(h)
	if stat != nfsOK {
		return o, nil, stat
	}
	if o.st != nil {
		return o, o.st, nfsOK
	}
	st, err := s.statObj(o)
	if err != nil {
		return o, nil, statusOf(err)
	}
	return o, st, nfsOK
}

// open is openObj for a resolved handle: a cached descriptor comes with
// the attributes resolving found, without another stat.
func (s *Server) open(o obj, write bool) (*fdEntry, *unix.Stat_t, error) {
	if o.st != nil {
		if ent := s.files.get(string(o.h)); ent != nil {
			if !write || ent.writable {
				return ent, o.st, nil
			}
			s.files.release(ent)
		}
	}
	return s.openObj(o.e, o.p, o.h, write)
}

// statOfStatx converts a statx result.
func statOfStatx(sx *unix.Statx_t) *unix.Stat_t {
	ts := func(t unix.StatxTimestamp) unix.Timespec {
		return unix.Timespec{Sec: t.Sec, Nsec: int64(t.Nsec)}
	}
	return &unix.Stat_t{
		Dev: unix.Mkdev(sx.Dev_major, sx.Dev_minor), Ino: sx.Ino, Nlink: uint64(sx.Nlink),
		Mode: uint32(sx.Mode), Uid: sx.Uid, Gid: sx.Gid,
		Rdev: unix.Mkdev(sx.Rdev_major, sx.Rdev_minor), Size: int64(sx.Size),
		Blksize: int64(sx.Blksize), Blocks: int64(sx.Blocks),
		Atim: ts(sx.Atime), Mtim: ts(sx.Mtime), Ctim: ts(sx.Ctime),
	}
}

// resolveStat resolves h and returns its attributes. On failure it writes
// the status and an absent post_op_attr (the failure results of every
// procedure whose results start with the object's attributes) and returns
// false.
func (s *Server) resolveStat(w *oncrpc.Writer, h []byte) (obj, *unix.Stat_t, bool) {
	o, st, stat := s.resolveAttr(h)
	if stat != nfsOK {
		w.Uint32(stat)
		putPostOp(w, nil, nil)
		return obj{}, nil, false
	}
	return o, st, true
}

// statObj returns o's attributes, from its cached descriptor if open.
func (s *Server) statObj(o obj) (*unix.Stat_t, error) {
	if ent := s.files.get(string(o.h)); ent != nil {
		st, err := fstat(ent.f)
		s.files.release(ent)
		if err == nil {
			return st, nil
		}
	}
	return lstatPath(o.e, o.p)
}

// statOrNil is statObj for post-op attributes, which are optional.
func (s *Server) statOrNil(o obj) *unix.Stat_t {
	st, _ := s.statObj(o)
	return st
}

// checkName validates a name to create; "." and ".." exist already.
func checkName(name string) uint32 {
	switch {
	case len(name) > nameMax:
		return errNameTooLong
	case name == "", strings.ContainsAny(name, "/\x00"):
		return errInval
	case name == "." || name == "..":
		return errExist
	}
	return nfsOK
}

// checkOldName validates a name to remove or rename.
func checkOldName(name string) uint32 {
	switch {
	case len(name) > nameMax:
		return errNameTooLong
	case name == "", strings.ContainsAny(name, "/\x00"), name == ".", name == "..":
		return errInval
	}
	return nfsOK
}

func getDirop(r *oncrpc.Reader) ([]byte, string) {
	h := r.Opaque(fhMax)
	name := r.String(pathMax)
	return h, name
}

// wrongType picks the status for a handle of the wrong kind.
func wrongType(st *unix.Stat_t) uint32 {
	if st != nil && isDir(st) {
		return errIsDir
	}
	return errInval
}

func (s *Server) getattr(c *oncrpc.Call, w *oncrpc.Writer) oncrpc.AcceptStat {
	r := oncrpc.NewReader(c.Args)
	h := r.Opaque(fhMax)
	if r.Err() != nil {
		return oncrpc.GarbageArgs
	}
	o, st, stat := s.resolveAttr(h)
	if stat != nfsOK {
		w.Uint32(stat)
		return oncrpc.Success
	}
	w.Uint32(nfsOK)
	putFattr(w, o.e, st)
	return oncrpc.Success
}

func (s *Server) setattr(c *oncrpc.Call, w *oncrpc.Writer) oncrpc.AcceptStat {
	r := oncrpc.NewReader(c.Args)
	h := r.Opaque(fhMax)
	a := getSattr(r)
	guard := r.Bool()
	var guardCtime unix.Timespec
	if guard {
		guardCtime = getTime(r)
	}
	if r.Err() != nil {
		return oncrpc.GarbageArgs
	}
	o, stat := s.resolve(h)
	if stat != nfsOK {
		w.Uint32(stat)
		putWcc(w, nil, nil, nil)
		return oncrpc.Success
	}
	fail := func(stat uint32, pre *unix.Stat_t) oncrpc.AcceptStat {
		w.Uint32(stat)
		putWcc(w, o.e, pre, s.statOrNil(o))
		return oncrpc.Success
	}
	if o.e.ReadOnly {
		return fail(errROFS, nil)
	}
	pre, err := s.statObj(o)
	if err != nil {
		return fail(statusOf(err), nil)
	}
	if guard && (pre.Ctim.Sec != guardCtime.Sec || pre.Ctim.Nsec != guardCtime.Nsec) {
		return fail(errNotSync, pre)
	}
	id := o.e.Map(c.Sys)
	owner := id.Root() || id.UID == pre.Uid
	switch {
	case a.setMode && !owner:
		return fail(errPerm, pre)
	case a.setUID && a.uid != pre.Uid && !id.Root():
		return fail(errPerm, pre)
	case a.setGID && a.gid != pre.Gid && !id.Root() && !(id.UID == pre.Uid && id.InGroup(a.gid)):
		return fail(errPerm, pre)
	case (a.atimeHow == setToClientTime || a.mtimeHow == setToClientTime) && !owner:
		return fail(errPerm, pre)
	case (a.atimeHow == setToServerTime || a.mtimeHow == setToServerTime) && !owner && !mayAccess(id, pre, permW):
		return fail(errAcces, pre)
	}
	if a.setSize {
		switch {
		case isDir(pre):
			return fail(errIsDir, pre)
		case !isReg(pre):
			return fail(errInval, pre)
		case !mayWriteFile(id, pre):
			return fail(errAcces, pre)
		case a.size > math.MaxInt64:
			return fail(errFBig, pre)
		}
		ent, _, err := s.openObj(o.e, o.p, o.h, true)
		if err != nil {
			return fail(statusOf(err), pre)
		}
		err = ent.f.Truncate(int64(a.size))
		s.files.release(ent)
		if err != nil {
			return fail(statusOf(err), pre)
		}
	}
	if a.setUID || a.setGID || a.setMode || a.atimeHow != dontChange || a.mtimeHow != dontChange {
		dir, name, err := openParent(o.e, o.p)
		if err != nil {
			return fail(statusOf(err), pre)
		}
		defer dir.Close()
		if a.setUID || a.setGID {
			uid, gid := -1, -1
			if a.setUID {
				uid = int(a.uid)
			}
			if a.setGID {
				gid = int(a.gid)
			}
			if err := unix.Fchownat(fdOf(dir), name, uid, gid, unix.AT_SYMLINK_NOFOLLOW); err != nil {
				return fail(statusOf(err), pre)
			}
		}
		if a.setMode {
			mode := a.mode & 0o7777
			gid := pre.Gid
			if a.setGID {
				gid = a.gid
			}
			if !id.Root() && !isDir(pre) && !id.InGroup(gid) {
				// As chmod(2): only a member may set a file's setgid bit.
				mode &^= unix.S_ISGID
			}
			if err := chmodNoFollow(dir, name, mode); err != nil {
				return fail(statusOf(err), pre)
			}
		}
		if a.atimeHow != dontChange || a.mtimeHow != dontChange {
			if err := unix.UtimesNanoAt(fdOf(dir), name, a.timespecs(), unix.AT_SYMLINK_NOFOLLOW); err != nil {
				return fail(statusOf(err), pre)
			}
		}
	}
	w.Uint32(nfsOK)
	putWcc(w, o.e, pre, s.statOrNil(o))
	return oncrpc.Success
}

func (s *Server) lookup(c *oncrpc.Call, w *oncrpc.Writer) oncrpc.AcceptStat {
	r := oncrpc.NewReader(c.Args)
	h, name := getDirop(r)
	if r.Err() != nil {
		return oncrpc.GarbageArgs
	}
	o, dst, stat := s.resolveAttr(h)
	fail := func(stat uint32) oncrpc.AcceptStat {
		w.Uint32(stat)
		putPostOp(w, o.e, dst)
		return oncrpc.Success
	}
	switch {
	case stat != nfsOK:
		return fail(stat)
	case !isDir(dst):
		return fail(errNotDir)
	case len(name) > nameMax:
		return fail(errNameTooLong)
	case name == "":
		return fail(errNoEnt)
	case strings.ContainsAny(name, "/\x00"):
		return fail(errAcces)
	case !mayAccess(o.e.Map(c.Sys), dst, permX):
		return fail(errAcces)
	}
	var cp string
	switch name {
	case ".":
		cp = o.p
	case "..":
		cp = parentPath(o.p)
	default:
		cp = childPath(o.p, name)
		if s.ss != nil {
			return s.lookupChild(w, o, dst, name, cp)
		}
	}
	st, err := lstatPath(o.e, cp)
	if err != nil {
		return fail(statusOf(err))
	}
	ch := o.h
	if cp != o.p {
		if ch, err = s.hs.Handle(o.e, cp); err != nil {
			return fail(statusOf(err))
		}
	}
	w.Uint32(nfsOK)
	w.Opaque(ch)
	putPostOp(w, o.e, st)
	putPostOp(w, o.e, dst)
	return oncrpc.Success
}

// lookupChild finishes a LOOKUP of name (neither "." nor "..") in the
// folder o (attributes dst), path cp: one stat of name in the folder's
// open descriptor, and the handle made from it.
func (s *Server) lookupChild(w *oncrpc.Writer, o obj, dst *unix.Stat_t, name, cp string) oncrpc.AcceptStat {
	fail := func(stat uint32) oncrpc.AcceptStat {
		w.Uint32(stat)
		putPostOp(w, o.e, dst)
		return oncrpc.Success
	}
	// The cached descriptor of the handle is the folder the handle names
	// (a handle names an inode), which resolving it has just found at o.p
	// beneath the root; name is a single component, not "." or "..", and
	// a final symlink is not followed.
	ent, _, err := s.open(o, false)
	if err != nil {
		return fail(statusOf(err))
	}
	var sx unix.Statx_t
	err = unix.Statx(fdOf(ent.f), name, unix.AT_SYMLINK_NOFOLLOW, unix.STATX_BASIC_STATS|unix.STATX_BTIME, &sx)
	s.files.release(ent)
	if err != nil {
		return fail(statusOf(err))
	}
	ch, err := s.ss.HandleStat(o.e, cp, &sx)
	if err != nil {
		return fail(statusOf(err))
	}
	w.Uint32(nfsOK)
	w.Opaque(ch)
	putPostOp(w, o.e, statOfStatx(&sx))
	putPostOp(w, o.e, dst)
	return oncrpc.Success
}

func (s *Server) access(c *oncrpc.Call, w *oncrpc.Writer) oncrpc.AcceptStat {
	r := oncrpc.NewReader(c.Args)
	h := r.Opaque(fhMax)
	want := r.Uint32()
	if r.Err() != nil {
		return oncrpc.GarbageArgs
	}
	o, st, ok := s.resolveStat(w, h)
	if !ok {
		return oncrpc.Success
	}
	w.Uint32(nfsOK)
	putPostOp(w, o.e, st)
	w.Uint32(accessBits(o.e.Map(c.Sys), st, want, o.e.ReadOnly))
	return oncrpc.Success
}

func (s *Server) readlink(c *oncrpc.Call, w *oncrpc.Writer) oncrpc.AcceptStat {
	r := oncrpc.NewReader(c.Args)
	h := r.Opaque(fhMax)
	if r.Err() != nil {
		return oncrpc.GarbageArgs
	}
	o, stat := s.resolve(h)
	if stat != nfsOK {
		w.Uint32(stat)
		putPostOp(w, nil, nil)
		return oncrpc.Success
	}
	st, err := lstatPath(o.e, o.p)
	if err == nil && !isLnk(st) {
		err = unix.EINVAL
	}
	var target string
	if err == nil {
		target, err = o.e.Root.Readlink(o.p)
	}
	if err != nil {
		w.Uint32(statusOf(err))
		putPostOp(w, o.e, st)
		return oncrpc.Success
	}
	w.Uint32(nfsOK)
	putPostOp(w, o.e, st)
	w.String(target)
	return oncrpc.Success
}

// zeros pads a READ reply's data.
var zeros [4]byte

func (s *Server) read(c *oncrpc.Call, w *oncrpc.Writer) oncrpc.AcceptStat {
	r := oncrpc.NewReader(c.Args)
	h := r.Opaque(fhMax)
	off := r.Uint64()
	count := r.Uint32()
	if r.Err() != nil {
		return oncrpc.GarbageArgs
	}
	o, stat := s.resolve(h)
	if stat != nfsOK {
		w.Uint32(stat)
		putPostOp(w, nil, nil)
		return oncrpc.Success
	}
	ent, st, err := s.open(o, false)
	if err != nil {
		stat := statusOf(err)
		if errors.Is(err, errWrongType) {
			stat = wrongType(st)
		}
		w.Uint32(stat)
		putPostOp(w, o.e, st)
		return oncrpc.Success
	}
	defer s.files.release(ent)
	if !mayReadFile(o.e.Map(c.Sys), st) {
		w.Uint32(errAcces)
		putPostOp(w, o.e, st)
		return oncrpc.Success
	}
	n := min(int(count), s.maxIO)
	if off > math.MaxInt64 {
		n = 0
	}
	start := w.Len()
	w.Uint32(nfsOK)
	putPostOp(w, o.e, st)
	countAt := w.Len()
	w.Uint32(0) // count
	w.Uint32(0) // eof
	w.Uint32(0) // data length
	dataAt := w.Len()
	got, spliced := 0, false
	if n >= oncrpc.SpliceMin {
		// Big reads go from the page cache to the socket uncopied.
		got, spliced, err = w.SpliceFrom(ent.f, int64(off), n)
	}
	if !spliced && n > 0 {
		// Reserve room in the reply and read straight into it; what is
		// not read is cut off below.
		got, err = ent.f.ReadAt(w.Extend(n), int64(off))
	}
	if err != nil && got == 0 && !errors.Is(err, io.EOF) {
		w.Truncate(start)
		w.Uint32(statusOf(err))
		putPostOp(w, o.e, st)
		return oncrpc.Success
	}
	eof := uint64(got)+off >= uint64(st.Size) || got < n && !spliced
	b := w.Bytes()
	binary.BigEndian.PutUint32(b[countAt:], uint32(got))
	if eof {
		binary.BigEndian.PutUint32(b[countAt+4:], 1)
	}
	binary.BigEndian.PutUint32(b[countAt+8:], uint32(got))
	if !spliced {
		w.Truncate(dataAt + got)
		w.Raw(zeros[:(4-got%4)%4])
	}
	return oncrpc.Success
}

// Values of stable_how.
const (
	unstable = 0
	dataSync = 1
	fileSync = 2
)

func (s *Server) write(c *oncrpc.Call, w *oncrpc.Writer) oncrpc.AcceptStat {
	r := oncrpc.NewReader(c.Args)
	h := r.Opaque(fhMax)
	off := r.Uint64()
	count := r.Uint32()
	stable := r.Uint32()
	data := r.Opaque(math.MaxInt32)
	if r.Err() != nil || stable > fileSync {
		return oncrpc.GarbageArgs
	}
	if int(count) < len(data) {
		data = data[:count]
	}
	o, stat := s.resolve(h)
	if stat != nfsOK {
		w.Uint32(stat)
		putWcc(w, nil, nil, nil)
		return oncrpc.Success
	}
	if o.e.ReadOnly {
		w.Uint32(errROFS)
		putWcc(w, nil, nil, nil)
		return oncrpc.Success
	}
	ent, pre, ok := s.openWcc(w, o, true)
	if !ok {
		return oncrpc.Success
	}
	defer s.files.release(ent)
	fail := func(stat uint32) oncrpc.AcceptStat {
		w.Uint32(stat)
		post, _ := fstat(ent.f)
		putWcc(w, o.e, pre, post)
		return oncrpc.Success
	}
	switch {
	case !mayWriteFile(o.e.Map(c.Sys), pre):
		return fail(errAcces)
	case len(data) > s.maxIO:
		return fail(errInval)
	case off > math.MaxInt64-uint64(len(data)):
		return fail(errFBig)
	}
	n, err := ent.f.WriteAt(data, int64(off))
	if err != nil {
		return fail(statusOf(err))
	}
	committed := uint32(unstable)
	if stable == unstable {
		ent.wrote(n)
	} else {
		// DATA_SYNC is served as FILE_SYNC: a full fsync, so the
		// answer never claims more than was done.
		if err := syncFile(ent.f); err != nil {
			return fail(statusOf(err))
		}
		committed = fileSync
	}
	post, _ := fstat(ent.f)
	w.Uint32(nfsOK)
	putWcc(w, o.e, pre, post)
	w.Uint32(uint32(n))
	w.Uint32(committed)
	w.Fixed(s.cfg.Verifier[:])
	return oncrpc.Success
}

// openWcc opens o's file for WRITE or COMMIT. On failure it writes the
// status and wcc_data and returns false.
func (s *Server) openWcc(w *oncrpc.Writer, o obj, write bool) (*fdEntry, *unix.Stat_t, bool) {
	ent, pre, err := s.open(o, write)
	if err != nil {
		stat := statusOf(err)
		if errors.Is(err, errWrongType) {
			stat = wrongType(pre)
		}
		w.Uint32(stat)
		putWcc(w, o.e, pre, pre)
		return nil, nil, false
	}
	return ent, pre, true
}

func (s *Server) commit(c *oncrpc.Call, w *oncrpc.Writer) oncrpc.AcceptStat {
	r := oncrpc.NewReader(c.Args)
	h := r.Opaque(fhMax)
	r.Uint64() // offset: the whole file is synced
	r.Uint32() // count
	if r.Err() != nil {
		return oncrpc.GarbageArgs
	}
	o, stat := s.resolve(h)
	if stat != nfsOK {
		w.Uint32(stat)
		putWcc(w, nil, nil, nil)
		return oncrpc.Success
	}
	ent, pre, ok := s.openWcc(w, o, false)
	if !ok {
		return oncrpc.Success
	}
	defer s.files.release(ent)
	if err := syncFile(ent.f); err != nil {
		w.Uint32(statusOf(err))
		putWcc(w, o.e, pre, pre)
		return oncrpc.Success
	}
	post, _ := fstat(ent.f)
	w.Uint32(nfsOK)
	putWcc(w, o.e, pre, post)
	w.Fixed(s.cfg.Verifier[:])
	return oncrpc.Success
}

// Values of createmode3.
const (
	createUnchecked = 0
	createGuarded   = 1
	createExclusive = 2
)

// parentDir is an open folder in which a name is created or removed.
type parentDir struct {
	o   obj
	ent *fdEntry
	pre *unix.Stat_t
	id  export.Identity
}

func (d *parentDir) f() *os.File { return d.ent.f }

// openDirFor opens o as a folder to change its entries: it checks the
// export is writable, that o is a folder, and that id may change it.
func (s *Server) openDirFor(o obj, id export.Identity) (*parentDir, *unix.Stat_t, uint32) {
	if o.e.ReadOnly {
		return nil, nil, errROFS
	}
	ent, st, err := s.open(o, false)
	if err != nil {
		if errors.Is(err, errWrongType) {
			return nil, st, errNotDir
		}
		return nil, st, statusOf(err)
	}
	if !isDir(st) {
		s.files.release(ent)
		return nil, st, errNotDir
	}
	if !mayChangeEntries(id, st) {
		s.files.release(ent)
		return nil, st, errAcces
	}
	return &parentDir{o: o, ent: ent, pre: st, id: id}, st, nfsOK
}

func (s *Server) closeDir(d *parentDir) { s.files.release(d.ent) }

// newOwner returns the owner of a new object: the caller's identity,
// or what the client asked where allowed; the group of a setgid folder
// is inherited as Linux does.
func newOwner(d *parentDir, a *sattr) (uid, gid uint32) {
	uid, gid = d.id.UID, d.id.GID
	if d.pre.Mode&unix.S_ISGID != 0 {
		gid = d.pre.Gid
	}
	if a != nil && a.setUID && d.id.Root() {
		uid = a.uid
	}
	if a != nil && a.setGID && (d.id.Root() || d.id.InGroup(a.gid)) {
		gid = a.gid
	}
	return uid, gid
}

// createFail writes a failed CREATE, MKDIR, SYMLINK or MKNOD result.
func (s *Server) createFail(w *oncrpc.Writer, o obj, pre *unix.Stat_t, stat uint32) oncrpc.AcceptStat {
	w.Uint32(stat)
	var post *unix.Stat_t
	if o.e != nil {
		post = s.statOrNil(o)
	}
	putWcc(w, o.e, pre, post)
	return oncrpc.Success
}

// created finishes a successful creation of name in d: it makes the new
// entry durable and writes the result. sx, when set, is the statx of the
// new object (st in full), saving a stat.
// It returns the new handle, nil on failure.
func (s *Server) created(w *oncrpc.Writer, d *parentDir, name string, st *unix.Stat_t, sx *unix.Statx_t) ([]byte, oncrpc.AcceptStat) {
	var h []byte
	var err error
	if s.ss != nil {
		// One stat for the handle and the listing's cache.
		if sx == nil {
			sx = new(unix.Statx_t)
			err = unix.Statx(fdOf(d.f()), name, unix.AT_SYMLINK_NOFOLLOW, unix.STATX_BASIC_STATS|unix.STATX_BTIME, sx)
		}
		if err == nil {
			h, err = s.ss.HandleStat(d.o.e, childPath(d.o.p, name), sx)
		}
		if err == nil && sx.Mask&unix.STATX_BTIME != 0 {
			s.handles.put(handleKey{export: d.o.e.ID, ino: sx.Ino, btime: sx.Btime}, h)
		}
	} else {
		h, err = s.hs.Handle(d.o.e, childPath(d.o.p, name))
		if _, key, ok, err := statxAt(fdOf(d.f()), d.o.e, name); err == nil && ok && h != nil {
			// The next listing of this folder then needs no handle lookup.
			s.handles.put(key, h)
		}
	}
	if err != nil {
		return nil, s.createFail(w, d.o, d.pre, statusOf(err))
	}
	if err := s.syncs.sync(d.f(), d.pre); err != nil {
		return nil, s.createFail(w, d.o, d.pre, statusOf(err))
	}
	post, _ := fstat(d.f())
	w.Uint32(nfsOK)
	putPostFH(w, h)
	putPostOp(w, d.o.e, st)
	putWcc(w, d.o.e, d.pre, post)
	return h, oncrpc.Success
}

// exclusiveTimes encodes an EXCLUSIVE create verifier as knfsd does:
// the first word in mtime, the second in atime, seconds only.
func exclusiveTimes(verf []byte) (atime, mtime int64) {
	return int64(binary.BigEndian.Uint32(verf[4:]) & 0x7fffffff), int64(binary.BigEndian.Uint32(verf) & 0x7fffffff)
}

func (s *Server) create(c *oncrpc.Call, w *oncrpc.Writer) oncrpc.AcceptStat {
	r := oncrpc.NewReader(c.Args)
	h, name := getDirop(r)
	how := r.Uint32()
	var a sattr
	var verf []byte
	switch how {
	case createUnchecked, createGuarded:
		a = getSattr(r)
	case createExclusive:
		verf = r.Fixed(8)
	default:
		return oncrpc.GarbageArgs
	}
	if r.Err() != nil {
		return oncrpc.GarbageArgs
	}
	o, stat := s.resolve(h)
	if stat != nfsOK {
		return s.createFail(w, obj{}, nil, stat)
	}
	if o.e.ReadOnly {
		return s.createFail(w, o, nil, errROFS)
	}
	if stat := checkName(name); stat != nfsOK {
		return s.createFail(w, o, nil, stat)
	}
	d, pre, stat := s.openDirFor(o, o.e.Map(c.Sys))
	if stat != nfsOK {
		return s.createFail(w, o, pre, stat)
	}
	defer s.closeDir(d)
	mode := uint32(0o644)
	if a.setMode {
		mode = a.mode & 0o7777
	}
	if how == createExclusive {
		mode = 0o600
	}
	// The file is created private (0600) when it is to change owner, so
	// no one else can open it before: owner and mode are set after, each
	// only where it differs from what the file got. When the owner it
	// gets is already the right one, it is created with its mode.
	perm := uint32(0o600)
	if s.ownerAsCreated(d, &a) {
		perm = mode & 0o777
	}
	f, err := openat(d.f(), name, unix.O_CREAT|unix.O_EXCL|unix.O_RDWR|unix.O_NONBLOCK, perm)
	if errors.Is(err, unix.EEXIST) {
		return s.createExisting(w, d, name, how, &a, verf)
	}
	if err != nil {
		return s.createFail(w, o, pre, statusOf(err))
	}
	keep := false
	defer func() {
		if !keep {
			f.Close()
		}
	}()
	var sx unix.Statx_t
	if err := statxFD(f, &sx); err != nil {
		return s.createFail(w, o, pre, statusOf(err))
	}
	changed := false
	if s.root {
		if uid, gid := newOwner(d, &a); sx.Uid != uid || sx.Gid != gid {
			if err := f.Chown(int(uid), int(gid)); err != nil {
				return s.createFail(w, o, pre, statusOf(err))
			}
			changed = true
		}
	}
	// Set the mode explicitly: the process umask must not apply.
	if changed || uint32(sx.Mode)&0o7777 != mode {
		if err := f.Chmod(os.FileMode(mode&0o777) | modeExtra(mode)); err != nil {
			return s.createFail(w, o, pre, statusOf(err))
		}
		changed = true
	}
	if a.setSize && a.size > 0 && a.size <= math.MaxInt64 {
		if err := f.Truncate(int64(a.size)); err != nil {
			return s.createFail(w, o, pre, statusOf(err))
		}
		changed = true
	}
	ts := a.timespecs()
	if how == createExclusive {
		at, mt := exclusiveTimes(verf)
		ts = []unix.Timespec{{Sec: at}, {Sec: mt}}
	}
	if ts[0].Nsec != unix.UTIME_OMIT || ts[1].Nsec != unix.UTIME_OMIT {
		if err := unix.UtimesNanoAt(fdOf(d.f()), name, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return s.createFail(w, o, pre, statusOf(err))
		}
		changed = true
	}
	if changed {
		if err := statxFD(f, &sx); err != nil {
			return s.createFail(w, o, pre, statusOf(err))
		}
	}
	st := statOfStatx(&sx)
	h, res := s.created(w, d, name, st, &sx)
	if h != nil {
		// Keep the new file open: a WRITE follows nearly always.
		s.files.release(s.files.add(string(h), f, st, true))
		keep = true
	}
	return res
}

// ownerAsCreated reports whether a file created in d for a certainly
// gets the owner newOwner wants for it: without root there is no chown;
// as root, when the caller's uid and gid are the process's and the
// folder's gid is that too (so the gid is right whether the file takes
// the process's or, as in a setgid folder or with grpid, the folder's).
func (s *Server) ownerAsCreated(d *parentDir, a *sattr) bool {
	if !s.root {
		return true
	}
	uid, gid := newOwner(d, a)
	return uid == s.euid && gid == s.egid && d.pre.Gid == s.egid
}

// modeExtra converts the setuid, setgid and sticky bits to os.FileMode.
func modeExtra(mode uint32) os.FileMode {
	var m os.FileMode
	if mode&unix.S_ISUID != 0 {
		m |= os.ModeSetuid
	}
	if mode&unix.S_ISGID != 0 {
		m |= os.ModeSetgid
	}
	if mode&unix.S_ISVTX != 0 {
		m |= os.ModeSticky
	}
	return m
}
