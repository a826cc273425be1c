package gonfs

import (
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"testing"

	nfs "github.com/willscott/go-nfs"

	"example.com/appliance/filesrv/internal/export"
	"example.com/appliance/filesrv/internal/handles"
)

// newExport returns an export of a new folder holding a/b.txt, and its
// handle store.
func newExport(t *testing.T, readOnly bool) (*export.Export, *handles.Store) {
	t.Helper()
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "a"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "a", "b.txt"), []byte("b\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { root.Close() })
	e := &export.Export{Path: "/export", Dir: dir, Root: root, ReadOnly: readOnly,
		Clients: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}, ID: export.IDFor("/export")}
	store, err := handles.Open(t.TempDir(), []*export.Export{e})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	return e, store
}

func TestHandler(t *testing.T) {
	e, store := newExport(t, false)
	h := NewHandler(store, []*export.Export{e})
	fs := h.FS(e)
	fh := h.ToHandle(fs, []string{"a", "b.txt"})
	if len(fh) == 0 || len(fh)%4 != 0 {
		t.Fatalf("handle %x: want a non-empty multiple of 4 bytes", fh)
	}
	gotFS, path, err := h.FromHandle(fh)
	if err != nil || gotFS != fs || !slices.Equal(path, []string{"a", "b.txt"}) {
		t.Errorf("FromHandle = %v, %q, %v", gotFS, path, err)
	}
	rootFH := h.ToHandle(fs, nil)
	if _, path, err := h.FromHandle(rootFH); err != nil || len(path) != 0 {
		t.Errorf("FromHandle(root) = %q, %v", path, err)
	}
	if fh := h.ToHandle(fs, []string{"missing"}); fh != nil {
		t.Errorf("ToHandle(missing) = %x, want nil", fh)
	}
	if h.Change(fs) == nil {
		t.Error("Change of a read-write export is nil")
	}
	var st nfs.FSStat
	if err := h.FSStat(context.Background(), fs, &st); err != nil || st.TotalSize == 0 || st.TotalFiles == 0 {
		t.Errorf("FSStat = %+v, %v", st, err)
	}
}

func TestHandlerReadOnly(t *testing.T) {
	e, store := newExport(t, true)
	h := NewHandler(store, []*export.Export{e})
	if c := h.Change(h.FS(e)); c != nil {
		t.Errorf("Change of a read-only export = %v, want nil", c)
	}
	var st nfs.FSStat
	if err := h.FSStat(context.Background(), h.FS(e), &st); err != nil || st.AvailableSize != 0 {
		t.Errorf("FSStat of a read-only export = %+v, %v; want nothing available", st, err)
	}
}
