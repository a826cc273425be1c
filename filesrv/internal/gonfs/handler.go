// Package gonfs runs go-nfs inside filesrv, behind filesrv's own RPC
// front: Handler is go-nfs's view of filesrv's exports (persistent
// handles from handles.Store, files through rootfs), and Forwarder hands
// single calls to go-nfs over a pool of in-memory connections, so the
// procedures that go-nfs gets right need no code of ours.
package gonfs

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"

	"github.com/go-git/go-billy/v5"
	nfs "github.com/willscott/go-nfs"
	"golang.org/x/sys/unix"

	"example.com/appliance/filesrv/internal/export"
	"example.com/appliance/filesrv/internal/handles"
	"example.com/appliance/filesrv/internal/rootfs"
)

// handleLimit is what HandleLimit reports: handles are persistent, so
// there is no cache for go-nfs to stay within. go-nfs sizes READDIR
// batches from half of it.
const handleLimit = 1 << 20

// Handler implements nfs.Handler over filesrv's exports. Each export has
// one billy filesystem, so go-nfs's check that both sides of a RENAME are
// on the same filesystem compares like with like.
type Handler struct {
	store *handles.Store
	exps  []*export.Export
	fss   map[*export.Export]billy.Filesystem
	byFS  map[billy.Filesystem]*export.Export
}

var _ nfs.Handler = (*Handler)(nil)

// NewHandler returns a Handler for exps, whose handles live in store.
func NewHandler(store *handles.Store, exps []*export.Export) *Handler {
	h := &Handler{
		store: store,
		exps:  exps,
		fss:   make(map[*export.Export]billy.Filesystem, len(exps)),
		byFS:  make(map[billy.Filesystem]*export.Export, len(exps)),
	}
	for _, e := range exps {
		fs := rootfs.New(e.Root, e.ReadOnly)
		h.fss[e] = fs
		h.byFS[fs] = e
	}
	return h
}

// FS returns the billy filesystem of an export.
func (h *Handler) FS(e *export.Export) billy.Filesystem { return h.fss[e] }

// Mount implements nfs.Handler. filesrv serves MOUNT itself, so go-nfs
// never sees one; it answers for the export named by the path, if the
// client may use it.
func (h *Handler) Mount(_ context.Context, conn net.Conn, req nfs.MountRequest) (nfs.MountStatus, billy.Filesystem, []nfs.AuthFlavor) {
	for _, e := range h.exps {
		if e.Path != string(req.Dirpath) {
			continue
		}
		if ap, err := netipAddr(conn.RemoteAddr()); err != nil || !e.Allowed(ap) {
			return nfs.MountStatusErrAcces, nil, nil
		}
		return nfs.MountStatusOk, h.fss[e], []nfs.AuthFlavor{nfs.AuthFlavorUnix, nfs.AuthFlavorNull}
	}
	return nfs.MountStatusErrNoEnt, nil, nil
}

// Change implements nfs.Handler: the filesystem's own billy.Change, or
// nil (read-only) for a read-only export.
func (h *Handler) Change(fs billy.Filesystem) billy.Change {
	e := h.byFS[fs]
	if e == nil || e.ReadOnly {
		return nil
	}
	if c, ok := fs.(billy.Change); ok {
		return c
	}
	return nil
}

// FSStat implements nfs.Handler with statfs(2) of the export's folder.
func (h *Handler) FSStat(_ context.Context, fs billy.Filesystem, s *nfs.FSStat) error {
	e := h.byFS[fs]
	if e == nil {
		return errors.New("unknown filesystem")
	}
	var st unix.Statfs_t
	if err := unix.Statfs(e.Dir, &st); err != nil {
		return fmt.Errorf("statfs %s: %w", e.Dir, err)
	}
	bs := uint64(st.Bsize)
	s.TotalSize = st.Blocks * bs
	s.FreeSize = st.Bfree * bs
	s.AvailableSize = st.Bavail * bs
	s.TotalFiles = st.Files
	s.FreeFiles = st.Ffree
	s.AvailableFiles = st.Ffree
	if e.ReadOnly {
		s.AvailableSize, s.AvailableFiles = 0, 0
	}
	return nil
}

// ToHandle implements nfs.Handler: the persistent handle of path, or nil
// when the file cannot be found.
func (h *Handler) ToHandle(fs billy.Filesystem, path []string) []byte {
	e := h.byFS[fs]
	if e == nil {
		return nil
	}
	fh, err := h.store.Handle(e, strings.Join(path, "/"))
	if err != nil {
		return nil
	}
	return fh
}

// FromHandle implements nfs.Handler.
func (h *Handler) FromHandle(fh []byte) (billy.Filesystem, []string, error) {
	e, p, err := h.store.Resolve(fh)
	if err != nil {
		return nil, nil, err
	}
	fs := h.fss[e]
	if fs == nil {
		return nil, nil, handles.ErrStale
	}
	if p == "" || p == "." {
		return fs, []string{}, nil
	}
	return fs, strings.Split(p, "/"), nil
}

// InvalidateHandle implements nfs.Handler. It does nothing: the nfs3
// package records removals and renames in the handle store itself, once
// it knows the forwarded call succeeded.
func (h *Handler) InvalidateHandle(billy.Filesystem, []byte) error { return nil }

// HandleLimit implements nfs.Handler.
func (h *Handler) HandleLimit() int { return handleLimit }
