package nfs3

import (
	"context"
	"errors"
	"math"
	"os"

	"golang.org/x/sys/unix"

	"example.com/appliance/filesrv/internal/oncrpc"
)

// createExisting answers a CREATE whose name exists: GUARDED fails,
// EXCLUSIVE succeeds only for the retransmission of the same create,
// UNCHECKED opens the file, applying only a new size.
func (s *Server) createExisting(w *oncrpc.Writer, d *parentDir, name string, how uint32, a *sattr, verf []byte) oncrpc.AcceptStat {
	st, err := fstatat(d.f(), name)
	if err != nil {
		return s.createFail(w, d.o, d.pre, statusOf(err))
	}
	switch how {
	case createGuarded:
		return s.createFail(w, d.o, d.pre, errExist)
	case createExclusive:
		at, mt := exclusiveTimes(verf)
		if !isReg(st) || st.Atim.Sec != at || st.Mtim.Sec != mt || st.Size != 0 {
			return s.createFail(w, d.o, d.pre, errExist)
		}
		_, res := s.created(w, d, name, st, nil)
		return res
	}
	if !isReg(st) {
		return s.createFail(w, d.o, d.pre, errExist)
	}
	if a.setSize {
		if !mayWriteFile(d.id, st) {
			return s.createFail(w, d.o, d.pre, errAcces)
		}
		if a.size > math.MaxInt64 {
			return s.createFail(w, d.o, d.pre, errFBig)
		}
		f, err := openat(d.f(), name, unix.O_WRONLY|unix.O_NONBLOCK, 0)
		if err != nil {
			return s.createFail(w, d.o, d.pre, statusOf(err))
		}
		err = f.Truncate(int64(a.size))
		if err == nil {
			st, err = fstat(f)
		}
		f.Close()
		if err != nil {
			return s.createFail(w, d.o, d.pre, statusOf(err))
		}
	}
	_, res := s.created(w, d, name, st, nil)
	return res
}

// beginCreate decodes nothing: it resolves the folder handle of a
// creating procedure and checks the name and permissions.
func (s *Server) beginCreate(c *oncrpc.Call, h []byte, name string) (*parentDir, obj, *unix.Stat_t, uint32) {
	o, stat := s.resolve(h)
	if stat != nfsOK {
		return nil, o, nil, stat
	}
	if o.e.ReadOnly {
		return nil, o, nil, errROFS
	}
	if stat := checkName(name); stat != nfsOK {
		return nil, o, nil, stat
	}
	d, pre, stat := s.openDirFor(o, o.e.Map(c.Sys))
	return d, o, pre, stat
}

// setOwnerMode gives a new object in d its owner and mode, never
// following a symlink and ignoring the umask.
func (s *Server) setOwnerMode(d *parentDir, name string, a *sattr, mode uint32, setMode bool) error {
	if s.root {
		uid, gid := newOwner(d, a)
		if err := unix.Fchownat(fdOf(d.f()), name, int(uid), int(gid), unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return err
		}
	}
	if setMode {
		if err := chmodNoFollow(d.f(), name, mode); err != nil {
			return err
		}
	}
	if a != nil {
		ts := a.timespecs()
		if ts[0].Nsec != unix.UTIME_OMIT || ts[1].Nsec != unix.UTIME_OMIT {
			return unix.UtimesNanoAt(fdOf(d.f()), name, ts, unix.AT_SYMLINK_NOFOLLOW)
		}
	}
	return nil
}

// undo removes a half-made object after a failure.
// finishCreate gives the object just made as name in d its owner and
// mode (removing it again if that fails) and writes the CREATE-style
// result: the new handle and attributes, or the failure with d's wcc.
func (s *Server) finishCreate(w *oncrpc.Writer, d *parentDir, o obj, pre *unix.Stat_t, name string,
	a *sattr, mode uint32, setMode, dir bool) oncrpc.AcceptStat {
	if err := s.setOwnerMode(d, name, a, mode, setMode); err != nil {
		undo(d, name, dir)
		return s.createFail(w, o, pre, statusOf(err))
	}
	st, err := fstatat(d.f(), name)
	if err != nil {
		return s.createFail(w, o, pre, statusOf(err))
	}
	_, res := s.created(w, d, name, st, nil)
	return res
}

func undo(d *parentDir, name string, dir bool) {
	flags := 0
	if dir {
		flags = unix.AT_REMOVEDIR
	}
	unix.Unlinkat(fdOf(d.f()), name, flags)
}

func (s *Server) mkdir(c *oncrpc.Call, w *oncrpc.Writer) oncrpc.AcceptStat {
	r := oncrpc.NewReader(c.Args)
	h, name := getDirop(r)
	a := getSattr(r)
	if r.Err() != nil {
		return oncrpc.GarbageArgs
	}
	d, o, pre, stat := s.beginCreate(c, h, name)
	if stat != nfsOK {
		return s.createFail(w, o, pre, stat)
	}
	defer s.closeDir(d)
	mode := uint32(0o755)
	if a.setMode {
		mode = a.mode & 0o7777
	}
	if d.pre.Mode&unix.S_ISGID != 0 {
		mode |= unix.S_ISGID // as mkdir(2) in a setgid folder
	}
	if err := unix.Mkdirat(fdOf(d.f()), name, 0o700); err != nil {
		return s.createFail(w, o, pre, statusOf(err))
	}
	return s.finishCreate(w, d, o, pre, name, &a, mode, true, true)
}

func (s *Server) symlink(c *oncrpc.Call, w *oncrpc.Writer) oncrpc.AcceptStat {
	r := oncrpc.NewReader(c.Args)
	h, name := getDirop(r)
	a := getSattr(r)
	target := r.String(math.MaxInt32)
	if r.Err() != nil {
		return oncrpc.GarbageArgs
	}
	d, o, pre, stat := s.beginCreate(c, h, name)
	if stat != nfsOK {
		return s.createFail(w, o, pre, stat)
	}
	defer s.closeDir(d)
	switch {
	case len(target) >= pathMax:
		return s.createFail(w, o, pre, errNameTooLong)
	case target == "" || containsNUL(target):
		return s.createFail(w, o, pre, errInval)
	}
	// The target is stored as is: nothing here ever follows it, and
	// os.Root refuses to follow it out of the export.
	if err := unix.Symlinkat(target, fdOf(d.f()), name); err != nil {
		return s.createFail(w, o, pre, statusOf(err))
	}
	a.setMode = false // symlinks have no mode of their own on Linux
	return s.finishCreate(w, d, o, pre, name, &a, 0, false, false)
}

func containsNUL(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] == 0 {
			return true
		}
	}
	return false
}

func (s *Server) mknod(c *oncrpc.Call, w *oncrpc.Writer) oncrpc.AcceptStat {
	r := oncrpc.NewReader(c.Args)
	h, name := getDirop(r)
	typ := r.Uint32()
	var a sattr
	switch typ {
	case typeChr, typeBlk:
		a = getSattr(r)
		r.Uint32() // major
		r.Uint32() // minor
	case typeSock, typeFIFO:
		a = getSattr(r)
	}
	if r.Err() != nil {
		return oncrpc.GarbageArgs
	}
	d, o, pre, stat := s.beginCreate(c, h, name)
	if stat != nfsOK {
		return s.createFail(w, o, pre, stat)
	}
	defer s.closeDir(d)
	var ifmt uint32
	switch typ {
	case typeFIFO:
		ifmt = unix.S_IFIFO
	case typeSock:
		ifmt = unix.S_IFSOCK
	case typeChr, typeBlk:
		// Device files would open the host's devices to clients.
		return s.createFail(w, o, pre, errPerm)
	default:
		return s.createFail(w, o, pre, errBadType)
	}
	mode := uint32(0o644)
	if a.setMode {
		mode = a.mode & 0o7777
	}
	if err := unix.Mknodat(fdOf(d.f()), name, ifmt|0o600, 0); err != nil {
		return s.createFail(w, o, pre, statusOf(err))
	}
	return s.finishCreate(w, d, o, pre, name, &a, mode, true, false)
}

func (s *Server) link(c *oncrpc.Call, w *oncrpc.Writer) oncrpc.AcceptStat {
	r := oncrpc.NewReader(c.Args)
	fh := r.Opaque(fhMax)
	dh, name := getDirop(r)
	if r.Err() != nil {
		return oncrpc.GarbageArgs
	}
	var fileAttr *unix.Stat_t
	var fo obj
	fail := func(stat uint32, d *parentDir, pre *unix.Stat_t) oncrpc.AcceptStat {
		w.Uint32(stat)
		putPostOp(w, fo.e, fileAttr)
		if d != nil {
			post, _ := fstat(d.f())
			putWcc(w, d.o.e, d.pre, post)
		} else {
			putWcc(w, fo.e, pre, nil)
		}
		return oncrpc.Success
	}
	fo, stat := s.resolve(fh)
	if stat != nfsOK {
		return fail(stat, nil, nil)
	}
	do, stat := s.resolve(dh)
	if stat != nfsOK {
		return fail(stat, nil, nil)
	}
	if fo.e.ReadOnly || do.e.ReadOnly {
		return fail(errROFS, nil, nil)
	}
	if fo.e != do.e {
		return fail(errXDev, nil, nil)
	}
	if stat := checkName(name); stat != nfsOK {
		return fail(stat, nil, nil)
	}
	var err error
	if fileAttr, err = lstatPath(fo.e, fo.p); err != nil {
		return fail(statusOf(err), nil, nil)
	}
	if isDir(fileAttr) {
		return fail(errIsDir, nil, nil)
	}
	id := do.e.Map(c.Sys)
	if !id.Root() && id.UID != fileAttr.Uid && !mayAccess(id, fileAttr, permR|permW) {
		// As fs.protected_hardlinks: no links to others' files one
		// could not open for writing.
		return fail(errPerm, nil, nil)
	}
	d, pre, stat := s.openDirFor(do, id)
	if stat != nfsOK {
		return fail(stat, nil, pre)
	}
	defer s.closeDir(d)
	src, srcName, err := openParent(fo.e, fo.p)
	if err != nil {
		return fail(statusOf(err), d, nil)
	}
	defer src.Close()
	if err := unix.Linkat(fdOf(src), srcName, fdOf(d.f()), name, 0); err != nil {
		return fail(statusOf(err), d, nil)
	}
	if err := s.syncs.sync(d.f(), d.pre); err != nil {
		return fail(statusOf(err), d, nil)
	}
	if st, err := fstatat(d.f(), name); err == nil {
		fileAttr = st
	}
	post, _ := fstat(d.f())
	w.Uint32(nfsOK)
	putPostOp(w, fo.e, fileAttr)
	putWcc(w, d.o.e, d.pre, post)
	return oncrpc.Success
}

// remove serves REMOVE and RMDIR: it checks the call and removes the
// entry with one unlinkat in the folder's open descriptor (forwarding it
// to go-nfs, which resolved the handle and stat'ed the folder again over
// an in-memory connection, cost more than the removal).
func (s *Server) remove(c *oncrpc.Call, w *oncrpc.Writer, rmdir bool) oncrpc.AcceptStat {
	r := oncrpc.NewReader(c.Args)
	h, name := getDirop(r)
	if r.Err() != nil {
		return oncrpc.GarbageArgs
	}
	o, stat := s.resolve(h)
	fail := func(stat uint32, d *parentDir) oncrpc.AcceptStat {
		w.Uint32(stat)
		if d != nil {
			post, _ := fstat(d.f())
			putWcc(w, o.e, d.pre, post)
		} else {
			putWcc(w, nil, nil, nil)
		}
		return oncrpc.Success
	}
	if stat != nfsOK {
		return fail(stat, nil)
	}
	if o.e.ReadOnly {
		return fail(errROFS, nil)
	}
	if stat := checkOldName(name); stat != nfsOK {
		if rmdir && name == ".." {
			stat = errNotEmpty
		}
		return fail(stat, nil)
	}
	id := o.e.Map(c.Sys)
	d, _, stat := s.openDirFor(o, id)
	if stat != nfsOK {
		return fail(stat, nil)
	}
	defer s.closeDir(d)
	st, err := fstatat(d.f(), name)
	switch {
	case err != nil:
		return fail(statusOf(err), d)
	case rmdir && !isDir(st):
		return fail(errNotDir, d)
	case !rmdir && isDir(st):
		return fail(errIsDir, d)
	case !stickyAllows(id, d.pre, st):
		return fail(errPerm, d)
	}
	cp := childPath(o.p, name)
	s.files.dropFile(st)
	flags := 0
	if rmdir {
		flags = unix.AT_REMOVEDIR
	}
	if err := unix.Unlinkat(fdOf(d.f()), name, flags); err != nil {
		return fail(statusOf(err), d)
	}
	s.hs.Removed(o.e, cp)
	post, _ := fstat(d.f())
	w.Uint32(nfsOK)
	putWcc(w, o.e, d.pre, post)
	return oncrpc.Success
}

// rename checks a RENAME and forwards it to go-nfs, or renames itself
// without a forwarder.
func (s *Server) rename(ctx context.Context, c *oncrpc.Call, w *oncrpc.Writer) oncrpc.AcceptStat {
	r := oncrpc.NewReader(c.Args)
	fh, fname := getDirop(r)
	th, tname := getDirop(r)
	if r.Err() != nil {
		return oncrpc.GarbageArgs
	}
	var from, to *parentDir
	fail := func(stat uint32) oncrpc.AcceptStat {
		w.Uint32(stat)
		for _, d := range []*parentDir{from, to} {
			if d == nil {
				putWcc(w, nil, nil, nil)
				continue
			}
			post, _ := fstat(d.f())
			putWcc(w, d.o.e, d.pre, post)
		}
		return oncrpc.Success
	}
	fo, stat := s.resolve(fh)
	if stat != nfsOK {
		return fail(stat)
	}
	to2, stat := s.resolve(th)
	if stat != nfsOK {
		return fail(stat)
	}
	if fo.e.ReadOnly || to2.e.ReadOnly {
		return fail(errROFS)
	}
	if fo.e != to2.e {
		return fail(errXDev)
	}
	if stat := checkOldName(fname); stat != nfsOK {
		return fail(stat)
	}
	if stat := checkOldName(tname); stat != nfsOK {
		return fail(stat)
	}
	id := fo.e.Map(c.Sys)
	var err error
	if from, _, stat = s.openDirFor(fo, id); stat != nfsOK {
		return fail(stat)
	}
	defer s.closeDir(from)
	if to, _, stat = s.openDirFor(to2, id); stat != nfsOK {
		return fail(stat)
	}
	defer s.closeDir(to)
	src, err := fstatat(from.f(), fname)
	if err != nil {
		return fail(statusOf(err))
	}
	if !stickyAllows(id, from.pre, src) {
		return fail(errPerm)
	}
	dst, err := fstatat(to.f(), tname)
	switch {
	case err == nil:
		if !stickyAllows(id, to.pre, dst) {
			return fail(errPerm)
		}
	case !errors.Is(err, unix.ENOENT):
		return fail(statusOf(err))
	}
	if isDir(src) && from.pre.Ino != to.pre.Ino && !mayAccess(id, src, permW) {
		// Moving a folder rewrites its "..".
		return fail(errAcces)
	}
	oldp, newp := childPath(fo.p, fname), childPath(to2.p, tname)
	if dst != nil {
		s.files.dropFile(dst)
	}
	done := func() {
		if dst != nil {
			s.hs.Removed(fo.e, newp)
		}
		s.hs.Moved(fo.e, oldp, newp)
	}
	if s.cfg.Forward != nil {
		return s.forward(ctx, c, w, done)
	}
	if err := unix.Renameat(fdOf(from.f()), fname, fdOf(to.f()), tname); err != nil {
		return fail(statusOf(err))
	}
	done()
	w.Uint32(nfsOK)
	for _, d := range []*parentDir{from, to} {
		post, _ := fstat(d.f())
		putWcc(w, d.o.e, d.pre, post)
	}
	return oncrpc.Success
}

func (s *Server) fsstat(c *oncrpc.Call, w *oncrpc.Writer) oncrpc.AcceptStat {
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
	st, err := s.statObj(o)
	var fs unix.Statfs_t
	if err == nil {
		var f *os.File
		if f, err = o.e.Root.Open("."); err == nil {
			err = unix.Fstatfs(fdOf(f), &fs)
			f.Close()
		}
	}
	if err != nil {
		w.Uint32(statusOf(err))
		putPostOp(w, o.e, st)
		return oncrpc.Success
	}
	bs := uint64(fs.Bsize)
	w.Uint32(nfsOK)
	putPostOp(w, o.e, st)
	w.Uint64(fs.Blocks * bs)
	w.Uint64(fs.Bfree * bs)
	w.Uint64(fs.Bavail * bs)
	w.Uint64(fs.Files)
	w.Uint64(fs.Ffree)
	w.Uint64(fs.Ffree)
	w.Uint32(0) // invarsec
	return oncrpc.Success
}

// FSINFO properties.
const (
	fsfLink        = 0x01
	fsfSymlink     = 0x02
	fsfHomogeneous = 0x08
	fsfCanSetTime  = 0x10
)

// dtpref is the preferred READDIR size.
const dtpref = 64 << 10

func (s *Server) fsinfo(c *oncrpc.Call, w *oncrpc.Writer) oncrpc.AcceptStat {
	r := oncrpc.NewReader(c.Args)
	h := r.Opaque(fhMax)
	if r.Err() != nil {
		return oncrpc.GarbageArgs
	}
	o, st, ok := s.resolveStat(w, h)
	if !ok {
		return oncrpc.Success
	}
	w.Uint32(nfsOK)
	putPostOp(w, o.e, st)
	w.Uint32(uint32(s.maxIO)) // rtmax
	w.Uint32(uint32(s.maxIO)) // rtpref
	w.Uint32(4096)            // rtmult
	w.Uint32(uint32(s.maxIO)) // wtmax
	w.Uint32(uint32(s.maxIO)) // wtpref
	w.Uint32(4096)            // wtmult
	w.Uint32(dtpref)
	w.Uint64(math.MaxInt64) // maxfilesize
	w.Uint32(0)             // time_delta: 1 ns
	w.Uint32(1)
	w.Uint32(fsfLink | fsfSymlink | fsfHomogeneous | fsfCanSetTime)
	return oncrpc.Success
}

func (s *Server) pathconf(c *oncrpc.Call, w *oncrpc.Writer) oncrpc.AcceptStat {
	r := oncrpc.NewReader(c.Args)
	h := r.Opaque(fhMax)
	if r.Err() != nil {
		return oncrpc.GarbageArgs
	}
	o, st, ok := s.resolveStat(w, h)
	if !ok {
		return oncrpc.Success
	}
	w.Uint32(nfsOK)
	putPostOp(w, o.e, st)
	w.Uint32(65000)   // linkmax (ext4)
	w.Uint32(nameMax) // name_max
	w.Bool(true)      // no_trunc
	w.Bool(true)      // chown_restricted
	w.Bool(false)     // case_insensitive
	w.Bool(true)      // case_preserving
	return oncrpc.Success
}
