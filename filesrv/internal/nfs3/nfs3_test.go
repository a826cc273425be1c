package nfs3

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"example.com/appliance/filesrv/internal/oncrpc"

	"example.com/appliance/shared/nettest"
)

func statOf(t *testing.T, p string) *syscall.Stat_t {
	t.Helper()
	fi, err := os.Lstat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Sys().(*syscall.Stat_t)
}

func TestGetattrRealAttributes(t *testing.T) {
	v := newEnv(t)
	p := filepath.Join(v.dir, "f")
	if err := os.WriteFile(p, []byte("hello"), 0o640); err != nil {
		t.Fatal(err)
	}
	// Make ctime differ from mtime.
	if err := unix.Utimes(p, []unix.Timeval{{Sec: 1000}, {Sec: 2000}}); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, 0o640); err != nil {
		t.Fatal(err)
	}
	_, r := v.call(procGetattr, credRoot, argFH(v.fh("f")))
	if st := r.Uint32(); st != nfsOK {
		t.Fatalf("status %d", st)
	}
	a := readFattr(r)
	st := statOf(t, p)
	want := fattr{typ: typeReg, mode: 0o640, nlink: 1, uid: st.Uid, gid: st.Gid, size: 5,
		used: uint64(st.Blocks) * 512, fsid: uint64(v.e.ID), fileid: st.Ino,
		atime: [2]uint32{1000, 0}, mtime: [2]uint32{2000, 0},
		ctime: [2]uint32{uint32(st.Ctim.Sec), uint32(st.Ctim.Nsec)}}
	if a != want {
		t.Errorf("fattr = %+v, want %+v", a, want)
	}
	if a.ctime == a.mtime {
		t.Error("ctime reported as mtime")
	}
}

func TestProcedureNumbers(t *testing.T) {
	v := newEnv(t)
	tests := []struct {
		name string
		proc uint32
		args []byte
		want oncrpc.AcceptStat
	}{
		{"null", procNull, nil, oncrpc.Success},
		{"beyond commit", 22, nil, oncrpc.ProcUnavail},
		{"huge", 1 << 31, nil, oncrpc.ProcUnavail},
		{"getattr no args", procGetattr, nil, oncrpc.GarbageArgs},
		{"getattr long handle", procGetattr, []byte{0, 0, 0, 200}, oncrpc.GarbageArgs},
		{"write short", procWrite, []byte{0, 0, 0, 0}, oncrpc.GarbageArgs},
		{"create bad mode", procCreate, append(append([]byte{0, 0, 0, 0}, 0, 0, 0, 1, 'x', 0, 0, 0), 0, 0, 0, 9), oncrpc.GarbageArgs},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &oncrpc.Call{Proc: tt.proc, Args: tt.args}
			if got := v.s.ServeRPC(t.Context(), c, oncrpc.NewWriter(nil)); got != tt.want {
				t.Errorf("accept status %d, want %d", got, tt.want)
			}
		})
	}
}

func TestBadHandles(t *testing.T) {
	v := newEnv(t)
	stale := make([]byte, 16)
	copy(stale, v.rootFH()[:4])
	stale[15] = 99
	tests := []struct {
		name string
		h    []byte
		want uint32
	}{
		{"stale", stale, errStale},
		{"malformed", []byte{1, 2, 3, 4}, errBadHandle},
		{"empty", nil, errBadHandle},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, proc := range []uint32{procGetattr, procAccess, procRead, procCommit, procFsinfo, procReaddir} {
				if st := v.status(proc, credRoot, func(w *oncrpc.Writer) {
					w.Opaque(tt.h)
					w.Raw(make([]byte, 64)) // enough zero arguments for any of them
				}); st != tt.want {
					t.Errorf("proc %d: status %d, want %d", proc, st, tt.want)
				}
			}
		})
	}
}

func TestLookup(t *testing.T) {
	v := newEnv(t)
	if err := os.MkdirAll(filepath.Join(v.dir, "d/e"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(v.dir, "d/f"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	ino := func(p string) uint64 { return statOf(t, filepath.Join(v.dir, p)).Ino }
	tests := []struct {
		name    string
		dir     string
		arg     string
		want    uint32
		wantIno uint64
	}{
		{"file", "d", "f", nfsOK, ino("d/f")},
		{"dot", "d", ".", nfsOK, ino("d")},
		{"dotdot", "d/e", "..", nfsOK, ino("d")},
		{"dotdot of root is root", ".", "..", nfsOK, ino(".")},
		{"missing", "d", "nope", errNoEnt, 0},
		{"slash", ".", "d/f", errAcces, 0},
		{"escape", ".", "../..", errAcces, 0},
		{"empty", ".", "", errNoEnt, 0},
		{"too long", ".", strings.Repeat("x", 256), errNameTooLong, 0},
		{"in a file", "d/f", "x", errNotDir, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, r := v.call(procLookup, credRoot, argDirop(v.fh(tt.dir), tt.arg))
			if st := r.Uint32(); st != tt.want {
				t.Fatalf("status %d, want %d", st, tt.want)
			}
			if tt.want != nfsOK {
				return
			}
			h := r.Opaque(fhMax)
			a, ok := readPostOp(r)
			if !ok || a.fileid != tt.wantIno {
				t.Errorf("fileid %d (attrs %v), want %d", a.fileid, ok, tt.wantIno)
			}
			if _, p, err := v.hs.Resolve(h); err != nil || statOf(t, filepath.Join(v.dir, p)).Ino != tt.wantIno {
				t.Errorf("handle resolves to %q, %v", p, err)
			}
		})
	}
}

// TestEscapes checks that nothing outside the export is read or touched
// through "..", symlinks or names with a slash.
func TestEscapes(t *testing.T) {
	v := newEnv(t)
	outside := filepath.Dir(v.dir)
	secret := filepath.Join(outside, "secret")
	if err := os.WriteFile(secret, []byte("secret"), 0o644); err != nil {
		t.Fatal(err)
	}
	for name, target := range map[string]string{"toroot": "/", "up": "..", "upfile": "../secret", "abs": secret} {
		if err := os.Symlink(target, filepath.Join(v.dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	root := v.rootFH()
	t.Run("lookup through symlink", func(t *testing.T) {
		for _, link := range []string{"toroot", "up"} {
			lh := v.lookup(root, link)
			for _, name := range []string{"etc", "secret", "export"} {
				if st := v.status(procLookup, credRoot, argDirop(lh, name)); st == nfsOK {
					t.Errorf("LOOKUP(%s, %s) succeeded", link, name)
				}
			}
		}
	})
	t.Run("read and write through symlink", func(t *testing.T) {
		for _, link := range []string{"upfile", "abs"} {
			lh := v.lookup(root, link)
			_, r := v.call(procRead, credRoot, readArgs(lh, 0, 100))
			if st := r.Uint32(); st == nfsOK {
				t.Errorf("READ(%s) succeeded", link)
			}
			if st := v.status(procWrite, credRoot, writeArgs(lh, 0, fileSync, []byte("owned"))); st == nfsOK {
				t.Errorf("WRITE(%s) succeeded", link)
			}
			if st := v.status(procSetattr, credRoot, func(w *oncrpc.Writer) {
				w.Opaque(lh)
				w.Bool(true)
				w.Uint32(0o777)
				w.Raw(make([]byte, 24))
			}); st != nfsOK {
				t.Errorf("SETATTR(mode) of symlink %s: status %d, want OK (ignored)", link, st)
			}
		}
	})
	t.Run("create through symlink", func(t *testing.T) {
		for _, link := range []string{"toroot", "up"} {
			lh := v.lookup(root, link)
			if _, st := v.create(credRoot, lh, "planted", 0o644); st == nfsOK {
				t.Errorf("CREATE in %s succeeded", link)
			}
			if st := v.status(procMkdir, credRoot, func(w *oncrpc.Writer) {
				w.Opaque(lh)
				w.String("planted")
				putSattr(w, -1)
			}); st == nfsOK {
				t.Errorf("MKDIR in %s succeeded", link)
			}
		}
	})
	t.Run("names with slash or dots", func(t *testing.T) {
		for _, name := range []string{"../planted", "a/b", "..", ".", "", "x\x00y"} {
			if _, st := v.create(credRoot, root, name, 0o644); st == nfsOK {
				t.Errorf("CREATE %q succeeded", name)
			}
			if st := v.status(procRemove, credRoot, argDirop(root, name)); st == nfsOK {
				t.Errorf("REMOVE %q succeeded", name)
			}
		}
	})
	t.Run("readlink is not followed", func(t *testing.T) {
		_, r := v.call(procReadlink, credRoot, argFH(v.lookup(root, "upfile")))
		if st := r.Uint32(); st != nfsOK {
			t.Fatalf("status %d", st)
		}
		readPostOp(r)
		if got := r.String(pathMax); got != "../secret" {
			t.Errorf("target %q", got)
		}
	})
	t.Run("rename out", func(t *testing.T) {
		if st := v.status(procRename, credRoot, func(w *oncrpc.Writer) {
			w.Opaque(root)
			w.String("toroot")
			w.Opaque(v.lookup(root, "up"))
			w.String("moved")
		}); st == nfsOK {
			t.Error("RENAME into a symlinked folder succeeded")
		}
	})
	ents, err := os.ReadDir(outside)
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != 2 {
		t.Errorf("outside the export: %v", ents)
	}
	if b, _ := os.ReadFile(secret); string(b) != "secret" {
		t.Errorf("secret changed: %q", b)
	}
	if fi, _ := os.Stat(secret); fi.Mode().Perm() != 0o644 {
		t.Errorf("secret mode changed: %v", fi.Mode())
	}
	if fi, _ := os.Stat(outside); fi.Mode().Perm() == 0o777 {
		t.Errorf("outside folder mode changed")
	}
}

func TestReadWriteCommit(t *testing.T) {
	files, _ := countSyncs(t)
	v := newEnv(t)
	fh, st := v.create(credRoot, v.rootFH(), "f", 0o644)
	if st != nfsOK {
		t.Fatalf("create: %d", st)
	}
	tests := []struct {
		name          string
		stable        uint32
		wantCommitted uint32
		wantSyncs     int32
	}{
		{"unstable", unstable, unstable, 0},
		{"data sync", dataSync, fileSync, 1},
		{"file sync", fileSync, fileSync, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := files.Load()
			data := []byte("data:" + tt.name)
			_, r := v.call(procWrite, credRoot, writeArgs(fh, 100, tt.stable, data))
			if st := r.Uint32(); st != nfsOK {
				t.Fatalf("status %d", st)
			}
			skipWcc(r)
			if n := r.Uint32(); n != uint32(len(data)) {
				t.Errorf("count %d", n)
			}
			if c := r.Uint32(); c != tt.wantCommitted {
				t.Errorf("committed %d, want %d", c, tt.wantCommitted)
			}
			if verf := r.Fixed(8); !bytes.Equal(verf, v.s.cfg.Verifier[:]) {
				t.Errorf("verifier %x", verf)
			}
			if got := files.Load() - before; got != tt.wantSyncs {
				t.Errorf("%d fsyncs, want %d", got, tt.wantSyncs)
			}
			b, _ := os.ReadFile(filepath.Join(v.dir, "f"))
			if !bytes.Equal(b[100:], data) {
				t.Errorf("file holds %q", b[100:])
			}
		})
	}
	t.Run("commit syncs", func(t *testing.T) {
		before := files.Load()
		_, r := v.call(procCommit, credRoot, readArgs(fh, 0, 0))
		if st := r.Uint32(); st != nfsOK {
			t.Fatalf("status %d", st)
		}
		skipWcc(r)
		if verf := r.Fixed(8); !bytes.Equal(verf, v.s.cfg.Verifier[:]) {
			t.Errorf("verifier %x", verf)
		}
		if files.Load()-before != 1 {
			t.Error("COMMIT did not fsync")
		}
	})
	if err := os.WriteFile(filepath.Join(v.dir, "f"), []byte("0123456789"), 0o644); err != nil {
		t.Fatal(err)
	}
	reads := []struct {
		name    string
		off     uint64
		count   uint32
		want    string
		wantEOF bool
	}{
		{"start", 0, 4, "0123", false},
		{"to end", 6, 4, "6789", true},
		{"past end", 8, 10, "89", true},
		{"beyond", 50, 10, "", true},
		{"odd length", 1, 3, "123", false},
	}
	for _, tt := range reads {
		t.Run("read "+tt.name, func(t *testing.T) {
			_, r := v.call(procRead, credRoot, readArgs(fh, tt.off, tt.count))
			if st := r.Uint32(); st != nfsOK {
				t.Fatalf("status %d", st)
			}
			readPostOp(r)
			n := r.Uint32()
			eof := r.Bool()
			data := r.Opaque(1 << 20)
			if r.Err() != nil || r.Len() != 0 {
				t.Fatalf("malformed reply: %v, %d bytes left", r.Err(), r.Len())
			}
			if string(data) != tt.want || n != uint32(len(tt.want)) || eof != tt.wantEOF {
				t.Errorf("got %q (%d) eof %v, want %q eof %v", data, n, eof, tt.want, tt.wantEOF)
			}
		})
	}
	t.Run("read a folder", func(t *testing.T) {
		if st := v.status(procRead, credRoot, readArgs(v.rootFH(), 0, 10)); st != errIsDir {
			t.Errorf("status %d, want ISDIR", st)
		}
	})
}

func TestCreate(t *testing.T) {
	_, dirs := countSyncs(t)
	v := newEnv(t)
	root := v.rootFH()
	exclusive := func(name string, verf string) (uint32, []byte) {
		_, r := v.call(procCreate, credRoot, func(w *oncrpc.Writer) {
			w.Opaque(root)
			w.String(name)
			w.Uint32(createExclusive)
			w.Raw([]byte(verf))
		})
		st := r.Uint32()
		if st != nfsOK {
			return st, nil
		}
		r.Bool()
		return st, r.Opaque(fhMax)
	}
	guarded := func(name string) uint32 {
		return v.status(procCreate, credRoot, func(w *oncrpc.Writer) {
			w.Opaque(root)
			w.String(name)
			w.Uint32(createGuarded)
			putSattr(w, 0o600)
		})
	}
	t.Run("unchecked mode ignores umask", func(t *testing.T) {
		old := unix.Umask(0o077)
		defer unix.Umask(old)
		if _, st := v.create(credRoot, root, "u", 0o666); st != nfsOK {
			t.Fatalf("status %d", st)
		}
		if fi, _ := os.Stat(filepath.Join(v.dir, "u")); fi.Mode().Perm() != 0o666 {
			t.Errorf("mode %v", fi.Mode())
		}
	})
	t.Run("unchecked existing", func(t *testing.T) {
		if _, st := v.create(credRoot, root, "u", 0o600); st != nfsOK {
			t.Errorf("status %d", st)
		}
	})
	t.Run("guarded", func(t *testing.T) {
		if st := guarded("g"); st != nfsOK {
			t.Errorf("status %d", st)
		}
		if st := guarded("g"); st != errExist {
			t.Errorf("again: status %d, want EXIST", st)
		}
	})
	t.Run("exclusive retransmission", func(t *testing.T) {
		st, h1 := exclusive("x", "verifier")
		if st != nfsOK {
			t.Fatalf("status %d", st)
		}
		st, h2 := exclusive("x", "verifier")
		if st != nfsOK || !bytes.Equal(h1, h2) {
			t.Errorf("retransmission: status %d, same handle %v", st, bytes.Equal(h1, h2))
		}
		if st, _ := exclusive("x", "another!"); st != errExist {
			t.Errorf("other verifier: status %d, want EXIST", st)
		}
		if st, _ := exclusive("u", "verifier"); st != errExist {
			t.Errorf("existing file: status %d, want EXIST", st)
		}
	})
	t.Run("parent synced", func(t *testing.T) {
		before := dirs.Load()
		if _, st := v.create(credRoot, root, "synced", 0o644); st != nfsOK {
			t.Fatal(st)
		}
		if dirs.Load() == before {
			t.Error("no directory fsync")
		}
	})
}

func TestMkdirSymlinkMknodLink(t *testing.T) {
	v := newEnv(t)
	root := v.rootFH()
	mknod := func(name string, typ uint32) uint32 {
		return v.status(procMknod, credRoot, func(w *oncrpc.Writer) {
			w.Opaque(root)
			w.String(name)
			w.Uint32(typ)
			switch typ {
			case typeChr, typeBlk:
				putSattr(w, 0o666)
				w.Uint32(1)
				w.Uint32(3)
			case typeFIFO, typeSock:
				putSattr(w, 0o640)
			}
		})
	}
	tests := []struct {
		name string
		do   func() uint32
		want uint32
	}{
		{"mkdir default mode", func() uint32 {
			return v.status(procMkdir, credRoot, func(w *oncrpc.Writer) { w.Opaque(root); w.String("d"); putSattr(w, -1) })
		}, nfsOK},
		{"mkdir mode", func() uint32 {
			return v.status(procMkdir, credRoot, func(w *oncrpc.Writer) { w.Opaque(root); w.String("d2"); putSattr(w, 0o700) })
		}, nfsOK},
		{"mkdir exists", func() uint32 {
			return v.status(procMkdir, credRoot, func(w *oncrpc.Writer) { w.Opaque(root); w.String("d"); putSattr(w, -1) })
		}, errExist},
		{"symlink", func() uint32 {
			return v.status(procSymlink, credRoot, func(w *oncrpc.Writer) {
				w.Opaque(root)
				w.String("l")
				putSattr(w, -1)
				w.String("/etc/passwd")
			})
		}, nfsOK},
		{"fifo", func() uint32 { return mknod("fifo", typeFIFO) }, nfsOK},
		{"socket", func() uint32 { return mknod("sock", typeSock) }, nfsOK},
		{"char device", func() uint32 { return mknod("null", typeChr) }, errPerm},
		{"block device", func() uint32 { return mknod("sda", typeBlk) }, errPerm},
		{"regular via mknod", func() uint32 { return mknod("reg", typeReg) }, errBadType},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if st := tt.do(); st != tt.want {
				t.Fatalf("status %d, want %d", st, tt.want)
			}
		})
	}
	checkMode := map[string]os.FileMode{"d": os.ModeDir | 0o755, "d2": os.ModeDir | 0o700,
		"l": os.ModeSymlink | 0o777, "fifo": os.ModeNamedPipe | 0o640, "sock": os.ModeSocket | 0o640}
	for name, want := range checkMode {
		fi, err := os.Lstat(filepath.Join(v.dir, name))
		if err != nil || fi.Mode() != want {
			t.Errorf("%s: mode %v, %v; want %v", name, fi.Mode(), err, want)
		}
	}
	for _, name := range []string{"null", "sda", "reg"} {
		if _, err := os.Lstat(filepath.Join(v.dir, name)); err == nil {
			t.Errorf("%s was created", name)
		}
	}
	t.Run("hard link", func(t *testing.T) {
		fh, _ := v.create(credRoot, root, "orig", 0o644)
		_, r := v.call(procLink, credRoot, func(w *oncrpc.Writer) {
			w.Opaque(fh)
			w.Opaque(v.fh("d"))
			w.String("linked")
		})
		if st := r.Uint32(); st != nfsOK {
			t.Fatalf("status %d", st)
		}
		a, ok := readPostOp(r)
		if !ok || a.nlink != 2 {
			t.Errorf("nlink %d", a.nlink)
		}
		if statOf(t, filepath.Join(v.dir, "d/linked")).Ino != statOf(t, filepath.Join(v.dir, "orig")).Ino {
			t.Error("not the same inode")
		}
		_, r = v.call(procGetattr, credRoot, argFH(fh))
		r.Uint32()
		if a := readFattr(r); a.nlink != 2 {
			t.Errorf("GETATTR nlink %d", a.nlink)
		}
		if st := v.status(procLink, credRoot, func(w *oncrpc.Writer) {
			w.Opaque(v.fh("d"))
			w.Opaque(root)
			w.String("dirlink")
		}); st != errIsDir {
			t.Errorf("link to a folder: status %d", st)
		}
	})
}

func TestSetattr(t *testing.T) {
	v := newEnv(t)
	fh, _ := v.create(credRoot, v.rootFH(), "f", 0o644)
	p := filepath.Join(v.dir, "f")
	// enc writes the sattr3; setattr adds a guard unless the case did.
	setattr := func(cred *oncrpc.Cred, enc func(w *oncrpc.Writer), guard bool) uint32 {
		return v.status(procSetattr, cred, func(w *oncrpc.Writer) {
			w.Opaque(fh)
			enc(w)
			if !guard {
				w.Bool(false)
			}
		})
	}
	tests := []struct {
		name  string
		cred  *oncrpc.Cred
		enc   func(w *oncrpc.Writer)
		want  uint32
		check func(t *testing.T, st *syscall.Stat_t)
	}{
		{"mode", credRoot, func(w *oncrpc.Writer) {
			w.Bool(true)
			w.Uint32(0o4751)
			w.Raw(make([]byte, 20))
		}, nfsOK, func(t *testing.T, st *syscall.Stat_t) {
			if st.Mode&0o7777 != 0o4751 {
				t.Errorf("mode %o", st.Mode&0o7777)
			}
		}},
		{"size", credRoot, func(w *oncrpc.Writer) {
			w.Raw(make([]byte, 12))
			w.Bool(true)
			w.Uint64(12345)
			w.Raw(make([]byte, 8))
		}, nfsOK, func(t *testing.T, st *syscall.Stat_t) {
			if st.Size != 12345 {
				t.Errorf("size %d", st.Size)
			}
		}},
		{"client times", credRoot, func(w *oncrpc.Writer) {
			w.Raw(make([]byte, 16))
			w.Uint32(setToClientTime)
			w.Uint32(111)
			w.Uint32(5)
			w.Uint32(setToClientTime)
			w.Uint32(222)
			w.Uint32(6)
		}, nfsOK, func(t *testing.T, st *syscall.Stat_t) {
			if st.Atim.Sec != 111 || st.Atim.Nsec != 5 || st.Mtim.Sec != 222 || st.Mtim.Nsec != 6 {
				t.Errorf("times %v %v", st.Atim, st.Mtim)
			}
		}},
		{"server time", credRoot, func(w *oncrpc.Writer) {
			w.Raw(make([]byte, 16))
			w.Uint32(setToServerTime)
			w.Uint32(setToServerTime)
		}, nfsOK, func(t *testing.T, st *syscall.Stat_t) {
			if st.Mtim.Sec < 1e9 {
				t.Errorf("mtime %v", st.Mtim)
			}
		}},
		{"guard mismatch", credRoot, func(w *oncrpc.Writer) {
			w.Bool(true)
			w.Uint32(0o600)
			w.Raw(make([]byte, 20))
			w.Bool(true)
			w.Uint32(1)
			w.Uint32(2)
		}, errNotSync, nil},
		{"chmod by another user", credUser, func(w *oncrpc.Writer) {
			w.Bool(true)
			w.Uint32(0o777)
			w.Raw(make([]byte, 20))
		}, errPerm, nil},
		{"chown by another user", credUser, func(w *oncrpc.Writer) {
			w.Bool(false)
			w.Bool(true)
			w.Uint32(1000)
			w.Raw(make([]byte, 16))
		}, errPerm, nil},
		{"truncate by another user", credUser, func(w *oncrpc.Writer) {
			w.Raw(make([]byte, 12))
			w.Bool(true)
			w.Uint64(0)
			w.Raw(make([]byte, 8))
		}, errAcces, nil},
		{"bad time how", credRoot, func(w *oncrpc.Writer) {
			w.Raw(make([]byte, 16))
			w.Uint32(7)
		}, 0, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.name == "bad time how" {
				if stat, _ := v.call(procSetattr, credRoot, func(w *oncrpc.Writer) { w.Opaque(fh); tt.enc(w) }); stat != oncrpc.GarbageArgs {
					t.Errorf("accept %d, want GARBAGE_ARGS", stat)
				}
				return
			}
			if st := setattr(tt.cred, tt.enc, tt.want == errNotSync); st != tt.want {
				t.Fatalf("status %d, want %d", st, tt.want)
			}
			if tt.check != nil {
				tt.check(t, statOf(t, p))
			}
		})
	}
}

func TestReadOnlyExport(t *testing.T) {
	v := newEnv(t, readOnly)
	if err := os.WriteFile(filepath.Join(v.dir, "f"), []byte("x"), 0o666); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(v.dir, "d"), 0o777); err != nil {
		t.Fatal(err)
	}
	root, f := v.rootFH(), v.fh("f")
	tests := []struct {
		name string
		proc uint32
		args func(w *oncrpc.Writer)
	}{
		{"setattr", procSetattr, func(w *oncrpc.Writer) { w.Opaque(f); putSattr(w, 0o600); w.Bool(false) }},
		{"write", procWrite, writeArgs(f, 0, fileSync, []byte("y"))},
		{"create", procCreate, func(w *oncrpc.Writer) {
			w.Opaque(root)
			w.String("n")
			w.Uint32(createUnchecked)
			putSattr(w, -1)
		}},
		{"mkdir", procMkdir, func(w *oncrpc.Writer) { w.Opaque(root); w.String("n"); putSattr(w, -1) }},
		{"symlink", procSymlink, func(w *oncrpc.Writer) { w.Opaque(root); w.String("n"); putSattr(w, -1); w.String("t") }},
		{"mknod", procMknod, func(w *oncrpc.Writer) { w.Opaque(root); w.String("n"); w.Uint32(typeFIFO); putSattr(w, -1) }},
		{"remove", procRemove, argDirop(root, "f")},
		{"rmdir", procRmdir, argDirop(root, "d")},
		{"rename", procRename, func(w *oncrpc.Writer) { w.Opaque(root); w.String("f"); w.Opaque(root); w.String("g") }},
		{"link", procLink, func(w *oncrpc.Writer) { w.Opaque(f); w.Opaque(root); w.String("n") }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if st := v.status(tt.proc, credRoot, tt.args); st != errROFS {
				t.Errorf("status %d, want ROFS", st)
			}
		})
	}
	ents, _ := os.ReadDir(v.dir)
	if len(ents) != 2 {
		t.Errorf("export changed: %v", ents)
	}
	if b, _ := os.ReadFile(filepath.Join(v.dir, "f")); string(b) != "x" {
		t.Errorf("file changed: %q", b)
	}
	t.Run("access", func(t *testing.T) {
		_, r := v.call(procAccess, credRoot, func(w *oncrpc.Writer) { w.Opaque(f); w.Uint32(0x3f) })
		r.Uint32()
		readPostOp(r)
		if got := r.Uint32(); got&(accessModify|accessExtend|accessDelete) != 0 || got&accessRead == 0 {
			t.Errorf("access %#x", got)
		}
	})
	t.Run("read", func(t *testing.T) {
		_, r := v.call(procRead, credRoot, readArgs(f, 0, 10))
		if st := r.Uint32(); st != nfsOK {
			t.Errorf("status %d", st)
		}
	})
}

func TestIdentity(t *testing.T) {
	nettest.NeedRoot(t, "to own files as other users")
	v := newEnv(t)
	secret := filepath.Join(v.dir, "secret")
	if err := os.WriteFile(secret, []byte("root only"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(v.dir, "rootdir"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(v.dir, "tmp"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(v.dir, "tmp"), os.ModeSticky|0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(v.dir, "tmp/rootfile"), nil, 0o666); err != nil {
		t.Fatal(err)
	}
	sh := v.fh("secret")
	access := func(cred *oncrpc.Cred, h []byte) uint32 {
		_, r := v.call(procAccess, cred, func(w *oncrpc.Writer) { w.Opaque(h); w.Uint32(0x3f) })
		r.Uint32()
		readPostOp(r)
		return r.Uint32()
	}
	tests := []struct {
		name string
		do   func() uint32
		want uint32
	}{
		{"user reads 0600 root file", func() uint32 { return v.status(procRead, credUser, readArgs(sh, 0, 10)) }, errAcces},
		{"user writes 0600 root file", func() uint32 {
			return v.status(procWrite, credUser, writeArgs(sh, 0, unstable, []byte("x")))
		}, errAcces},
		{"root reads it", func() uint32 { return v.status(procRead, credRoot, readArgs(sh, 0, 10)) }, nfsOK},
		{"squashed root reads it", func() uint32 {
			v.e.Squash = 0 // RootSquash
			defer func() { v.e.Squash = 2 }()
			return v.status(procRead, credRoot, readArgs(sh, 0, 10))
		}, errAcces},
		{"user access bits", func() uint32 { return access(credUser, sh) }, 0},
		{"root access bits on a file without x", func() uint32 { return access(credRoot, sh) }, accessRead | accessModify | accessExtend},
		{"user creates in root folder", func() uint32 {
			_, st := v.create(credUser, v.fh("rootdir"), "x", 0o644)
			return st
		}, errAcces},
		{"user removes another's file in sticky folder", func() uint32 {
			return v.status(procRemove, credUser, argDirop(v.fh("tmp"), "rootfile"))
		}, errPerm},
		{"user lists root folder", func() uint32 {
			return v.status(procReaddir, credUser, func(w *oncrpc.Writer) {
				w.Opaque(v.fh("rootdir"))
				w.Uint64(0)
				w.Raw(make([]byte, 8))
				w.Uint32(4096)
			})
		}, nfsOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.do(); got != tt.want {
				t.Errorf("got %d (%#x), want %d (%#x)", got, got, tt.want, tt.want)
			}
		})
	}
	t.Run("new files belong to the caller", func(t *testing.T) {
		cred := &oncrpc.Cred{UID: 1000, GID: 1000}
		if _, st := v.create(cred, v.fh("tmp"), "mine", 0o600); st != nfsOK {
			t.Fatalf("status %d", st)
		}
		st := statOf(t, filepath.Join(v.dir, "tmp/mine"))
		if st.Uid != 1000 || st.Gid != 1000 {
			t.Errorf("owner %d:%d", st.Uid, st.Gid)
		}
		if st := v.status(procSymlink, cred, func(w *oncrpc.Writer) {
			w.Opaque(v.fh("tmp"))
			w.String("mylink")
			putSattr(w, -1)
			w.String("mine")
		}); st != nfsOK {
			t.Fatalf("symlink: %d", st)
		}
		if st := statOf(t, filepath.Join(v.dir, "tmp/mylink")); st.Uid != 1000 {
			t.Errorf("symlink owner %d", st.Uid)
		}
		if st := statOf(t, filepath.Join(v.dir, "tmp/rootfile")); st.Uid != 0 {
			t.Errorf("symlink target chowned")
		}
	})
}

func TestFsinfo(t *testing.T) {
	v := newEnv(t)
	_, r := v.call(procFsinfo, credRoot, argFH(v.rootFH()))
	if st := r.Uint32(); st != nfsOK {
		t.Fatal(st)
	}
	readPostOp(r)
	got := []uint32{r.Uint32(), r.Uint32(), r.Uint32(), r.Uint32(), r.Uint32(), r.Uint32(), r.Uint32()}
	want := []uint32{1 << 20, 1 << 20, 4096, 1 << 20, 1 << 20, 4096, dtpref}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("field %d = %d, want %d", i, got[i], want[i])
		}
	}
	r.Uint64()
	if sec, nsec := r.Uint32(), r.Uint32(); sec != 0 || nsec != 1 {
		t.Errorf("time_delta %d.%09d", sec, nsec)
	}
	if p := r.Uint32(); p != 0x1b {
		t.Errorf("properties %#x", p)
	}
}
