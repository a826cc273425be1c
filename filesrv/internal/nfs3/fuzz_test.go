package nfs3

import (
	"os"
	"path/filepath"
	"testing"

	"example.com/appliance/filesrv/internal/oncrpc"
)

// FuzzServeRPC serves random procedures and arguments: ServeRPC must
// never panic, and must answer with a status it is allowed to use.
func FuzzServeRPC(f *testing.F) {
	v := newEnv(f)
	if err := os.WriteFile(filepath.Join(v.dir, "f"), []byte("0123456789"), 0o644); err != nil {
		f.Fatal(err)
	}
	root, fh := v.rootFH(), v.fh("f")
	seed := func(proc uint32, args func(*oncrpc.Writer)) {
		w := oncrpc.NewWriter(nil)
		args(w)
		f.Add(proc, w.Bytes())
	}
	for proc := range uint32(23) {
		seed(proc, argFH(root))
		seed(proc, argDirop(root, "f"))
	}
	seed(procRead, readArgs(fh, 0, 100))
	seed(procWrite, writeArgs(fh, 3, fileSync, []byte("abc")))
	seed(procCreate, func(w *oncrpc.Writer) { w.Opaque(root); w.String("n"); w.Uint32(createGuarded); putSattr(w, 0o644) })
	seed(procCreate, func(w *oncrpc.Writer) {
		w.Opaque(root)
		w.String("x")
		w.Uint32(createExclusive)
		w.Raw([]byte("verifier"))
	})
	seed(procMkdir, func(w *oncrpc.Writer) { w.Opaque(root); w.String("d"); putSattr(w, -1) })
	seed(procSymlink, func(w *oncrpc.Writer) { w.Opaque(root); w.String("l"); putSattr(w, -1); w.String("../..") })
	seed(procMknod, func(w *oncrpc.Writer) { w.Opaque(root); w.String("p"); w.Uint32(typeFIFO); putSattr(w, -1) })
	seed(procSetattr, func(w *oncrpc.Writer) { w.Opaque(fh); putSattr(w, 0o600); w.Bool(false) })
	seed(procRename, renameArgs(root, "f", root, "g"))
	seed(procLink, func(w *oncrpc.Writer) { w.Opaque(fh); w.Opaque(root); w.String("h") })
	seed(procReaddirplus, func(w *oncrpc.Writer) {
		w.Opaque(root)
		w.Uint64(0)
		w.Raw(make([]byte, 8))
		w.Uint32(1000)
		w.Uint32(4000)
	})
	seed(procAccess, func(w *oncrpc.Writer) { w.Opaque(fh); w.Uint32(0x3f) })
	f.Fuzz(func(t *testing.T, proc uint32, args []byte) {
		c := &oncrpc.Call{Proc: proc % 24, Args: args, Sys: credUser}
		if proc&0x100 != 0 {
			c.Sys = credRoot
		}
		w := oncrpc.NewWriter(nil)
		stat := v.s.ServeRPC(t.Context(), c, w)
		switch stat {
		case oncrpc.Success:
			if w.Len() < 4 && c.Proc != procNull {
				t.Errorf("proc %d: empty results", c.Proc)
			}
		case oncrpc.GarbageArgs, oncrpc.ProcUnavail:
		default:
			t.Errorf("proc %d: accept status %d", c.Proc, stat)
		}
	})
}
