package nfs3

import (
	"bytes"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"example.com/appliance/filesrv/internal/oncrpc"
)

// TestStatPaths checks the procedures that take attributes from the
// handle store's check (ResolveStat) and make handles from a stat they
// did (HandleStat) against what is on disk.
func TestStatPaths(t *testing.T) {
	v := newEnv(t, realStore(t))
	for _, d := range []string{"d", "d/sub"} {
		if err := os.Mkdir(filepath.Join(v.dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(filepath.Join(v.dir, d), 0o777); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(v.dir, "d/f"), []byte("hello"), 0o640); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/etc", filepath.Join(v.dir, "d/out")); err != nil {
		t.Fatal(err)
	}
	root, err := v.s.hs.Handle(v.e, ".")
	if err != nil {
		t.Fatal(err)
	}
	lookup := func(dir []byte, name string) (uint32, []byte, fattr, fattr) {
		t.Helper()
		stat, r := v.call(procLookup, credRoot, argDirop(dir, name))
		if stat != oncrpc.Success {
			t.Fatalf("lookup %q: accept %d", name, stat)
		}
		st := r.Uint32()
		if st != nfsOK {
			da, _ := readPostOp(r)
			return st, nil, fattr{}, da
		}
		h := r.Opaque(fhMax)
		a, _ := readPostOp(r)
		da, _ := readPostOp(r)
		if r.Err() != nil {
			t.Fatalf("lookup %q: %v", name, r.Err())
		}
		return st, h, a, da
	}
	check := func(what string, a fattr, p string) {
		t.Helper()
		fi, err := os.Lstat(filepath.Join(v.dir, p))
		if err != nil {
			t.Fatal(err)
		}
		sys := fi.Sys().(*syscall.Stat_t)
		if a.fileid != sys.Ino || a.mode != sys.Mode&0o7777 || a.size != uint64(sys.Size) || a.typ != ftype(sys.Mode) ||
			a.uid != sys.Uid || a.gid != sys.Gid || uint64(a.nlink) != sys.Nlink || a.fsid != uint64(v.e.ID) {
			t.Errorf("%s: attributes %+v, on disk %+v", what, a, sys)
		}
	}

	st, dh, a, ra := lookup(root, "d")
	if st != nfsOK {
		t.Fatalf("lookup d: %d", st)
	}
	check("lookup d", a, "d")
	check("lookup d: folder", ra, ".")
	if want, _ := v.s.hs.Handle(v.e, "d"); !bytes.Equal(dh, want) {
		t.Errorf("handle of d %x, want %x", dh, want)
	}
	st, fh, a, da := lookup(dh, "f")
	if st != nfsOK {
		t.Fatalf("lookup f: %d", st)
	}
	check("lookup d/f", a, "d/f")
	check("lookup d/f: folder", da, "d")
	if want, _ := v.s.hs.Handle(v.e, "d/f"); !bytes.Equal(fh, want) {
		t.Errorf("handle of d/f %x, want %x", fh, want)
	}
	if st, _, a, _ := lookup(dh, "out"); st != nfsOK || a.typ != typeLnk {
		t.Errorf("lookup of a symlink to /etc: status %d, type %d; want the link itself", st, a.typ)
	}
	if st, _, _, _ := lookup(dh, "nope"); st != errNoEnt {
		t.Errorf("lookup missing: %d", st)
	}
	if st, _, _, _ := lookup(fh, "x"); st != errNotDir {
		t.Errorf("lookup in a file: %d", st)
	}
	if st, h, _, _ := lookup(dh, ".."); st != nfsOK || !bytes.Equal(h, root) {
		t.Errorf("lookup ..: %d %x", st, h)
	}
	if st, h, _, _ := lookup(dh, "sub"); st != nfsOK {
		t.Errorf("lookup sub: %d", st)
	} else if sst, h2, a, _ := lookup(h, "."); sst != nfsOK || !bytes.Equal(h, h2) {
		t.Errorf("lookup sub/.: %d", sst)
	} else {
		check("lookup d/sub/.", a, "d/sub")
	}

	stat, r := v.call(procGetattr, credRoot, argFH(fh))
	if stat != oncrpc.Success || r.Uint32() != nfsOK {
		t.Fatal("getattr d/f failed")
	}
	check("getattr d/f", readFattr(r), "d/f")

	// CREATE sets exactly the mode asked for, whatever the umask, and
	// the owner of the caller; WRITE, COMMIT and READ use the new file.
	old := syscall.Umask(0o077)
	defer syscall.Umask(old)
	for _, tt := range []struct {
		name string
		mode int
		cred *oncrpc.Cred
	}{
		{"c644", 0o644, credRoot},
		{"c600", 0o600, credRoot},
		{"c4755", 0o4755, credRoot},
		{"cuser", 0o664, credUser},
	} {
		if tt.cred == credUser && !v.s.root {
			continue
		}
		h, st := v.create(tt.cred, dh, tt.name, tt.mode)
		if st != nfsOK {
			t.Fatalf("create %s: %d", tt.name, st)
		}
		fi, err := os.Lstat(filepath.Join(v.dir, "d", tt.name))
		if err != nil {
			t.Fatal(err)
		}
		sys := fi.Sys().(*syscall.Stat_t)
		if sys.Mode&0o7777 != uint32(tt.mode) {
			t.Errorf("create %s: mode %o, want %o", tt.name, sys.Mode&0o7777, tt.mode)
		}
		if v.s.root && (sys.Uid != tt.cred.UID || sys.Gid != tt.cred.GID) {
			t.Errorf("create %s: owner %d:%d, want %d:%d", tt.name, sys.Uid, sys.Gid, tt.cred.UID, tt.cred.GID)
		}
		if want, _ := v.s.hs.Handle(v.e, "d/"+tt.name); !bytes.Equal(h, want) {
			t.Errorf("create %s: handle %x, want %x", tt.name, h, want)
		}
		if st := v.status(procWrite, tt.cred, writeArgs(h, 0, unstable, []byte("data"))); st != nfsOK {
			t.Errorf("write %s: %d", tt.name, st)
		}
		if st := v.status(procCommit, tt.cred, func(w *oncrpc.Writer) { w.Opaque(h); w.Uint64(0); w.Uint32(0) }); st != nfsOK {
			t.Errorf("commit %s: %d", tt.name, st)
		}
		_, r := v.call(procRead, tt.cred, readArgs(h, 0, 100))
		if st := r.Uint32(); st != nfsOK {
			t.Errorf("read %s: %d", tt.name, st)
			continue
		}
		readPostOp(r)
		r.Uint32()
		r.Bool()
		if got := r.Opaque(100); string(got) != "data" {
			t.Errorf("read %s: %q", tt.name, got)
		}
	}

	// REMOVE, served here: the name is gone and the handle stale.
	if st := v.status(procRemove, credRoot, argDirop(dh, "f")); st != nfsOK {
		t.Fatalf("remove: %d", st)
	}
	if _, err := os.Lstat(filepath.Join(v.dir, "d/f")); !os.IsNotExist(err) {
		t.Errorf("d/f after remove: %v", err)
	}
	if st := v.status(procGetattr, credRoot, argFH(fh)); st != errStale {
		t.Errorf("getattr of removed: %d", st)
	}
}
