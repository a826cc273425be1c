// Package handles makes filesrv's NFS file handles persistent: a handle
// names a file by export, inode number and generation, so it survives a
// server restart, any number of files and the rename of a parent folder,
// and maps back to the same file (or to NFS3ERR_STALE once it is gone).
//
// A handle is 16 bytes: the export ID (uint32), the inode number (uint64)
// and a generation (uint32), all big-endian. The generation is the file's
// birth time folded into 32 bits (0 where the filesystem keeps none), so a
// handle of a deleted file does not come back to life when its inode
// number is reused.
//
// To turn a handle into a path, the Store keeps per export an index inode
// -> (parent inode, name), fed by Handle, Moved and Removed, and rebuilds a
// path by walking parents; renaming a folder updates one entry. The index
// is only a hint: every Resolve checks the path it finds (inode and
// generation), and when the index is wrong or missing (after a restart
// without a saved index, or after changes made beside NFS) the export is
// scanned once to rebuild it. The index is saved in the state folder on
// Close and every 30 seconds when it changed.
package handles

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"example.com/appliance/filesrv/internal/export"
	"golang.org/x/sys/unix"
)

// ExportID returns the export ID a handle names, without resolving it; ok
// is false when h is not one of our handles.
func ExportID(h []byte) (id uint32, ok bool) {
	if len(h) != Len {
		return 0, false
	}
	return binary.BigEndian.Uint32(h), true
}

// Len is the length of every handle: a multiple of 4 (go-nfs does not skip
// XDR padding after an opaque).
const Len = 16

// Errors from Resolve.
var (
	ErrStale     = errors.New("stale file handle")     // NFS3ERR_STALE
	ErrBadHandle = errors.New("malformed file handle") // NFS3ERR_BADHANDLE
)

// Tunables; variables so tests can shorten them.
var (
	// saveInterval is how often a changed index is saved.
	saveInterval = 30 * time.Second
	// missTTL is how long a handle that was not found even after a scan
	// is answered ErrStale without looking again.
	missTTL = 5 * time.Second
	// minScanGap is the least time between the end of one scan of an
	// export and the start of the next; the gap is also at least
	// scanGapFactor times the last scan's duration, so scans take at most
	// about a tenth of the time however many stale handles come in.
	minScanGap    = time.Second
	scanGapFactor = 10
	// afterSave, if set, is called after each periodic save (for tests).
	afterSave func(error)
)

// maxDepth bounds a path rebuilt from the index, so a corrupt index with
// a cycle cannot loop.
const maxDepth = 4096

// maxMisses bounds the memory of recent misses.
const maxMisses = 65536

// node is where an inode was last seen: its parent folder's inode and its
// name there.
type node struct {
	parent uint64
	name   string
}

// dirent keys the reverse index: a name in a folder.
type dirent struct {
	parent uint64
	name   string
}

// index is the state of one export.
type index struct {
	e       *export.Export
	rootDir *os.File // keeps rootFD open
	rootFD  int
	dev     uint64 // device of the root; the scan stays on it
	rootIno uint64
	rootGen uint32

	mu       sync.RWMutex
	nodes    map[uint64]node
	children map[dirent]uint64
	version  uint64 // bumped by every change of nodes
	saved    uint64 // version last saved
	scanning bool
	touched  map[uint64]struct{} // inodes changed while scanning

	scanMu       sync.Mutex   // one scan at a time
	scans        atomic.Int64 // completed scans
	lastScanEnd  time.Time    // under scanMu
	lastScanTook time.Duration
}

// Store maps handles to paths and back. Safe for concurrent use.
type Store struct {
	log  *slog.Logger
	dir  string
	exps map[uint32]*index

	missMu sync.Mutex
	misses map[[Len]byte]time.Time

	saveMu   sync.Mutex // one save at a time
	stop     chan struct{}
	done     chan struct{}
	closeErr error
	once     sync.Once
}

// Option configures a Store.
type Option func(*Store)

// WithLogger sets the logger for scans and failed saves (default
// slog.Default()).
func WithLogger(l *slog.Logger) Option {
	return func(s *Store) { s.log = l }
}

// Open loads the index kept in stateDir (created if missing) for exps.
// A missing, old or damaged index file is not an error: handles are
// verified on every Resolve and the export is scanned when needed.
func Open(stateDir string, exps []*export.Export, opts ...Option) (*Store, error) {
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		return nil, fmt.Errorf("handles: create state folder: %w", err)
	}
	s := &Store{
		dir:    stateDir,
		exps:   make(map[uint32]*index, len(exps)),
		misses: make(map[[Len]byte]time.Time),
		stop:   make(chan struct{}),
		done:   make(chan struct{}),
		log:    slog.Default(),
	}
	for _, o := range opts {
		o(s)
	}
	for _, e := range exps {
		if _, dup := s.exps[e.ID]; dup {
			s.closeFiles()
			return nil, fmt.Errorf("handles: exports share ID %#x (%s)", e.ID, e.Path)
		}
		ix, err := openIndex(e)
		if err != nil {
			s.closeFiles()
			return nil, fmt.Errorf("handles: export %s: %w", e.Path, err)
		}
		s.exps[e.ID] = ix
		if err := ix.load(s.file(ix)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			s.log.Warn("handles: ignoring saved index", "export", e.Path, "err", err)
		}
	}
	go s.saveLoop()
	return s, nil
}

func openIndex(e *export.Export) (*index, error) {
	d, err := e.Root.Open(".")
	if err != nil {
		return nil, fmt.Errorf("open root: %w", err)
	}
	ix := &index{
		e:        e,
		rootDir:  d,
		rootFD:   int(d.Fd()),
		nodes:    make(map[uint64]node),
		children: make(map[dirent]uint64),
	}
	var st unix.Statx_t
	if err := unix.Statx(ix.rootFD, "", unix.AT_EMPTY_PATH, statxMask, &st); err != nil {
		d.Close()
		return nil, fmt.Errorf("stat root: %w", err)
	}
	ix.dev = unix.Mkdev(st.Dev_major, st.Dev_minor)
	ix.rootIno = st.Ino
	ix.rootGen = generation(&st)
	return ix, nil
}

func (s *Store) file(ix *index) string {
	return path.Join(s.dir, fmt.Sprintf("handles-%08x.idx", ix.e.ID))
}

func (s *Store) closeFiles() {
	for _, ix := range s.exps {
		ix.rootDir.Close()
	}
}

// Close saves the index and releases the Store. Handles and paths it
// returned stay valid for a Store opened later on the same state folder.
func (s *Store) Close() error {
	s.once.Do(func() {
		close(s.stop)
		<-s.done
		s.closeErr = s.save()
		s.closeFiles()
	})
	return s.closeErr
}

func (s *Store) saveLoop() {
	defer close(s.done)
	t := time.NewTicker(saveInterval)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			err := s.save()
			if err != nil {
				s.log.Warn("handles: saving index", "err", err)
			}
			if afterSave != nil {
				afterSave(err)
			}
		}
	}
}

// save writes every changed index.
func (s *Store) save() error {
	s.saveMu.Lock()
	defer s.saveMu.Unlock()
	var errs []error
	for _, ix := range s.exps {
		if err := ix.save(s.file(ix)); err != nil {
			errs = append(errs, fmt.Errorf("handles: save index of %s: %w", ix.e.Path, err))
		}
	}
	return errors.Join(errs...)
}

// Handle returns the handle of path (slash-separated, relative to the
// export root; "" or "." is the root) and remembers where it is.
func (s *Store) Handle(e *export.Export, p string) ([]byte, error) {
	ix, err := s.index(e)
	if err != nil {
		return nil, err
	}
	name, err := clean(p)
	if err != nil {
		return nil, err
	}
	ino, gen, err := ix.record(name)
	if err != nil {
		return nil, fmt.Errorf("handle of %s: %w", p, err)
	}
	return s.handle(e, ino, gen), nil
}

// Resolve returns the export and current path of a handle ("" for the
// export root). It fails with ErrBadHandle for a handle that is not one
// of ours and with ErrStale for a file that no longer exists.
func (s *Store) Resolve(h []byte) (*export.Export, string, error) {
	e, p, _, err := s.resolve(h, false)
	return e, p, err
}

// ResolveStat is Resolve that also returns the file's attributes (not
// following a final symlink), as the check of its path found them: a
// caller that needs them stats nothing again.
func (s *Store) ResolveStat(h []byte) (*export.Export, string, *unix.Statx_t, error) {
	return s.resolve(h, true)
}

func (s *Store) resolve(h []byte, wantStat bool) (*export.Export, string, *unix.Statx_t, error) {
	if len(h) != Len {
		return nil, "", nil, ErrBadHandle
	}
	ix := s.exps[binary.BigEndian.Uint32(h)]
	if ix == nil {
		return nil, "", nil, ErrBadHandle
	}
	ino := binary.BigEndian.Uint64(h[4:])
	gen := binary.BigEndian.Uint32(h[12:])
	if ino == ix.rootIno {
		if gen != ix.rootGen {
			return nil, "", nil, ErrStale
		}
		if !wantStat {
			return ix.e, "", nil, nil
		}
		st, err := ix.stat(".")
		if err != nil {
			return nil, "", nil, err
		}
		return ix.e, "", &st, nil
	}
	scans := ix.scans.Load()
	p, st, err := ix.find(ino, gen)
	if err == nil {
		return ix.e, p, st, nil
	}
	if errors.Is(err, ErrStale) {
		return nil, "", nil, ErrStale
	}
	// The index does not know the file or knows it wrong: scan, unless
	// this handle was looked for in vain a moment ago.
	key := [Len]byte(h)
	if s.missedRecently(key) {
		return nil, "", nil, ErrStale
	}
	if err := ix.rescan(scans, s.log); err != nil {
		s.log.Warn("handles: scan failed", "export", ix.e.Path, "err", err)
	}
	p, st, err = ix.find(ino, gen)
	if err != nil {
		s.miss(key)
		return nil, "", nil, ErrStale
	}
	return ix.e, p, st, nil
}

// HandleStat is Handle for a caller that has just stat'ed path (with
// unix.Statx, beneath the export root, not following a final symlink,
// asking for at least STATX_INO and STATX_BTIME): it records st instead
// of stat'ing path again.
func (s *Store) HandleStat(e *export.Export, p string, st *unix.Statx_t) ([]byte, error) {
	ix, err := s.index(e)
	if err != nil {
		return nil, err
	}
	name, err := clean(p)
	if err != nil {
		return nil, err
	}
	ino, gen, err := ix.recordStat(name, st)
	if err != nil {
		return nil, fmt.Errorf("handle of %s: %w", p, err)
	}
	return s.handle(e, ino, gen), nil
}

func (s *Store) handle(e *export.Export, ino uint64, gen uint32) []byte {
	h := make([]byte, Len)
	binary.BigEndian.PutUint32(h[0:], e.ID)
	binary.BigEndian.PutUint64(h[4:], ino)
	binary.BigEndian.PutUint32(h[12:], gen)
	s.missMu.Lock()
	if len(s.misses) > 0 {
		delete(s.misses, [Len]byte(h))
	}
	s.missMu.Unlock()
	return h
}

// Moved records a rename, so handles under oldPath resolve under newPath.
func (s *Store) Moved(e *export.Export, oldPath, newPath string) {
	ix, err := s.index(e)
	if err != nil {
		return
	}
	oldName, err1 := clean(oldPath)
	newName, err2 := clean(newPath)
	if err1 != nil || err2 != nil || oldName == "." || newName == "." {
		return
	}
	ix.forget(newName) // a replaced destination is gone
	ix.forget(oldName)
	// Recording the new name looks at what is really there now; a failure
	// only leaves the index incomplete, which Resolve repairs.
	_, _, _ = ix.record(newName)
}

// Removed records that path no longer exists (its handle may still be
// valid through another hard link).
func (s *Store) Removed(e *export.Export, p string) {
	ix, err := s.index(e)
	if err != nil {
		return
	}
	name, err := clean(p)
	if err != nil || name == "." {
		return
	}
	ix.forget(name)
}

func (s *Store) index(e *export.Export) (*index, error) {
	ix := s.exps[e.ID]
	if ix == nil || ix.e != e {
		return nil, fmt.Errorf("handles: unknown export %s", e.Path)
	}
	return ix, nil
}

func (s *Store) missedRecently(key [Len]byte) bool {
	s.missMu.Lock()
	defer s.missMu.Unlock()
	t, ok := s.misses[key]
	return ok && time.Since(t) < missTTL
}

func (s *Store) miss(key [Len]byte) {
	s.missMu.Lock()
	defer s.missMu.Unlock()
	if len(s.misses) >= maxMisses {
		now := time.Now()
		for k, t := range s.misses {
			if now.Sub(t) >= missTTL {
				delete(s.misses, k)
			}
		}
		if len(s.misses) >= maxMisses {
			clear(s.misses)
		}
	}
	s.misses[key] = time.Now()
}

// clean turns a handle path into a name relative to the root ("." for the
// root); a path climbing out of it is refused.
func clean(p string) (string, error) {
	name := path.Clean(strings.TrimLeft(p, "/"))
	if name == ".." || strings.HasPrefix(name, "../") {
		return "", fmt.Errorf("handles: path %q leaves the export", p)
	}
	return name, nil
}

// find rebuilds the path of ino from the index and checks it, returning
// the attributes found: ErrStale if
// the inode lives there with another generation (it was reused),
// errNotFound if the index does not know it or knows it wrong.
func (ix *index) find(ino uint64, gen uint32) (string, *unix.Statx_t, error) {
	p, ok := ix.path(ino)
	if !ok {
		return "", nil, errNotFound
	}
	st, err := ix.stat(p)
	if err != nil || st.Ino != ino || unix.Mkdev(st.Dev_major, st.Dev_minor) != ix.dev {
		return "", nil, errNotFound
	}
	if generation(&st) != gen {
		return "", nil, ErrStale
	}
	return p, &st, nil
}

var (
	errNotFound = errors.New("not in index")
	errOtherFS  = errors.New("on another filesystem mounted inside the export")
)

// path rebuilds the path of ino by walking parents up to the root.
func (ix *index) path(ino uint64) (string, bool) {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	var names [32]string
	parts := names[:0]
	size := 0
	for ino != ix.rootIno {
		n, ok := ix.nodes[ino]
		if !ok || len(parts) >= maxDepth {
			return "", false
		}
		parts = append(parts, n.name)
		size += len(n.name) + 1
		ino = n.parent
	}
	if len(parts) == 1 {
		return parts[0], true
	}
	var b strings.Builder
	b.Grow(size)
	for i := len(parts) - 1; i >= 0; i-- {
		b.WriteString(parts[i])
		if i > 0 {
			b.WriteByte('/')
		}
	}
	return b.String(), true
}

// record stats name and the folders above it that the index does not know
// and records them; it returns name's inode number and generation.
func (ix *index) record(name string) (uint64, uint32, error) {
	st, err := ix.stat(name)
	if err != nil {
		return 0, 0, err
	}
	return ix.recordStat(name, &st)
}

// recordStat is record with name's attributes known.
func (ix *index) recordStat(name string, st *unix.Statx_t) (uint64, uint32, error) {
	if unix.Mkdev(st.Dev_major, st.Dev_minor) != ix.dev {
		// Inode numbers are unique only within one filesystem: files of
		// one mounted inside the export get no handle.
		return 0, 0, errOtherFS
	}
	if name == "." {
		return st.Ino, generation(st), nil
	}
	dir, base := path.Split(name)
	parent, err := ix.dirIno(strings.TrimSuffix(dir, "/"))
	if err != nil {
		return 0, 0, err
	}
	ix.set(st.Ino, parent, base)
	return st.Ino, generation(st), nil
}

// dirIno returns the inode of folder dir ("" for the root), from the index
// where it knows it, else by stat'ing and recording it.
func (ix *index) dirIno(dir string) (uint64, error) {
	if dir == "" {
		return ix.rootIno, nil
	}
	ino := ix.rootIno
	ix.mu.RLock()
	rest := dir
	known := true
	for rest != "" {
		var comp string
		comp, rest, _ = strings.Cut(rest, "/")
		next, ok := ix.children[dirent{ino, comp}]
		if !ok {
			known = false
			break
		}
		ino = next
	}
	ix.mu.RUnlock()
	if known {
		return ino, nil
	}
	ino, _, err := ix.record(dir)
	return ino, err
}

// set records that ino is called name in folder parent.
func (ix *index) set(ino, parent uint64, name string) {
	ix.mu.RLock()
	old, ok := ix.nodes[ino]
	ix.mu.RUnlock()
	if ok && old.parent == parent && old.name == name {
		return // the common case: nothing to write
	}
	ix.mu.Lock()
	defer ix.mu.Unlock()
	if old, ok := ix.nodes[ino]; ok {
		if old.parent == parent && old.name == name {
			return
		}
		if ix.children[dirent(old)] == ino {
			delete(ix.children, dirent(old))
		}
	}
	k := dirent{parent, name}
	if prev, ok := ix.children[k]; ok && prev != ino {
		delete(ix.nodes, prev) // replaced
		ix.touch(prev)
	}
	ix.nodes[ino] = node{parent, name}
	ix.children[k] = ino
	ix.touch(ino)
}

// forget drops the entry for name, if the index has one.
func (ix *index) forget(name string) {
	dir, base := path.Split(name)
	ix.mu.Lock()
	defer ix.mu.Unlock()
	parent := ix.rootIno
	for rest := strings.TrimSuffix(dir, "/"); rest != ""; {
		var comp string
		comp, rest, _ = strings.Cut(rest, "/")
		next, ok := ix.children[dirent{parent, comp}]
		if !ok {
			return
		}
		parent = next
	}
	k := dirent{parent, base}
	ino, ok := ix.children[k]
	if !ok {
		return
	}
	delete(ix.children, k)
	if dirent(ix.nodes[ino]) == k {
		delete(ix.nodes, ino)
	}
	ix.touch(ino)
}

// touch marks a change; called with mu held.
func (ix *index) touch(ino uint64) {
	ix.version++
	if ix.scanning {
		ix.touched[ino] = struct{}{}
	}
}

// rescan scans the export unless a scan completed since the caller's
// lookup (seen = ix.scans then) or the last scan ended too recently.
func (ix *index) rescan(seen int64, log *slog.Logger) error {
	ix.scanMu.Lock()
	defer ix.scanMu.Unlock()
	if ix.scans.Load() != seen {
		return nil // someone else just scanned: the caller looks again
	}
	gap := max(minScanGap, time.Duration(scanGapFactor)*ix.lastScanTook)
	if !ix.lastScanEnd.IsZero() && time.Since(ix.lastScanEnd) < gap {
		return nil
	}
	start := time.Now()
	err := ix.scan()
	ix.lastScanEnd = time.Now()
	ix.lastScanTook = ix.lastScanEnd.Sub(start)
	ix.scans.Add(1)
	log.Info("handles: scanned export", "export", ix.e.Path, "files", ix.size(), "took", ix.lastScanTook, "err", err)
	return err
}

func (ix *index) size() int {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	return len(ix.nodes)
}

// scan walks the whole export breadth-first and replaces the index with
// what it finds; entries changed by Handle, Moved or Removed during the
// walk keep their newer value. Called with scanMu held.
func (ix *index) scan() error {
	ix.mu.Lock()
	ix.scanning = true
	ix.touched = make(map[uint64]struct{})
	ix.mu.Unlock()

	nodes := make(map[uint64]node, len(ix.nodes))
	err := ix.walk(func(ino, parent uint64, name string) {
		nodes[ino] = node{parent, name}
	})

	ix.mu.Lock()
	defer ix.mu.Unlock()
	for ino := range ix.touched {
		if n, ok := ix.nodes[ino]; ok {
			nodes[ino] = n
		} else {
			delete(nodes, ino)
		}
	}
	ix.scanning = false
	ix.touched = nil
	children := make(map[dirent]uint64, len(nodes))
	for ino, n := range nodes {
		children[dirent(n)] = ino
	}
	ix.nodes = nodes
	ix.children = children
	ix.version++
	return err
}

// walk calls fn for every entry under the root, folders first level by
// level. It does not leave the root's filesystem and does not follow
// symlinks. An unreadable folder is skipped; its error is returned at the
// end.
func (ix *index) walk(fn func(ino, parent uint64, name string)) error {
	type dir struct {
		ino  uint64
		path string
	}
	queue := []dir{{ix.rootIno, "."}}
	buf := make([]byte, 64<<10)
	var firstErr error
	for len(queue) > 0 {
		d := queue[0]
		queue = queue[1:]
		fd, err := ix.openDir(d.path)
		if errors.Is(err, unix.EXDEV) {
			continue // a mount point: another filesystem's inode numbers
		}
		if err != nil {
			if firstErr == nil {
				firstErr = fmt.Errorf("open %s: %w", d.path, err)
			}
			continue
		}
		err = readDir(fd, buf, func(ino uint64, typ uint8, name string) {
			fn(ino, d.ino, name)
			if typ == unix.DT_DIR {
				queue = append(queue, dir{ino, path.Join(d.path, name)})
			}
		})
		unix.Close(fd)
		if err != nil && firstErr == nil {
			firstErr = fmt.Errorf("read %s: %w", d.path, err)
		}
	}
	return firstErr
}

// readDir calls fn for each entry of the open folder fd except "." and
// "..". Entries of unknown type are lstat'ed.
func readDir(fd int, buf []byte, fn func(ino uint64, typ uint8, name string)) error {
	for {
		n, err := unix.Getdents(fd, buf)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		if n <= 0 {
			return nil
		}
		b := buf[:n]
		for len(b) >= 19 {
			// struct linux_dirent64: ino u64, off s64, reclen u16, type u8, name.
			ino := binary.NativeEndian.Uint64(b[0:])
			reclen := int(binary.NativeEndian.Uint16(b[16:]))
			if reclen < 19 || reclen > len(b) {
				return errors.New("bad directory entry")
			}
			typ := b[18]
			nameb := b[19:reclen]
			if i := indexByte(nameb, 0); i >= 0 {
				nameb = nameb[:i]
			}
			b = b[reclen:]
			name := string(nameb)
			if name == "." || name == ".." {
				continue
			}
			if typ == unix.DT_UNKNOWN {
				var st unix.Stat_t
				if unix.Fstatat(fd, name, &st, unix.AT_SYMLINK_NOFOLLOW) == nil && st.Mode&unix.S_IFMT == unix.S_IFDIR {
					typ = unix.DT_DIR
				}
			}
			fn(ino, typ, name)
		}
	}
}

func indexByte(b []byte, c byte) int {
	for i, x := range b {
		if x == c {
			return i
		}
	}
	return -1
}

// statxMask asks for every attribute NFS reports: ResolveStat's callers
// use them (statx fills the basic ones at no extra cost).
const statxMask = unix.STATX_BASIC_STATS | unix.STATX_BTIME

// stat returns the statx of name (not following a final symlink), resolved
// beneath the export root by the kernel.
func (ix *index) stat(name string) (unix.Statx_t, error) {
	var st unix.Statx_t
	if name == "." {
		err := unix.Statx(ix.rootFD, "", unix.AT_EMPTY_PATH, statxMask, &st)
		return st, err
	}
	dir, base := path.Split(name)
	if dir == "" {
		// A single component cannot climb out: no need to open a folder.
		err := unix.Statx(ix.rootFD, base, unix.AT_SYMLINK_NOFOLLOW, statxMask, &st)
		return st, err
	}
	fd, err := ix.openPath(strings.TrimSuffix(dir, "/"))
	if err != nil {
		return st, err
	}
	defer unix.Close(fd)
	err = unix.Statx(fd, base, unix.AT_SYMLINK_NOFOLLOW, statxMask, &st)
	return st, err
}

// openPath opens folder dir beneath the root with O_PATH, following
// symlinks that stay inside it (as os.Root does).
func (ix *index) openPath(dir string) (int, error) {
	return ix.openat2(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, unix.RESOLVE_BENEATH|unix.RESOLVE_NO_MAGICLINKS)
}

// openDir opens folder dir beneath the root for reading, following no
// symlink and crossing no mount point (the scan's inode numbers must all
// belong to the root's filesystem).
func (ix *index) openDir(dir string) (int, error) {
	return ix.openat2(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC,
		unix.RESOLVE_BENEATH|unix.RESOLVE_NO_SYMLINKS|unix.RESOLVE_NO_XDEV|unix.RESOLVE_NO_MAGICLINKS)
}

var noOpenat2 atomic.Bool

func (ix *index) openat2(name string, flags uint64, resolve uint64) (int, error) {
	if !noOpenat2.Load() {
		for {
			fd, err := unix.Openat2(ix.rootFD, name, &unix.OpenHow{Flags: flags, Resolve: resolve})
			if err == unix.EINTR || err == unix.EAGAIN {
				continue
			}
			if err != unix.ENOSYS {
				return fd, err
			}
			noOpenat2.Store(true)
			break
		}
	}
	// Kernels before 5.6: let os.Root resolve the folder, keep a copy of
	// its descriptor.
	f, err := ix.e.Root.Open(name)
	if err != nil {
		return -1, err
	}
	defer f.Close()
	rc, err := f.SyscallConn()
	if err != nil {
		return -1, err
	}
	fd := -1
	cerr := rc.Control(func(u uintptr) { fd, err = unix.FcntlInt(u, unix.F_DUPFD_CLOEXEC, 0) })
	if cerr != nil {
		return -1, cerr
	}
	return fd, err
}

// generation folds a birth time into 32 bits; 0 when the filesystem does
// not report one.
func generation(st *unix.Statx_t) uint32 {
	if st.Mask&unix.STATX_BTIME == 0 {
		return 0
	}
	h := uint64(st.Btime.Sec)*1_000_000_007 + uint64(st.Btime.Nsec)
	h ^= h >> 29
	h *= 0xbf58476d1ce4e5b9
	h ^= h >> 32
	return uint32(h)
}
