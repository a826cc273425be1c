package nfs3

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"example.com/appliance/filesrv/internal/oncrpc"
)

// TestWithHandleStore runs a session against the real handles.Store:
// handles survive the rename of their folder and go stale on removal.
func TestWithHandleStore(t *testing.T) {
	v := newEnv(t, realStore(t))
	root, err := v.s.hs.Handle(v.e, ".")
	if err != nil {
		t.Fatal(err)
	}
	step := func(name string, proc uint32, args func(*oncrpc.Writer), want uint32) *oncrpc.Reader {
		t.Helper()
		stat, r := v.call(proc, credRoot, args)
		if stat != oncrpc.Success {
			t.Fatalf("%s: accept %d", name, stat)
		}
		if st := r.Uint32(); st != want {
			t.Fatalf("%s: status %d, want %d", name, st, want)
		}
		return r
	}
	step("mkdir", procMkdir, func(w *oncrpc.Writer) { w.Opaque(root); w.String("a"); putSattr(w, -1) }, nfsOK)
	r := step("lookup a", procLookup, argDirop(root, "a"), nfsOK)
	dir := r.Opaque(fhMax)
	fh, st := v.create(credRoot, dir, "f", 0o644)
	if st != nfsOK {
		t.Fatalf("create: %d", st)
	}
	step("write", procWrite, writeArgs(fh, 0, fileSync, []byte("persistent")), nfsOK)
	step("rename folder", procRename, renameArgs(root, "a", root, "b"), nfsOK)
	r = step("read after rename", procRead, readArgs(fh, 0, 100), nfsOK)
	readPostOp(r)
	r.Uint32()
	r.Bool()
	if got := r.Opaque(100); !bytes.Equal(got, []byte("persistent")) {
		t.Errorf("read %q", got)
	}
	r = step("lookup dotdot", procLookup, argDirop(dir, ".."), nfsOK)
	if h := r.Opaque(fhMax); !bytes.Equal(h, root) {
		t.Errorf(".. of b is %x, want root %x", h, root)
	}
	got := v.listAll(t, dir, true, 4096)
	if len(got) != 3 {
		t.Errorf("listing %v", got)
	}
	step("remove", procRemove, argDirop(dir, "f"), nfsOK)
	step("getattr removed", procGetattr, argFH(fh), errStale)
	if _, err := os.Stat(filepath.Join(v.dir, "b")); err != nil {
		t.Error(err)
	}
}
