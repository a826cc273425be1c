package nfs3

import (
	"container/list"
	"errors"
	"fmt"
	"os"
	"path"
	"strconv"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"example.com/appliance/filesrv/internal/export"
)

// Sync hooks, replaced in tests to count what reaches the disk.
var (
	syncFile = (*os.File).Sync
	syncDir  = (*os.File).Sync
)

// fdEntry is one cached open file or folder.
type fdEntry struct {
	key      string
	id       [2]uint64 // device and inode
	f        *os.File
	writable bool
	unkicked atomic.Int64 // bytes written since writeback was last started
	refs     int
	dead     bool // evicted or dropped: close once refs is 0
	elem     *list.Element
}

// writeBehind is how many bytes of UNSTABLE writes to a file the server
// lets pile up in the page cache before it starts writing them back. A
// client streaming a big file then finds most of it on disk already when
// it sends COMMIT, instead of waiting there for all of it: the disk works
// while the network does. Starting writeback promises nothing; COMMIT
// still fsyncs.
const writeBehind = 8 << 20

// wrote notes n bytes written to the entry's file and starts writeback of
// its dirty pages once writeBehind bytes have gathered.
func (e *fdEntry) wrote(n int) {
	if e.unkicked.Add(int64(n)) < writeBehind {
		return
	}
	e.unkicked.Store(0)
	// Whole file, start only: pages already under writeback are
	// skipped, and nothing is waited for but a full device queue.
	_ = unix.SyncFileRange(fdOf(e.f), 0, 0, unix.SYNC_FILE_RANGE_WRITE)
}

// fdCache keeps open files by file handle, so READ, WRITE and COMMIT
// do not walk and open a path each time. A handle names an inode, so a
// cached descriptor stays right across renames.
type fdCache struct {
	mu  sync.Mutex
	max int
	m   map[string]*fdEntry
	ids map[[2]uint64]*fdEntry // by device and inode, to drop removed files
	lru list.List              // front: most recent
}

func newFDCache(max int) *fdCache {
	return &fdCache{max: max, m: make(map[string]*fdEntry), ids: make(map[[2]uint64]*fdEntry)}
}

// get returns the entry for key with a reference held, or nil.
func (c *fdCache) get(key string) *fdEntry {
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.m[key]
	if e == nil {
		return nil
	}
	e.refs++
	c.lru.MoveToFront(e.elem)
	return e
}

// add caches f under key and returns its entry with a reference held.
// An entry already there is replaced (its file closed once unused).
func (c *fdCache) add(key string, f *os.File, st *unix.Stat_t, writable bool) *fdEntry {
	c.mu.Lock()
	defer c.mu.Unlock()
	if old := c.m[key]; old != nil {
		c.unlink(old)
	}
	e := &fdEntry{key: key, id: [2]uint64{st.Dev, st.Ino}, f: f, writable: writable, refs: 1}
	e.elem = c.lru.PushFront(e)
	c.m[key] = e
	c.ids[e.id] = e
	for c.lru.Len() > c.max {
		c.unlink(c.lru.Back().Value.(*fdEntry))
	}
	return e
}

// unlink removes e from the cache; c.mu is held.
func (c *fdCache) unlink(e *fdEntry) {
	if e.dead {
		return
	}
	e.dead = true
	c.lru.Remove(e.elem)
	delete(c.m, e.key)
	if c.ids[e.id] == e {
		delete(c.ids, e.id)
	}
	if e.refs == 0 {
		e.f.Close()
	}
}

// release drops a reference taken by get or add.
func (c *fdCache) release(e *fdEntry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e.refs--
	if e.dead && e.refs == 0 {
		e.f.Close()
	}
}

// drop forgets key (after REMOVE or RENAME over it).
func (c *fdCache) drop(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e := c.m[key]; e != nil {
		c.unlink(e)
	}
}

// dropFile forgets the file st (after REMOVE or RENAME over it), so its
// space is freed once the last name is gone.
func (c *fdCache) dropFile(st *unix.Stat_t) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e := c.ids[[2]uint64{st.Dev, st.Ino}]; e != nil {
		c.unlink(e)
	}
}

// closeAll closes every file not in use and marks the rest.
func (c *fdCache) closeAll() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, e := range c.m {
		c.unlink(e)
	}
	return nil
}

func fdOf(f *os.File) int { return int(f.Fd()) }

// childPath joins a folder path and a name ("." is the export root).
func childPath(dir, name string) string {
	if dir == "." || dir == "" {
		return name
	}
	return dir + "/" + name
}

// parentPath returns the folder of p; the export root is its own parent.
func parentPath(p string) string {
	if p == "." || p == "" {
		return "."
	}
	return path.Dir(p)
}

// openParent opens the folder holding p and returns it with p's last
// name, never following a symlink in that name; for the export root it
// returns the root itself and ".".
func openParent(e *export.Export, p string) (*os.File, string, error) {
	if p == "." || p == "" {
		f, err := e.Root.OpenFile(".", os.O_RDONLY|unix.O_DIRECTORY, 0)
		return f, ".", err
	}
	f, err := e.Root.OpenFile(path.Dir(p), os.O_RDONLY|unix.O_DIRECTORY, 0)
	return f, path.Base(p), err
}

// openat opens name in dir without following a symlink.
func openat(dir *os.File, name string, flags int, mode uint32) (*os.File, error) {
	fd, err := unix.Openat(fdOf(dir), name, flags|unix.O_NOFOLLOW|unix.O_CLOEXEC, mode)
	if err != nil {
		return nil, err
	}
	return os.NewFile(uintptr(fd), name), nil
}

// lstatPath returns the attributes of p without following a symlink.
func lstatPath(e *export.Export, p string) (*unix.Stat_t, error) {
	fi, err := e.Root.Lstat(p)
	if err != nil {
		return nil, err
	}
	st, ok := attrOf(fi)
	if !ok {
		return nil, fmt.Errorf("stat %s: no system attributes", p)
	}
	return st, nil
}

func fstat(f *os.File) (*unix.Stat_t, error) {
	var st unix.Stat_t
	if err := unix.Fstat(fdOf(f), &st); err != nil {
		return nil, err
	}
	return &st, nil
}

// statxFD stats the open file f, birth time included.
func statxFD(f *os.File, sx *unix.Statx_t) error {
	return unix.Statx(fdOf(f), "", unix.AT_EMPTY_PATH, unix.STATX_BASIC_STATS|unix.STATX_BTIME, sx)
}

func fstatat(dir *os.File, name string) (*unix.Stat_t, error) {
	var st unix.Stat_t
	if err := unix.Fstatat(fdOf(dir), name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return nil, err
	}
	return &st, nil
}

// errWrongType is returned when a handle names a file of another kind
// than the procedure needs; the caller picks the status.
var errWrongType = errors.New("wrong file type")

// openObj returns the open file or folder p (handle h) from the cache or
// opens it: folders read-only, regular files read-write where allowed.
// Only folders and regular files are opened, never a device or FIFO.
func (s *Server) openObj(e *export.Export, p string, h []byte, write bool) (*fdEntry, *unix.Stat_t, error) {
	key := string(h)
	if ent := s.files.get(key); ent != nil {
		if !write || ent.writable {
			st, err := fstat(ent.f)
			if err == nil {
				return ent, st, nil
			}
		}
		s.files.release(ent)
	}
	dir, name, err := openParent(e, p)
	if err != nil {
		return nil, nil, err
	}
	defer dir.Close()
	st, err := fstatat(dir, name)
	if err != nil {
		return nil, nil, err
	}
	var f *os.File
	writable := false
	switch {
	case isDir(st):
		f, err = openat(dir, name, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	case isReg(st):
		if !e.ReadOnly {
			f, err = openat(dir, name, unix.O_RDWR|unix.O_NONBLOCK, 0)
			writable = err == nil
		}
		if f == nil && !write {
			f, err = openat(dir, name, unix.O_RDONLY|unix.O_NONBLOCK, 0)
		}
	default:
		return nil, st, errWrongType
	}
	if f == nil && err == nil {
		err = unix.EROFS
	}
	if err != nil {
		return nil, st, err
	}
	st2, err := fstat(f)
	if err != nil || st2.Ino != st.Ino || st2.Dev != st.Dev {
		// Replaced between stat and open.
		f.Close()
		return nil, st, unix.ESTALE
	}
	return s.files.add(key, f, st2, writable), st2, nil
}

// chmodNoFollow sets the mode of name in dir; symlinks have no mode on
// Linux and are left alone. The file is pinned with O_PATH first, so a
// symlink swapped in meanwhile is never followed.
func chmodNoFollow(dir *os.File, name string, mode uint32) error {
	fd, err := unix.Openat(fdOf(dir), name, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return err
	}
	if isLnk(&st) {
		return nil
	}
	err = unix.Fchmodat(unix.AT_FDCWD, "/proc/self/fd/"+strconv.Itoa(fd), mode, 0)
	if errors.Is(err, unix.ENOENT) {
		// No /proc: fchmodat2 with AT_EMPTY_PATH (Linux 6.6+).
		err = unix.Fchmodat(fd, "", mode, unix.AT_EMPTY_PATH)
	}
	return err
}

// dirSyncer batches fsyncs of a folder: a caller whose change is already
// covered by a sync that started after it waits for that one instead of
// starting another (group commit).
type dirSyncer struct {
	mu sync.Mutex
	m  map[[2]uint64]*dirSync
}

type dirSync struct {
	cond     *sync.Cond
	requests uint64 // tickets handed out
	done     uint64 // highest ticket covered by a finished sync
	running  bool
	err      error // of the last sync
	users    int
}

func newDirSyncer() *dirSyncer { return &dirSyncer{m: make(map[[2]uint64]*dirSync)} }

// sync makes the entries of dir (with attributes st) durable.
func (d *dirSyncer) sync(dir *os.File, st *unix.Stat_t) error {
	key := [2]uint64{st.Dev, st.Ino}
	d.mu.Lock()
	ds := d.m[key]
	if ds == nil {
		ds = &dirSync{cond: sync.NewCond(&d.mu)}
		d.m[key] = ds
	}
	ds.users++
	ds.requests++
	ticket := ds.requests
	var err error
	for {
		if ds.done >= ticket {
			err = ds.err
			break
		}
		if !ds.running {
			ds.running = true
			target := ds.requests
			d.mu.Unlock()
			serr := syncDir(dir)
			d.mu.Lock()
			ds.running = false
			ds.done = target
			ds.err = serr
			ds.cond.Broadcast()
			continue
		}
		ds.cond.Wait()
	}
	ds.users--
	if ds.users == 0 {
		delete(d.m, key)
	}
	d.mu.Unlock()
	return err
}
