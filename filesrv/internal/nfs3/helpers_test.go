package nfs3

import (
	"context"
	"encoding/binary"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"go.uber.org/goleak"

	"example.com/appliance/filesrv/internal/export"
	"example.com/appliance/filesrv/internal/handles"
	"example.com/appliance/filesrv/internal/oncrpc"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// fakeStore is a path-keyed handle store standing in for handles.Store
// in these tests.
type fakeStore struct {
	mu      sync.Mutex
	exps    map[uint32]*export.Export
	byPath  map[string]uint64 // export ID + "\x00" + path
	paths   map[uint64]string
	next    uint64
	removed []string
	moved   [][2]string
}

func newFakeStore(exps ...*export.Export) *fakeStore {
	fs := &fakeStore{exps: make(map[uint32]*export.Export), byPath: make(map[string]uint64), paths: make(map[uint64]string)}
	for _, e := range exps {
		fs.exps[e.ID] = e
	}
	return fs
}

func clean(p string) string {
	if p == "" || p == "." {
		return "."
	}
	return filepath.ToSlash(filepath.Clean(p))
}

func (fs *fakeStore) Handle(e *export.Export, p string) ([]byte, error) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	p = clean(p)
	key := string(rune(0)) + e.Path + "\x00" + p
	id, ok := fs.byPath[key]
	if !ok {
		fs.next++
		id = fs.next
		fs.byPath[key] = id
		fs.paths[id] = key
	}
	h := make([]byte, handles.Len)
	binary.BigEndian.PutUint32(h, e.ID)
	binary.BigEndian.PutUint64(h[4:], id)
	return h, nil
}

func (fs *fakeStore) Resolve(h []byte) (*export.Export, string, error) {
	if len(h) != handles.Len {
		return nil, "", handles.ErrBadHandle
	}
	fs.mu.Lock()
	defer fs.mu.Unlock()
	e := fs.exps[binary.BigEndian.Uint32(h)]
	key, ok := fs.paths[binary.BigEndian.Uint64(h[4:])]
	if e == nil || !ok {
		return nil, "", handles.ErrStale
	}
	return e, key[strings.LastIndexByte(key, 0)+1:], nil
}

func (fs *fakeStore) Moved(e *export.Export, oldPath, newPath string) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	fs.moved = append(fs.moved, [2]string{oldPath, newPath})
	oldKey := string(rune(0)) + e.Path + "\x00" + clean(oldPath)
	if id, ok := fs.byPath[oldKey]; ok {
		delete(fs.byPath, oldKey)
		newKey := string(rune(0)) + e.Path + "\x00" + clean(newPath)
		fs.byPath[newKey] = id
		fs.paths[id] = newKey
	}
}

func (fs *fakeStore) Removed(e *export.Export, p string) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	fs.removed = append(fs.removed, p)
	key := string(rune(0)) + e.Path + "\x00" + clean(p)
	if id, ok := fs.byPath[key]; ok {
		delete(fs.byPath, key)
		delete(fs.paths, id)
	}
}

// env is a server over one export in a temporary folder.
type env struct {
	t   testing.TB
	s   *Server
	e   *export.Export
	dir string
	hs  *fakeStore
}

type envOpt func(*Config, *export.Export)

func readOnly(_ *Config, e *export.Export) { e.ReadOnly = true }

func withForwarder(f *fakeForwarder) envOpt {
	return func(c *Config, _ *export.Export) { c.Forward = f.forward }
}

func newEnv(t testing.TB, opts ...envOpt) *env {
	t.Helper()
	dir := t.TempDir()
	// The export is a subfolder, so tests can check nothing outside it
	// is touched.
	exp := filepath.Join(dir, "export")
	if err := os.Mkdir(exp, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(exp, 0o777); err != nil {
		t.Fatal(err)
	}
	root, err := os.OpenRoot(exp)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { root.Close() })
	e := &export.Export{Path: "/export", Dir: exp, Root: root, Squash: export.NoSquash,
		AnonUID: 65534, AnonGID: 65534, ID: export.IDFor("/export")}
	cfg := Config{Exports: []*export.Export{e}, Verifier: [8]byte{1, 2, 3, 4, 5, 6, 7, 8}}
	for _, o := range opts {
		o(&cfg, e)
	}
	hs := newFakeStore(e)
	var store handleStore = hs
	if cfg.Handles != nil {
		store = cfg.Handles
	}
	s := newServer(cfg, store)
	t.Cleanup(func() { s.Close() })
	return &env{t: t, s: s, e: e, dir: exp, hs: hs}
}

// realStore serves with a handles.Store instead of the fake one; env.fh
// then still uses the fake, so tests get handles with env.lookup.
func realStore(t testing.TB) envOpt {
	return func(c *Config, e *export.Export) {
		st, err := handles.Open(t.TempDir(), []*export.Export{e}, handles.WithLogger(slog.New(slog.DiscardHandler)))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		c.Handles = st
	}
}

// rootFH is the export root's handle.
func (v *env) rootFH() []byte { return v.fh(".") }

// fh is the handle of a path in the export.
func (v *env) fh(p string) []byte {
	h, err := v.hs.Handle(v.e, p)
	if err != nil {
		v.t.Fatal(err)
	}
	return h
}

var (
	credRoot = &oncrpc.Cred{UID: 0, GID: 0}
	credUser = &oncrpc.Cred{UID: 1000, GID: 1000}
)

// call serves one procedure and returns the accept status and a Reader
// over the results.
func (v *env) call(proc uint32, cred *oncrpc.Cred, args func(w *oncrpc.Writer)) (oncrpc.AcceptStat, *oncrpc.Reader) {
	w := oncrpc.NewWriter(nil)
	if args != nil {
		args(w)
	}
	rec := oncrpc.NewWriter(nil)
	oncrpc.AppendCall(rec, 1, Program, Version, proc, oncrpc.OpaqueAuth{})
	rec.Raw(w.Bytes())
	c := &oncrpc.Call{XID: 1, Prog: Program, Vers: Version, Proc: proc, Sys: cred,
		Args: w.Bytes(), Record: rec.Bytes()}
	reply := oncrpc.NewWriter(nil)
	stat := v.s.ServeRPC(context.Background(), c, reply)
	return stat, oncrpc.NewReader(reply.Bytes())
}

// status serves a procedure and returns only its nfsstat3.
func (v *env) status(proc uint32, cred *oncrpc.Cred, args func(w *oncrpc.Writer)) uint32 {
	v.t.Helper()
	stat, r := v.call(proc, cred, args)
	if stat != oncrpc.Success {
		v.t.Fatalf("proc %d: accept status %d", proc, stat)
	}
	return r.Uint32()
}

// fattr is a decoded fattr3.
type fattr struct {
	typ, mode, nlink, uid, gid uint32
	size, used                 uint64
	major, minor               uint32
	fsid, fileid               uint64
	atime, mtime, ctime        [2]uint32
}

func readFattr(r *oncrpc.Reader) fattr {
	var a fattr
	a.typ, a.mode, a.nlink, a.uid, a.gid = r.Uint32(), r.Uint32(), r.Uint32(), r.Uint32(), r.Uint32()
	a.size, a.used = r.Uint64(), r.Uint64()
	a.major, a.minor = r.Uint32(), r.Uint32()
	a.fsid, a.fileid = r.Uint64(), r.Uint64()
	a.atime = [2]uint32{r.Uint32(), r.Uint32()}
	a.mtime = [2]uint32{r.Uint32(), r.Uint32()}
	a.ctime = [2]uint32{r.Uint32(), r.Uint32()}
	return a
}

// readPostOp decodes a post_op_attr; ok is false without attributes.
func readPostOp(r *oncrpc.Reader) (fattr, bool) {
	if !r.Bool() {
		return fattr{}, false
	}
	return readFattr(r), true
}

// Argument encoders.

func argFH(h []byte) func(*oncrpc.Writer) {
	return func(w *oncrpc.Writer) { w.Opaque(h) }
}

func argDirop(h []byte, name string) func(*oncrpc.Writer) {
	return func(w *oncrpc.Writer) { w.Opaque(h); w.String(name) }
}

// sattrArgs encodes a sattr3; mode < 0 leaves the mode unset.
func putSattr(w *oncrpc.Writer, mode int) {
	if mode >= 0 {
		w.Bool(true)
		w.Uint32(uint32(mode))
	} else {
		w.Bool(false)
	}
	w.Bool(false) // uid
	w.Bool(false) // gid
	w.Bool(false) // size
	w.Uint32(dontChange)
	w.Uint32(dontChange)
}

// lookup returns the handle of name in dir, failing the test otherwise.
func (v *env) lookup(dir []byte, name string) []byte {
	v.t.Helper()
	stat, r := v.call(procLookup, credRoot, argDirop(dir, name))
	if stat != oncrpc.Success {
		v.t.Fatalf("lookup %q: accept %d", name, stat)
	}
	if st := r.Uint32(); st != nfsOK {
		v.t.Fatalf("lookup %q: status %d", name, st)
	}
	return r.Opaque(fhMax)
}

// create makes a file with UNCHECKED CREATE and returns its handle.
func (v *env) create(cred *oncrpc.Cred, dir []byte, name string, mode int) ([]byte, uint32) {
	v.t.Helper()
	_, r := v.call(procCreate, cred, func(w *oncrpc.Writer) {
		w.Opaque(dir)
		w.String(name)
		w.Uint32(createUnchecked)
		putSattr(w, mode)
	})
	st := r.Uint32()
	if st != nfsOK {
		return nil, st
	}
	r.Bool()
	return r.Opaque(fhMax), st
}

// writeArgs encodes WRITE arguments.
func writeArgs(h []byte, off uint64, stable uint32, data []byte) func(*oncrpc.Writer) {
	return func(w *oncrpc.Writer) {
		w.Opaque(h)
		w.Uint64(off)
		w.Uint32(uint32(len(data)))
		w.Uint32(stable)
		w.Opaque(data)
	}
}

func readArgs(h []byte, off uint64, count uint32) func(*oncrpc.Writer) {
	return func(w *oncrpc.Writer) {
		w.Opaque(h)
		w.Uint64(off)
		w.Uint32(count)
	}
}

// fakeForwarder stands in for go-nfs: it records calls and performs
// REMOVE, RMDIR and RENAME with the server's own implementation.
type fakeForwarder struct {
	calls atomic.Int32
	procs []uint32
	mu    sync.Mutex
	// serve answers a forwarded call; nil answers NFS3_OK with empty wcc.
	serve func(c *oncrpc.Call) []byte
}

func (f *fakeForwarder) forward(_ context.Context, c *oncrpc.Call) (oncrpc.AcceptStat, []byte, error) {
	f.calls.Add(1)
	f.mu.Lock()
	f.procs = append(f.procs, c.Proc)
	f.mu.Unlock()
	if f.serve != nil {
		return oncrpc.Success, f.serve(c), nil
	}
	w := oncrpc.NewWriter(nil)
	w.Uint32(nfsOK)
	return oncrpc.Success, w.Bytes(), nil
}

// syncCounter replaces the sync hooks for a test.
func countSyncs(t *testing.T) (files, dirs *atomic.Int32) {
	files, dirs = new(atomic.Int32), new(atomic.Int32)
	oldF, oldD := syncFile, syncDir
	syncFile = func(f *os.File) error { files.Add(1); return oldF(f) }
	syncDir = func(f *os.File) error { dirs.Add(1); return oldD(f) }
	t.Cleanup(func() { syncFile, syncDir = oldF, oldD })
	return files, dirs
}

// dirOfFiles makes the folder name at the export root with n empty files
// f00000... (digits as wide as n needs) and returns its handle.
func (v *env) dirOfFiles(tb testing.TB, name string, n int) []byte {
	tb.Helper()
	dir := filepath.Join(v.dir, name)
	if err := os.Mkdir(dir, 0o755); err != nil {
		tb.Fatal(err)
	}
	width := len(fmt.Sprint(n - 1))
	for i := range n {
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%0*d", width, i)), nil, 0o644); err != nil {
			tb.Fatal(err)
		}
	}
	return v.lookup(v.rootFH(), name)
}
