package nfs3

import (
	"testing"

	"example.com/appliance/filesrv/internal/oncrpc"
)

// goNFSAttrs is a post_op_attr as go-nfs v0.0.4 writes it for a folder:
// Go's mode bits, fsid 0, and mtime for atime and ctime.
func goNFSAttrs(w *oncrpc.Writer) {
	w.Bool(true)
	w.Uint32(typeDir)
	w.Uint32(0x800001ed)
	for range 3 {
		w.Uint32(0) // nlink, uid, gid
	}
	for range 3 {
		w.Uint64(0) // size, used, rdev
	}
	w.Uint64(0) // fsid
	w.Uint64(1) // fileid
	for range 3 {
		w.Uint32(7)
		w.Uint32(0)
	}
}

// Forwarded replies carry the same attributes as every other reply: go-nfs
// writes fsid 0 and Go's mode bits, which made the Linux client report
// ESTALE for its own mounted root.
func TestForwardedAttributesRewritten(t *testing.T) {
	for _, tc := range []struct {
		name  string
		proc  uint32
		reply func(w *oncrpc.Writer) // go-nfs's results after the status
	}{
		{"FSSTAT", procFsstat, func(w *oncrpc.Writer) {
			goNFSAttrs(w)
			for range 6 {
				w.Uint64(1)
			}
			w.Uint32(0)
		}},
		{"PATHCONF", procPathconf, func(w *oncrpc.Writer) {
			goNFSAttrs(w)
			w.Uint32(1)
			w.Uint32(255)
			for range 4 {
				w.Bool(true)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := &fakeForwarder{serve: func(*oncrpc.Call) []byte {
				w := oncrpc.NewWriter(nil)
				w.Uint32(nfsOK)
				tc.reply(w)
				return w.Bytes()
			}}
			v := newEnv(t, withForwarder(f))
			stat, r := v.call(tc.proc, credRoot, argFH(v.rootFH()))
			if stat != oncrpc.Success || r.Uint32() != nfsOK {
				t.Fatalf("accept %d", stat)
			}
			a, ok := readPostOp(r)
			if !ok {
				t.Fatal("no attributes")
			}
			st := statOf(t, v.dir)
			if a.mode != st.Mode&0o7777 || a.fsid != uint64(v.e.ID) || a.fileid != st.Ino ||
				a.ctime != [2]uint32{uint32(st.Ctim.Sec), uint32(st.Ctim.Nsec)} {
				t.Errorf("attributes %+v; want mode %o, fsid %x, fileid %d and the real ctime", a, st.Mode&0o7777, v.e.ID, st.Ino)
			}
			want := oncrpc.NewWriter(nil)
			tc.reply(want)
			rest := want.Bytes()[4+fattr3Len:]
			if got := r.Rest(); string(got) != string(rest) {
				t.Errorf("results after the attributes changed: %x, want %x", got, rest)
			}
		})
	}
}
