// Package mountd serves the MOUNT program, version 3 (RFC 1813 appendix I),
// for filesrv: it checks that a client may mount an export (or a folder
// inside one), hands out the folder's persistent file handle, remembers
// who mounted what for DUMP, and lists the exports for EXPORT
// (showmount -e, and libnfs right after every mount).
package mountd

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/netip"
	"path"
	"slices"
	"strings"
	"sync"
	"syscall"

	"example.com/appliance/filesrv/internal/export"
	"example.com/appliance/filesrv/internal/handles"
	"example.com/appliance/filesrv/internal/oncrpc"
)

// Program and version served.
const (
	Program = 100005
	Version = 3
)

// The procedures of MOUNT version 3.
const (
	ProcNull    = 0
	ProcMnt     = 1
	ProcDump    = 2
	ProcUmnt    = 3
	ProcUmntAll = 4
	ProcExport  = 5
)

// Limits of RFC 1813 appendix I.
const (
	MaxPathLen = 1024 // MNTPATHLEN
	MaxNameLen = 255  // MNTNAMLEN
	MaxFHSize  = 64   // FHSIZE3
)

// Status is a mountstat3.
type Status uint32

// The mountstat3 values.
const (
	OK             Status = 0
	ErrPerm        Status = 1
	ErrNoEnt       Status = 2
	ErrIO          Status = 5
	ErrAcces       Status = 13
	ErrNotDir      Status = 20
	ErrInval       Status = 22
	ErrNameTooLong Status = 63
	ErrNotSupp     Status = 10004
	ErrServerFault Status = 10006
)

// maxMounts bounds the mount list kept for DUMP, which any client can grow.
const maxMounts = 4096

// maxSymlinks bounds the symlinks followed in a mount path.
const maxSymlinks = 8

// Config configures a Server.
type Config struct {
	Exports []*export.Export
	Handles *handles.Store
	// Logger receives a line per mount and unmount; nil means slog.Default.
	Logger *slog.Logger
}

// Server is the MOUNT version 3 oncrpc.Handler. Safe for concurrent use.
type Server struct {
	exports []*export.Export // longest Path first
	listed  []*export.Export // as configured, for EXPORT
	handles *handles.Store
	log     *slog.Logger

	mu     sync.Mutex
	mounts []Mount
}

// Mount is one entry of the mount list (DUMP).
type Mount struct {
	Host string // the client's address
	Dir  string // the path it mounted
}

var _ oncrpc.Handler = (*Server)(nil)

// New returns a Server for cfg.
func New(cfg Config) *Server {
	exps := slices.Clone(cfg.Exports)
	// Longest first, so a mount path matches the innermost export.
	slices.SortStableFunc(exps, func(a, b *export.Export) int { return len(b.Path) - len(a.Path) })
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	return &Server{exports: exps, listed: slices.Clone(cfg.Exports), handles: cfg.Handles, log: log}
}

// Mounts returns the current mount list.
func (s *Server) Mounts() []Mount {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.mounts)
}

// ServeRPC implements oncrpc.Handler.
func (s *Server) ServeRPC(ctx context.Context, c *oncrpc.Call, reply *oncrpc.Writer) oncrpc.AcceptStat {
	switch c.Proc {
	case ProcNull:
		return oncrpc.Success
	case ProcMnt:
		return s.mnt(ctx, c, reply)
	case ProcDump:
		s.dump(reply)
		return oncrpc.Success
	case ProcUmnt:
		return s.umnt(c)
	case ProcUmntAll:
		s.umntAll(c)
		return oncrpc.Success
	case ProcExport:
		s.export(reply)
		return oncrpc.Success
	}
	return oncrpc.ProcUnavail
}

// dirpath reads a dirpath argument. A path longer than MNTPATHLEN but
// otherwise well formed comes back with tooLong set.
func dirpath(args []byte) (p string, tooLong bool, ok bool) {
	r := oncrpc.NewReader(args)
	b := r.Opaque(len(args))
	if r.Err() != nil {
		return "", false, false
	}
	if len(b) > MaxPathLen {
		return "", true, true
	}
	return string(b), false, true
}

func (s *Server) mnt(ctx context.Context, c *oncrpc.Call, reply *oncrpc.Writer) oncrpc.AcceptStat {
	p, tooLong, ok := dirpath(c.Args)
	if !ok {
		return oncrpc.GarbageArgs
	}
	if tooLong {
		reply.Uint32(uint32(ErrNameTooLong))
		return oncrpc.Success
	}
	h, st := s.lookup(c.Remote, p)
	if st != OK {
		s.log.InfoContext(ctx, "mount refused", "client", c.Remote.String(), "path", p, "status", st.String())
		reply.Uint32(uint32(st))
		return oncrpc.Success
	}
	s.remember(c.Remote.Addr(), p)
	s.log.InfoContext(ctx, "mount", "client", c.Remote.String(), "path", p)
	reply.Uint32(uint32(OK))
	reply.Opaque(h)
	// AUTH_SYS first (clients take the first flavor they support; BSD and
	// macOS refuse a list without it), AUTH_NONE for clients without one.
	reply.Uint32(2)
	reply.Uint32(oncrpc.AuthSys)
	reply.Uint32(oncrpc.AuthNone)
	return oncrpc.Success
}

// String names a status as RFC 1813 does.
func (st Status) String() string {
	switch st {
	case OK:
		return "MNT3_OK"
	case ErrPerm:
		return "MNT3ERR_PERM"
	case ErrNoEnt:
		return "MNT3ERR_NOENT"
	case ErrIO:
		return "MNT3ERR_IO"
	case ErrAcces:
		return "MNT3ERR_ACCES"
	case ErrNotDir:
		return "MNT3ERR_NOTDIR"
	case ErrInval:
		return "MNT3ERR_INVAL"
	case ErrNameTooLong:
		return "MNT3ERR_NAMETOOLONG"
	case ErrNotSupp:
		return "MNT3ERR_NOTSUPP"
	case ErrServerFault:
		return "MNT3ERR_SERVERFAULT"
	}
	return fmt.Sprintf("mountstat3(%d)", uint32(st))
}

// lookup finds the export of mount path p, checks the client and returns
// the handle of the folder.
func (s *Server) lookup(remote netip.AddrPort, p string) ([]byte, Status) {
	e, rel := s.match(p)
	if e == nil {
		return nil, ErrNoEnt
	}
	if !remote.IsValid() || !e.Allowed(remote.Addr()) {
		return nil, ErrAcces
	}
	rel, st := folder(e, rel)
	if st != OK {
		return nil, st
	}
	if s.handles == nil {
		return nil, ErrServerFault
	}
	h, err := s.handles.Handle(e, rel)
	if err != nil {
		return nil, statusOf(err)
	}
	if len(h) > MaxFHSize {
		return nil, ErrServerFault
	}
	return h, OK
}

// match returns the export whose Path is p or a parent of p, and the rest
// of p relative to it ("" for the export itself).
func (s *Server) match(p string) (*export.Export, string) {
	// "//export" and "export" mean "/export"; ".." cannot leave "/".
	p = path.Clean("/" + p)
	for _, e := range s.exports {
		if p == e.Path {
			return e, ""
		}
		if e.Path == "/" {
			return e, p[1:]
		}
		if rest, ok := strings.CutPrefix(p, e.Path+"/"); ok {
			return e, rest
		}
	}
	return nil, ""
}

// folder checks that rel is a folder inside e and returns its path with
// any final symlinks resolved (a handle names the folder, not a link).
func folder(e *export.Export, rel string) (string, Status) {
	if rel == "" {
		return "", OK
	}
	for range maxSymlinks {
		fi, err := e.Root.Lstat(rel)
		if err != nil {
			return "", statusOf(err)
		}
		if fi.IsDir() {
			return rel, OK
		}
		if fi.Mode()&fs.ModeSymlink == 0 {
			return "", ErrNotDir
		}
		target, err := e.Root.Readlink(rel)
		if err != nil {
			return "", statusOf(err)
		}
		if path.IsAbs(target) {
			return "", ErrNoEnt // os.Root never follows these
		}
		rel = path.Join(path.Dir(rel), target)
		if rel == ".." || strings.HasPrefix(rel, "../") {
			return "", ErrNoEnt
		}
		if rel == "." {
			return "", OK
		}
	}
	return "", ErrNoEnt // a symlink loop
}

func statusOf(err error) Status {
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return ErrNoEnt
	case errors.Is(err, fs.ErrPermission):
		return ErrAcces
	case errors.Is(err, syscall.ENOTDIR):
		return ErrNotDir
	case errors.Is(err, syscall.ELOOP), strings.Contains(err.Error(), "path escapes"):
		// A symlink on the way leads out of the export (os.Root's error
		// for that is not exported): there is nothing there to mount.
		return ErrNoEnt
	}
	return ErrIO
}

func (s *Server) remember(a netip.Addr, dir string) {
	m := Mount{Host: a.Unmap().String(), Dir: dir}
	s.mu.Lock()
	defer s.mu.Unlock()
	if slices.Contains(s.mounts, m) {
		return
	}
	if len(s.mounts) >= maxMounts {
		s.mounts = slices.Delete(s.mounts, 0, 1) // the oldest goes
	}
	s.mounts = append(s.mounts, m)
}

func (s *Server) umnt(c *oncrpc.Call) oncrpc.AcceptStat {
	p, tooLong, ok := dirpath(c.Args)
	if !ok || tooLong {
		return oncrpc.GarbageArgs
	}
	host := c.Remote.Addr().Unmap().String()
	s.mu.Lock()
	n := len(s.mounts)
	s.mounts = slices.DeleteFunc(s.mounts, func(m Mount) bool { return m.Host == host && m.Dir == p })
	removed := n != len(s.mounts)
	s.mu.Unlock()
	if removed {
		s.log.Info("unmount", "client", c.Remote.String(), "path", p)
	}
	return oncrpc.Success
}

func (s *Server) umntAll(c *oncrpc.Call) {
	host := c.Remote.Addr().Unmap().String()
	s.mu.Lock()
	n := len(s.mounts)
	s.mounts = slices.DeleteFunc(s.mounts, func(m Mount) bool { return m.Host == host })
	removed := n - len(s.mounts)
	s.mu.Unlock()
	if removed > 0 {
		s.log.Info("unmount all", "client", c.Remote.String(), "mounts", removed)
	}
}

// dump writes the mountlist: a linked list of (hostname, directory).
func (s *Server) dump(w *oncrpc.Writer) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, m := range s.mounts {
		w.Bool(true)
		w.String(m.Host)
		w.String(m.Dir)
	}
	w.Bool(false)
}

// export writes the exports list: each export path with its client
// networks as group names.
func (s *Server) export(w *oncrpc.Writer) {
	for _, e := range s.listed {
		w.Bool(true)
		w.String(e.Path)
		for _, c := range e.Clients {
			w.Bool(true)
			w.String(c.String())
		}
		w.Bool(false)
	}
	w.Bool(false)
}
