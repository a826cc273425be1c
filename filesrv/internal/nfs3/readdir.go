package nfs3

import (
	"container/list"
	"encoding/binary"
	"errors"
	"os"
	"slices"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"example.com/appliance/filesrv/internal/oncrpc"
)

// READDIR cookies are not positions but a 63-bit hash of the entry's
// name, and a listing is served in hash order from a snapshot of the
// folder. A client resumes after any cookie by hash, so a listing stays
// complete and free of duplicates while entries are added, and even if
// its snapshot is evicted or replaced by a newer one: entries added
// meanwhile may or may not be seen, as POSIX allows. The cookie
// verifier is always zero, which every client accepts, and no cookie is
// ever refused with NFS3ERR_BAD_COOKIE. Cookies 1 and 2 are "." and "..".
const (
	cookieDot    = 1
	cookieDotDot = 2
	firstCookie  = 3
)

// snapCacheSize is how many folder snapshots are kept.
const snapCacheSize = 64

// maxDirReply bounds a READDIR reply whatever the client asks.
const maxDirReply = 1 << 20

type dirEntry struct {
	cookie uint64
	ino    uint64
	name   string
}

// snapshot is one reading of a folder, sorted by cookie. Immutable.
type snapshot struct {
	entries []dirEntry
	// The folder's times when it was read, and when that was: a new
	// listing may use the snapshot again while both times are unchanged
	// (see current).
	mtime, ctime unix.Timespec
	taken        time.Time
}

// racyWindow is how long after a folder's last change a snapshot must
// have been read to serve a new listing later. A change bumps the
// folder's mtime and ctime, but from a clock that ticks in milliseconds
// (in seconds, or two, on some filesystems): a second change within the
// tick of the first leaves them as they were. A snapshot read a whole
// window after the last change has seen it, and any later change moves
// the times (git treats its index the same way).
const racyWindow = 2 * time.Second

// current reports whether the snapshot still shows the folder whose
// attributes are st.
func (sn *snapshot) current(st *unix.Stat_t) bool {
	if st.Mtim != sn.mtime || st.Ctim != sn.ctime {
		return false
	}
	last := time.Unix(st.Mtim.Unix())
	if c := time.Unix(st.Ctim.Unix()); c.After(last) {
		last = c
	}
	return sn.taken.Sub(last) >= racyWindow
}

type snapKey struct {
	export   uint32
	dev, ino uint64
}

// snapCache keeps the snapshots of the folders being listed, so a long
// listing reads its folder once, not once per reply.
type snapCache struct {
	mu  sync.Mutex
	max int
	m   map[snapKey]*list.Element
	lru list.List
}

type snapItem struct {
	key  snapKey
	snap *snapshot
}

func newSnapCache(max int) *snapCache {
	return &snapCache{max: max, m: make(map[snapKey]*list.Element)}
}

func (c *snapCache) get(k snapKey) *snapshot {
	c.mu.Lock()
	defer c.mu.Unlock()
	el := c.m[k]
	if el == nil {
		return nil
	}
	c.lru.MoveToFront(el)
	return el.Value.(*snapItem).snap
}

func (c *snapCache) put(k snapKey, s *snapshot) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el := c.m[k]; el != nil {
		el.Value.(*snapItem).snap = s
		c.lru.MoveToFront(el)
		return
	}
	c.m[k] = c.lru.PushFront(&snapItem{key: k, snap: s})
	for c.lru.Len() > c.max {
		el := c.lru.Back()
		c.lru.Remove(el)
		delete(c.m, el.Value.(*snapItem).key)
	}
}

// nameCookie is the FNV-1a hash of name folded into [firstCookie, 2^63).
func nameCookie(name string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(name); i++ {
		h ^= uint64(name[i])
		h *= 1099511628211
	}
	h &= 1<<63 - 1
	if h < firstCookie {
		h += firstCookie
	}
	return h
}

// readSnapshot reads the folder open as fd from its start, through a
// descriptor of its own so that the shared one's offset is untouched.
func readSnapshot(fd int) (*snapshot, error) {
	dfd, err := unix.Openat(fd, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	defer unix.Close(dfd)
	buf := make([]byte, 64<<10)
	var ents []dirEntry
	for {
		n, err := unix.Getdents(dfd, buf)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if n <= 0 {
			break
		}
		for b := buf[:n]; len(b) >= 19; {
			reclen := int(binary.NativeEndian.Uint16(b[16:]))
			if reclen < 19 || reclen > len(b) {
				return nil, unix.EIO
			}
			ino := binary.NativeEndian.Uint64(b)
			raw := b[19:reclen]
			if i := indexNUL(raw); i >= 0 {
				raw = raw[:i]
			}
			b = b[reclen:]
			name := string(raw)
			if name == "." || name == ".." || ino == 0 {
				continue
			}
			ents = append(ents, dirEntry{cookie: nameCookie(name), ino: ino, name: name})
		}
	}
	slices.SortFunc(ents, func(a, b dirEntry) int {
		switch {
		case a.cookie < b.cookie:
			return -1
		case a.cookie > b.cookie:
			return 1
		}
		if a.name < b.name {
			return -1
		}
		return 1
	})
	// A hash collision (about never) gets the next free cookie.
	for i := 1; i < len(ents); i++ {
		if ents[i].cookie <= ents[i-1].cookie {
			ents[i].cookie = ents[i-1].cookie + 1
		}
	}
	return &snapshot{entries: ents}, nil
}

func indexNUL(b []byte) int {
	for i, c := range b {
		if c == 0 {
			return i
		}
	}
	return -1
}

// entrySize is the encoded size of an entry3 (entryplus3 adds
// attributes and handle), and of the name, fileid and cookie counted
// against dircount.
func entrySize(name string) int {
	return 4 + 8 + 4 + (len(name)+3)&^3 + 8
}

func (s *Server) readdir(c *oncrpc.Call, w *oncrpc.Writer, plus bool) oncrpc.AcceptStat {
	r := oncrpc.NewReader(c.Args)
	h := r.Opaque(fhMax)
	cookie := r.Uint64()
	r.Fixed(8) // cookieverf: ours is always zero
	dircount := r.Uint32()
	maxcount := dircount
	if plus {
		maxcount = r.Uint32()
	}
	if r.Err() != nil {
		return oncrpc.GarbageArgs
	}
	o, stat := s.resolve(h)
	if stat != nfsOK {
		w.Uint32(stat)
		putPostOp(w, nil, nil)
		return oncrpc.Success
	}
	ent, st, err := s.open(o, false)
	if err != nil {
		w.Uint32(statusOf(err))
		if errors.Is(err, errWrongType) {
			w.Truncate(w.Len() - 4)
			w.Uint32(errNotDir)
		}
		putPostOp(w, o.e, st)
		return oncrpc.Success
	}
	defer s.files.release(ent)
	if !isDir(st) {
		w.Uint32(errNotDir)
		putPostOp(w, o.e, st)
		return oncrpc.Success
	}
	if !mayAccess(o.e.Map(c.Sys), st, permR) {
		w.Uint32(errAcces)
		putPostOp(w, o.e, st)
		return oncrpc.Success
	}
	key := snapKey{export: o.e.ID, dev: st.Dev, ino: st.Ino}
	snap := s.dirs.get(key)
	if snap == nil || cookie == 0 && !snap.current(st) {
		// A new listing reads the folder afresh unless nothing changed
		// since the last reading; a resumed one keeps its snapshot, so
		// a huge folder is read once per listing at most.
		taken := time.Now()
		if snap, err = readSnapshot(fdOf(ent.f)); err != nil {
			w.Uint32(statusOf(err))
			putPostOp(w, o.e, st)
			return oncrpc.Success
		}
		snap.mtime, snap.ctime, snap.taken = st.Mtim, st.Ctim, taken
		s.dirs.put(key, snap)
	}
	limit := int(min(maxcount, maxDirReply))
	dirLimit := int(min(dircount, maxDirReply))
	if !plus {
		dirLimit = limit
	}
	start := w.Len()
	w.Uint32(nfsOK)
	putPostOp(w, o.e, st)
	w.Fixed(make([]byte, 8)) // cookieverf
	const tail = 8           // end of list and eof
	n, dirUsed := 0, 0
	full := false
	last := -1 // index in snap of the last entry in the reply
	// emit writes one entry if it fits; it reports false when the reply
	// is full.
	emit := func(name string, ino, ck uint64, est *unix.Stat_t, eh []byte) bool {
		size := entrySize(name)
		if plus {
			size += 4 + 4
			if est != nil {
				size += fattrBytes
			}
			if eh != nil {
				size += 4 + (len(eh)+3)&^3
			}
		}
		if w.Len()-start+size+tail > limit || (plus && dirUsed+entrySize(name) > dirLimit && n > 0) {
			full = true
			return false
		}
		dirUsed += entrySize(name)
		w.Bool(true)
		w.Uint64(ino)
		w.String(name)
		w.Uint64(ck)
		if plus {
			putPostOp(w, o.e, est)
			putPostFH(w, eh)
		}
		n++
		return true
	}
	plusAttrs := s.plusAttrs(ent.f, o)
	first := searchCookie(snap.entries, cookie)
	hdr := w.Len() - start
	var pre []plusInfo
	if plus {
		// Stat the entries that will fit in parallel: statx dominates
		// READDIRPLUS, and the client waits idle meanwhile; or take
		// them from the read-ahead of the previous page.
		if pre = s.readaheads.take(key, snap, cookie, s.mutations.Load()); pre == nil {
			pre = prefetch(snap.entries[first:], limit-hdr-tail, len(o.h), plusAttrs)
		}
	}
	if cookie < cookieDot {
		var eh []byte
		if plus {
			eh = o.h
		}
		if !emit(".", st.Ino, cookieDot, st, eh) {
			goto done
		}
	}
	if cookie < cookieDotDot {
		pp := parentPath(o.p)
		pst, eh := st, o.h
		if pp != o.p {
			pst, err = lstatPath(o.e, pp)
			if err != nil {
				pst = nil
			}
			if plus {
				if eh, err = s.hs.Handle(o.e, pp); err != nil {
					eh = nil
				}
			}
		}
		ino := st.Ino
		if pst != nil {
			ino = pst.Ino
		}
		if !plus {
			eh = nil
		}
		if !emit("..", ino, cookieDotDot, pst, eh) {
			goto done
		}
	}
	for i := first; i < len(snap.entries); i++ {
		de := &snap.entries[i]
		var est *unix.Stat_t
		var eh []byte
		if plus {
			var ok bool
			if k := i - first; k < len(pre) {
				est, eh, ok = pre[k].st, pre[k].h, pre[k].ok
			} else {
				est, eh, ok = plusAttrs(de.name)
			}
			if !ok {
				continue
			}
		}
		if !emit(de.name, de.ino, de.cookie, est, eh) {
			break
		}
		last = i
	}
	if plus && full && last >= 0 {
		// The client asks for the next page as soon as it has this
		// one: stat it meanwhile.
		s.readAhead(o, key, snap, last, limit-hdr-tail)
	}
done:
	if n == 0 && full {
		w.Truncate(start)
		w.Uint32(errTooSmall)
		putPostOp(w, o.e, st)
		return oncrpc.Success
	}
	w.Bool(false)
	w.Bool(!full)
	return oncrpc.Success
}

// plusAttrs returns a function giving the attributes and handle of a
// child of the folder o, open as dir, for READDIRPLUS; a child gone since
// the snapshot is reported not ok, and skipped.
func (s *Server) plusAttrs(dir *os.File, o obj) func(string) (*unix.Stat_t, []byte, bool) {
	return func(name string) (*unix.Stat_t, []byte, bool) {
		est, key, keyed, err := statxAt(fdOf(dir), o.e, name)
		if err != nil {
			return nil, nil, false
		}
		if keyed {
			if eh := s.handles.get(key); eh != nil {
				return est, eh, true
			}
		}
		eh, err := s.hs.Handle(o.e, childPath(o.p, name))
		if err != nil {
			return est, nil, true
		}
		if keyed {
			s.handles.put(key, eh)
		}
		return est, eh, true
	}
}

// READDIRPLUS read-ahead. A client reads a big folder page by page, each
// request sent when the previous reply is in, and statx of every entry
// is most of a page's cost: so after a page that does not end the
// listing, a goroutine stats the next page's entries while the reply
// travels and the client decodes it. The next request uses them only if
// it continues right there in the same snapshot, no call that changes
// anything (Server.mutations) completed since the read-ahead began, and
// it began less than readaheadMaxAge ago: what the client sees is then
// what a stat at its request would have seen, save changes made by other
// programs on the server within that time, which any reply can miss
// while it is on the wire.
const (
	readaheadMaxAge = 50 * time.Millisecond
	readaheadSlots  = 16 // folders with a read-ahead pending
)

// readahead is the next page's attributes of one listing.
type readahead struct {
	snap  *snapshot
	after uint64 // the cookie the page starts after
	gen   uint64 // Server.mutations when it began
	start time.Time
	done  chan struct{}
	pre   []plusInfo // set when done is closed
}

// readaheads holds the pending read-aheads by folder.
type readaheads struct {
	mu     sync.Mutex
	m      map[snapKey]*readahead
	closed bool // no more read-aheads: the server is closing
	wg     sync.WaitGroup
}

// close stops new read-aheads and waits for those running.
func (r *readaheads) close() {
	r.mu.Lock()
	r.closed = true
	r.m = nil
	r.mu.Unlock()
	r.wg.Wait()
}

// take returns the attributes read ahead for a page of snap after
// cookie, if they are still good (see above), else nil; either way the
// read-ahead is used up.
func (r *readaheads) take(key snapKey, snap *snapshot, cookie, gen uint64) []plusInfo {
	r.mu.Lock()
	ra := r.m[key]
	delete(r.m, key) // used up, or of another listing or page
	r.mu.Unlock()
	if ra == nil || ra.snap != snap || ra.after != cookie {
		return nil
	}
	<-ra.done
	if ra.gen != gen || time.Since(ra.start) > readaheadMaxAge {
		return nil
	}
	return ra.pre
}

// readAhead starts statting the entries of snap after index last that
// fit in room bytes of reply.
func (s *Server) readAhead(o obj, key snapKey, snap *snapshot, last, room int) {
	if last+1 >= len(snap.entries) {
		return
	}
	// The handle is in the call's buffer, which the connection reuses
	// for its next call.
	o.h = slices.Clone(o.h)
	ra := &readahead{
		snap: snap, after: snap.entries[last].cookie, gen: s.mutations.Load(),
		start: time.Now(), done: make(chan struct{}),
	}
	r := &s.readaheads
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return
	}
	if r.m == nil {
		r.m = make(map[snapKey]*readahead)
	}
	if _, ok := r.m[key]; !ok && len(r.m) >= readaheadSlots {
		for k := range r.m { // make room: any one will do
			delete(r.m, k)
			break
		}
	}
	r.m[key] = ra
	r.wg.Add(1)
	r.mu.Unlock()
	go func() {
		defer r.wg.Done()
		defer close(ra.done)
		ent, _, err := s.open(o, false)
		if err != nil {
			return
		}
		defer s.files.release(ent)
		ra.pre = prefetch(snap.entries[last+1:], room, len(o.h), s.plusAttrs(ent.f, o))
	}()
}

// plusInfo is the prefetched attributes and handle of one entry.
type plusInfo struct {
	st *unix.Stat_t
	h  []byte
	ok bool
}

// minPrefetch is the fewest entries worth a second goroutine.
const minPrefetch = 16

// prefetch runs get for the leading entries of ents that fit in room
// bytes of READDIRPLUS reply (with handles of about hlen bytes), split
// between this goroutine and one more.
func prefetch(ents []dirEntry, room, hlen int, get func(string) (*unix.Stat_t, []byte, bool)) []plusInfo {
	n := 0
	for used := 0; n < len(ents); n++ {
		used += entrySize(ents[n].name) + 4 + fattrBytes + 4 + 4 + (hlen+3)&^3
		if used > room {
			break
		}
	}
	if n < minPrefetch {
		return nil
	}
	out := make([]plusInfo, n)
	fill := func(lo, hi int) {
		for i := lo; i < hi; i++ {
			out[i].st, out[i].h, out[i].ok = get(ents[i].name)
		}
	}
	var wg sync.WaitGroup
	wg.Go(func() { fill(n/2, n) })
	fill(0, n/2)
	wg.Wait()
	return out
}

// searchCookie returns the index of the first entry after cookie.
func searchCookie(ents []dirEntry, cookie uint64) int {
	if cookie >= 1<<63 {
		return len(ents) // no cookie of ours is that large
	}
	i, _ := slices.BinarySearchFunc(ents, cookie+1, func(e dirEntry, c uint64) int {
		switch {
		case e.cookie < c:
			return -1
		case e.cookie > c:
			return 1
		}
		return 0
	})
	return i
}
