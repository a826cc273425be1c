package nfs3

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"example.com/appliance/filesrv/internal/oncrpc"

	"example.com/appliance/shared/nettest"
)

func renameArgs(from []byte, fname string, to []byte, tname string) func(*oncrpc.Writer) {
	return func(w *oncrpc.Writer) {
		w.Opaque(from)
		w.String(fname)
		w.Opaque(to)
		w.String(tname)
	}
}

// TestRemoveRenameServed covers REMOVE, RMDIR and RENAME served here
// when there is no forwarder.
func TestRemoveRenameServed(t *testing.T) {
	v := newEnv(t)
	for _, d := range []string{"d", "full"} {
		if err := os.Mkdir(filepath.Join(v.dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []string{"f", "g", "full/x"} {
		if err := os.WriteFile(filepath.Join(v.dir, f), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("/nonexistent", filepath.Join(v.dir, "dangling")); err != nil {
		t.Fatal(err)
	}
	root := v.rootFH()
	tests := []struct {
		name string
		proc uint32
		args func(*oncrpc.Writer)
		want uint32
		gone string // must not exist afterwards
	}{
		{"remove folder", procRemove, argDirop(root, "d"), errIsDir, ""},
		{"rmdir file", procRmdir, argDirop(root, "f"), errNotDir, ""},
		{"rmdir not empty", procRmdir, argDirop(root, "full"), errNotEmpty, ""},
		{"rmdir dot", procRmdir, argDirop(root, "."), errInval, ""},
		{"rmdir dotdot", procRmdir, argDirop(root, ".."), errNotEmpty, ""},
		{"remove missing", procRemove, argDirop(root, "nope"), errNoEnt, ""},
		{"remove dangling symlink", procRemove, argDirop(root, "dangling"), nfsOK, "dangling"},
		{"remove file", procRemove, argDirop(root, "f"), nfsOK, "f"},
		{"rmdir", procRmdir, argDirop(root, "d"), nfsOK, "d"},
		{"rename", procRename, renameArgs(root, "g", v.fh("full"), "h"), nfsOK, "g"},
		{"rename dot", procRename, renameArgs(root, ".", root, "x"), errInval, ""},
		{"rename missing", procRename, renameArgs(root, "nope", root, "x"), errNoEnt, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if st := v.status(tt.proc, credRoot, tt.args); st != tt.want {
				t.Fatalf("status %d, want %d", st, tt.want)
			}
			if tt.gone != "" {
				if _, err := os.Lstat(filepath.Join(v.dir, tt.gone)); !os.IsNotExist(err) {
					t.Errorf("%s still there: %v", tt.gone, err)
				}
			}
		})
	}
	if _, err := os.Stat(filepath.Join(v.dir, "full/h")); err != nil {
		t.Errorf("rename target: %v", err)
	}
	if !slices.Contains(v.hs.removed, "f") || len(v.hs.moved) != 1 || v.hs.moved[0] != [2]string{"g", "full/h"} {
		t.Errorf("store told removed %v, moved %v", v.hs.removed, v.hs.moved)
	}
}

// TestRemoveRenameForwarded checks REMOVE, RMDIR and RENAME here; with a
// forwarder, REMOVE and RMDIR are still served here and RENAME that
// passes is forwarded; the outcome is recorded in the store.
func TestRemoveRenameForwarded(t *testing.T) {
	fwd := &fakeForwarder{}
	v := newEnv(t, withForwarder(fwd))
	if err := os.WriteFile(filepath.Join(v.dir, "f"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(v.dir, "d"), 0o755); err != nil {
		t.Fatal(err)
	}
	root := v.rootFH()
	stale := append([]byte(nil), root...)
	stale[11] ^= 0xff
	tests := []struct {
		name        string
		proc        uint32
		cred        *oncrpc.Cred
		args        func(*oncrpc.Writer)
		want        uint32
		wantForward bool
	}{
		{"stale", procRemove, credRoot, argDirop(stale, "f"), errStale, false},
		{"slash", procRemove, credRoot, argDirop(root, "d/x"), errInval, false},
		{"too long", procRemove, credRoot, argDirop(root, string(make([]byte, 300))), errNameTooLong, false},
		{"missing", procRemove, credRoot, argDirop(root, "nope"), errNoEnt, false},
		{"wrong kind", procRmdir, credRoot, argDirop(root, "f"), errNotDir, false},
		{"remove", procRemove, credRoot, argDirop(root, "f"), nfsOK, false},
		{"rename", procRename, credRoot, renameArgs(root, "d", root, "e"), nfsOK, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := fwd.calls.Load()
			if st := v.status(tt.proc, tt.cred, tt.args); st != tt.want {
				t.Errorf("status %d, want %d", st, tt.want)
			}
			if got := fwd.calls.Load() > before; got != tt.wantForward {
				t.Errorf("forwarded %v, want %v", got, tt.wantForward)
			}
		})
	}
	if !slices.Contains(v.hs.removed, "f") || len(v.hs.moved) != 1 || v.hs.moved[0] != [2]string{"d", "e"} {
		t.Errorf("store told removed %v, moved %v", v.hs.removed, v.hs.moved)
	}
	t.Run("forwarded procedures", func(t *testing.T) {
		for _, proc := range []uint32{procNull, procReadlink, procFsstat, procPathconf} {
			before := fwd.calls.Load()
			if stat, _ := v.call(proc, credRoot, argFH(root)); stat != oncrpc.Success || fwd.calls.Load() == before {
				t.Errorf("proc %d: accept %d, forwarded %v", proc, stat, fwd.calls.Load() > before)
			}
		}
	})
	t.Run("failed forward leaves the store alone", func(t *testing.T) {
		fwd.serve = func(*oncrpc.Call) []byte { return []byte{0, 0, 0, errAcces, 0, 0, 0, 0, 0, 0, 0, 0} }
		defer func() { fwd.serve = nil }()
		if err := os.WriteFile(filepath.Join(v.dir, "g"), nil, 0o644); err != nil {
			t.Fatal(err)
		}
		n := len(v.hs.moved)
		if st := v.status(procRename, credRoot, renameArgs(root, "g", root, "h")); st != errAcces {
			t.Errorf("status %d", st)
		}
		if len(v.hs.moved) != n {
			t.Error("store told of a failed rename")
		}
	})
}

func TestIdentityRemove(t *testing.T) {
	nettest.NeedRoot(t, "to own files as other users")
	fwd := &fakeForwarder{}
	v := newEnv(t, withForwarder(fwd))
	for _, d := range []string{"rootdir", "sticky"} {
		if err := os.Mkdir(filepath.Join(v.dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(filepath.Join(v.dir, "sticky"), os.ModeSticky|0o777); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"rootdir/f", "sticky/rootfile", "sticky/userfile"} {
		if err := os.WriteFile(filepath.Join(v.dir, f), nil, 0o666); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chown(filepath.Join(v.dir, "sticky/userfile"), 1000, 1000); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		proc uint32
		args func(*oncrpc.Writer)
		want uint32
	}{
		{"remove in root folder", procRemove, argDirop(v.fh("rootdir"), "f"), errAcces},
		{"rename out of root folder", procRename, renameArgs(v.fh("rootdir"), "f", v.fh("sticky"), "f"), errAcces},
		{"remove another's in sticky", procRemove, argDirop(v.fh("sticky"), "rootfile"), errPerm},
		{"rename another's in sticky", procRename, renameArgs(v.fh("sticky"), "rootfile", v.fh("sticky"), "x"), errPerm},
		{"replace another's in sticky", procRename, renameArgs(v.fh("sticky"), "userfile", v.fh("sticky"), "rootfile"), errPerm},
		{"remove own in sticky", procRemove, argDirop(v.fh("sticky"), "userfile"), nfsOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if st := v.status(tt.proc, credUser, tt.args); st != tt.want {
				t.Errorf("status %d, want %d", st, tt.want)
			}
		})
	}
}

// TestRemoveClosesCachedFile checks that a removed file's cached
// descriptor is closed, so its space is freed at once.
func TestRemoveClosesCachedFile(t *testing.T) {
	for _, forward := range []bool{false, true} {
		t.Run(map[bool]string{false: "served", true: "forwarded"}[forward], func(t *testing.T) {
			var opts []envOpt
			if forward {
				opts = append(opts, withForwarder(&fakeForwarder{}))
			}
			v := newEnv(t, opts...)
			fh, st := v.create(credRoot, v.rootFH(), "f", 0o644)
			if st != nfsOK {
				t.Fatal(st)
			}
			if st := v.status(procWrite, credRoot, writeArgs(fh, 0, unstable, []byte("x"))); st != nfsOK {
				t.Fatal(st)
			}
			if v.s.files.m[string(fh)] == nil {
				t.Fatal("new file not cached")
			}
			if st := v.status(procRemove, credRoot, argDirop(v.rootFH(), "f")); st != nfsOK {
				t.Fatal(st)
			}
			if v.s.files.m[string(fh)] != nil {
				t.Error("removed file still cached")
			}
		})
	}
}
