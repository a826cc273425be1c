// Package nfs3 serves the NFS version 3 program (RFC 1813) for filesrv.
//
// go-nfs serves the procedures it gets right (NULL, READLINK, FSSTAT,
// PATHCONF, and RENAME once this package has checked it); this package
// serves the rest itself: real attributes, persistent handles, AUTH_SYS
// identities, durable WRITE and COMMIT, EXCLUSIVE create, LINK, REMOVE
// and RMDIR, and READDIR(PLUS) with stable cookies.
//
// Every file operation is confined to its export: paths are opened
// through the export's os.Root, and changes are made with *at system
// calls on a directory opened that way and a single validated name
// component, never following a symlink.
package nfs3

import (
	"context"
	"log/slog"
	"os"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"example.com/appliance/filesrv/internal/export"
	"example.com/appliance/filesrv/internal/handles"
	"example.com/appliance/filesrv/internal/oncrpc"
)

// Program and version served.
const (
	Program = 100003
	Version = 3
)

// DefaultMaxIO is the largest READ and WRITE when Config.MaxIO is 0.
const DefaultMaxIO = 1 << 20

// DefaultMaxOpenFiles bounds the cache of open files when
// Config.MaxOpenFiles is 0.
const DefaultMaxOpenFiles = 256

// Forwarder passes a call to go-nfs and returns the reply's accept status
// and the procedure's results (the bytes after the accept status).
type Forwarder func(ctx context.Context, c *oncrpc.Call) (oncrpc.AcceptStat, []byte, error)

// Config configures a Server.
type Config struct {
	// Exports are the exports served.
	Exports []*export.Export
	// Handles maps file handles to paths and back.
	Handles *handles.Store
	// Forward passes NULL, READLINK, FSSTAT, PATHCONF and the checked
	// RENAME to go-nfs; nil serves them here.
	Forward Forwarder
	// Logger receives errors; nil discards.
	Logger *slog.Logger
	// Verifier is the write verifier; it must change on every start.
	Verifier [8]byte
	// MaxIO is the largest READ and WRITE, advertised by FSINFO.
	MaxIO int
	// MaxOpenFiles bounds the open files (and folders) kept between
	// calls; 0 means DefaultMaxOpenFiles.
	MaxOpenFiles int
}

// handleStore is what the server needs of *handles.Store; tests supply
// their own.
type handleStore interface {
	Handle(e *export.Export, path string) ([]byte, error)
	Resolve(h []byte) (*export.Export, string, error)
	Moved(e *export.Export, oldPath, newPath string)
	Removed(e *export.Export, path string)
}

// statStore is what a handleStore may also offer (*handles.Store does):
// resolving a handle with the attributes its check found, and a handle
// for a file just stat'ed, so neither stats the file again.
type statStore interface {
	ResolveStat(h []byte) (*export.Export, string, *unix.Statx_t, error)
	HandleStat(e *export.Export, path string, st *unix.Statx_t) ([]byte, error)
}

// Server serves NFSv3 calls. It implements oncrpc.Handler. It is safe
// for concurrent use: calls of one connection are served in parallel.
type Server struct {
	cfg  Config
	hs   handleStore
	ss   statStore // hs, when it is one; else nil
	log  *slog.Logger
	root bool // running as the superuser: chown what we create
	// euid and egid are the process's, the owner of what it creates.
	euid, egid uint32
	maxIO      int
	files      *fdCache
	dirs       *snapCache
	syncs      *dirSyncer
	// handles caches READDIRPLUS handles by file identity.
	handles handleCache
	// mutations counts the calls that changed something, once each
	// is over; readaheads are the next READDIRPLUS pages being statted.
	mutations  atomic.Uint64
	readaheads readaheads
}

var _ oncrpc.QuickHandler = (*Server)(nil)

// New returns a Server.
func New(cfg Config) *Server {
	var hs handleStore
	// A nil *handles.Store must not become a non-nil interface.
	if cfg.Handles != nil {
		hs = cfg.Handles
	}
	return newServer(cfg, hs)
}

func newServer(cfg Config, hs handleStore) *Server {
	s := &Server{
		cfg:   cfg,
		hs:    hs,
		log:   cfg.Logger,
		root:  os.Geteuid() == 0,
		euid:  uint32(os.Geteuid()),
		egid:  uint32(os.Getegid()),
		maxIO: cfg.MaxIO,
	}
	s.ss, _ = hs.(statStore)
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.maxIO <= 0 {
		s.maxIO = DefaultMaxIO
	}
	n := cfg.MaxOpenFiles
	if n <= 0 {
		n = DefaultMaxOpenFiles
	}
	s.files = newFDCache(n)
	s.dirs = newSnapCache(snapCacheSize)
	s.syncs = newDirSyncer()
	return s
}

// The procedures of RFC 1813.
const (
	procNull = iota
	procGetattr
	procSetattr
	procLookup
	procAccess
	procReadlink
	procRead
	procWrite
	procCreate
	procMkdir
	procSymlink
	procMknod
	procRemove
	procRmdir
	procRename
	procLink
	procReaddir
	procReaddirplus
	procFsstat
	procFsinfo
	procPathconf
	procCommit
)

// ServeRPC implements oncrpc.Handler.
func (s *Server) ServeRPC(ctx context.Context, c *oncrpc.Call, reply *oncrpc.Writer) oncrpc.AcceptStat {
	if n, ok := failWords[c.Proc]; ok && !s.clientAllowed(c) {
		// A handle is 16 guessable bytes: a client allowed on one export
		// must not use a handle of another export it may not mount.
		reply.Uint32(errAcces)
		for range n {
			reply.Uint32(0)
		}
		return oncrpc.Success
	}
	if mutating[c.Proc] {
		// After the change, so that a read-ahead begun before it
		// completed is not used (see readahead).
		defer s.mutations.Add(1)
	}
	switch c.Proc {
	case procNull:
		if s.cfg.Forward != nil {
			return s.forward(ctx, c, reply, nil)
		}
		return oncrpc.Success
	case procGetattr:
		return s.getattr(c, reply)
	case procSetattr:
		return s.setattr(c, reply)
	case procLookup:
		return s.lookup(c, reply)
	case procAccess:
		return s.access(c, reply)
	case procReadlink:
		if s.cfg.Forward != nil {
			return s.forward(ctx, c, reply, nil)
		}
		return s.readlink(c, reply)
	case procRead:
		return s.read(c, reply)
	case procWrite:
		return s.write(c, reply)
	case procCreate:
		return s.create(c, reply)
	case procMkdir:
		return s.mkdir(c, reply)
	case procSymlink:
		return s.symlink(c, reply)
	case procMknod:
		return s.mknod(c, reply)
	case procRemove:
		return s.remove(c, reply, false)
	case procRmdir:
		return s.remove(c, reply, true)
	case procRename:
		return s.rename(ctx, c, reply)
	case procLink:
		return s.link(c, reply)
	case procReaddir:
		return s.readdir(c, reply, false)
	case procReaddirplus:
		return s.readdir(c, reply, true)
	case procFsstat:
		if s.cfg.Forward != nil {
			return s.forward(ctx, c, reply, nil)
		}
		return s.fsstat(c, reply)
	case procFsinfo:
		return s.fsinfo(c, reply)
	case procPathconf:
		if s.cfg.Forward != nil {
			return s.forward(ctx, c, reply, nil)
		}
		return s.pathconf(c, reply)
	case procCommit:
		return s.commit(c, reply)
	}
	return oncrpc.ProcUnavail
}

// Quick implements oncrpc.QuickHandler: GETATTR, LOOKUP, ACCESS and
// FSINFO stat and look up names, READ reads at most MaxIO bytes, READDIR
// and READDIRPLUS read a folder (once per listing) and stat a reply's
// worth of entries; none syncs, changes or allocates anything on the
// disk.
func (s *Server) Quick(proc uint32) bool {
	switch proc {
	case procGetattr, procLookup, procAccess, procFsinfo, procRead, procReaddir, procReaddirplus:
		return true
	}
	return false
}

// forward passes c to go-nfs and copies its results into reply; after an
// NFS3_OK result it runs done.
func (s *Server) forward(ctx context.Context, c *oncrpc.Call, reply *oncrpc.Writer, done func()) oncrpc.AcceptStat {
	stat, res, err := s.cfg.Forward(ctx, c)
	if err != nil {
		s.log.Error("nfs3: forward to go-nfs", "proc", c.Proc, "err", err)
		return oncrpc.SystemErr
	}
	if stat != oncrpc.Success {
		return stat
	}
	s.putForwarded(reply, c, res)
	if done != nil && len(res) >= 4 && res[0]|res[1]|res[2]|res[3] == 0 {
		done()
	}
	return oncrpc.Success
}

// fattr3Len is the size of an encoded fattr3.
const fattr3Len = 84

// putForwarded writes go-nfs's results for c with the attributes this
// package sends everywhere else. go-nfs writes fsid 0 (the Linux client
// then sees its mounted root change file system and answers ESTALE), Go's
// mode bits (0x800001ed for a folder) and mtime as ctime and atime. So
// each post_op_attr is replaced by a fresh lstat of the object and each
// pre_op_attr dropped (go-nfs's pre-op ctime is its mtime). Results that
// do not parse are passed on as they are.
func (s *Server) putForwarded(w *oncrpc.Writer, c *oncrpc.Call, res []byte) {
	args := oncrpc.NewReader(c.Args)
	r := oncrpc.NewReader(res)
	start := w.Len()
	w.Uint32(r.Uint32()) // status
	switch c.Proc {
	case procNull:
		w.Truncate(start)
		w.Raw(res)
		return
	case procReadlink, procFsstat, procPathconf:
		fh := args.Opaque(fhMax)
		skipPostOp(r)
		s.putPostOpOf(w, fh)
	case procRemove, procRmdir:
		fh := args.Opaque(fhMax)
		skipWcc(r)
		w.Bool(false)
		s.putPostOpOf(w, fh)
	case procRename:
		from := args.Opaque(fhMax)
		args.Opaque(nameMax)
		to := args.Opaque(fhMax)
		for _, fh := range [][]byte{from, to} {
			skipWcc(r)
			w.Bool(false)
			s.putPostOpOf(w, fh)
		}
	}
	if r.Err() != nil || args.Err() != nil {
		w.Truncate(start)
		w.Raw(res)
		return
	}
	w.Raw(r.Rest())
}

// putPostOpOf writes the post_op_attr of the file behind handle fh.
func (s *Server) putPostOpOf(w *oncrpc.Writer, fh []byte) {
	if e := s.exportOf(fh); e != nil {
		// The call has just used the folder through its cached
		// descriptor, which is the inode the handle names: its
		// attributes need no path resolved again.
		if ent := s.files.get(string(fh)); ent != nil {
			st, err := fstat(ent.f)
			s.files.release(ent)
			if err == nil && st.Nlink > 0 {
				putPostOp(w, e, st)
				return
			}
		}
	}
	o, stat := s.resolve(fh)
	if stat != nfsOK {
		w.Bool(false)
		return
	}
	putPostOp(w, o.e, s.statOrNil(o))
}

// exportOf returns the export a handle names, or nil.
func (s *Server) exportOf(fh []byte) *export.Export {
	id, ok := handles.ExportID(fh)
	if !ok {
		return nil
	}
	for _, e := range s.cfg.Exports {
		if e.ID == id {
			return e
		}
	}
	return nil
}

func skipPostOp(r *oncrpc.Reader) {
	if r.Bool() {
		r.Fixed(fattr3Len)
	}
}

func skipWcc(r *oncrpc.Reader) {
	if r.Bool() {
		r.Fixed(24) // size, mtime, ctime
	}
	skipPostOp(r)
}

// Close closes cached open files after syncing nothing: data not yet
// committed stays unstable, as NFS allows.
func (s *Server) Close() error {
	s.readaheads.close()
	return s.files.closeAll()
}

// mutating is the set of procedures that may change a file's attributes
// or a folder's entries.
var mutating = map[uint32]bool{
	procSetattr: true, procWrite: true, procCreate: true, procMkdir: true, procSymlink: true,
	procMknod: true, procRemove: true, procRmdir: true, procRename: true, procLink: true, procCommit: true,
}

// failWords is, per procedure that takes a file handle first, the number
// of XDR words after the status in its failure result: absent post_op_attr
// (1) and wcc_data (2) are all "false".
var failWords = map[uint32]int{
	procGetattr: 0, procSetattr: 2, procLookup: 1, procAccess: 1, procReadlink: 1,
	procRead: 1, procWrite: 2, procCreate: 2, procMkdir: 2, procSymlink: 2, procMknod: 2,
	procRemove: 2, procRmdir: 2, procRename: 4, procLink: 3, procReaddir: 1,
	procReaddirplus: 1, procFsstat: 1, procFsinfo: 1, procPathconf: 1, procCommit: 2,
}

// clientAllowed reports whether the client of c may use the export that
// the call's first file handle names. Calls whose handle does not decode
// pass: the procedure answers them with BADHANDLE or GARBAGE_ARGS.
func (s *Server) clientAllowed(c *oncrpc.Call) bool {
	if !c.Remote.IsValid() {
		return true // no address (not a network call): nothing to check
	}
	h := oncrpc.NewReader(c.Args).Opaque(handles.Len)
	id, ok := handles.ExportID(h)
	if !ok {
		return true
	}
	for _, e := range s.cfg.Exports {
		if e.ID == id {
			return e.Allowed(c.Remote.Addr())
		}
	}
	return true
}
