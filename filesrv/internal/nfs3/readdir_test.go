package nfs3

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"example.com/appliance/filesrv/internal/oncrpc"
)

// dirPage is one decoded READDIR or READDIRPLUS reply.
type dirPage struct {
	status  uint32
	names   []string
	cookies []uint64
	attrs   []bool // READDIRPLUS: attributes and handle present
	eof     bool
	size    int      // bytes of the results
	sizes   []uint64 // READDIRPLUS: each entry's size attribute
}

func (v *env) readdirPage(h []byte, cookie uint64, plus bool, count uint32) dirPage {
	v.t.Helper()
	proc := uint32(procReaddir)
	if plus {
		proc = procReaddirplus
	}
	stat, r := v.call(proc, credRoot, func(w *oncrpc.Writer) {
		w.Opaque(h)
		w.Uint64(cookie)
		w.Raw(make([]byte, 8))
		if plus {
			w.Uint32(count / 4) // dircount
		}
		w.Uint32(count)
	})
	if stat != oncrpc.Success {
		v.t.Fatalf("accept %d", stat)
	}
	pg := dirPage{size: r.Len(), status: r.Uint32()}
	readPostOp(r)
	if pg.status != nfsOK {
		return pg
	}
	r.Fixed(8)
	for r.Bool() {
		r.Uint64() // fileid
		pg.names = append(pg.names, r.String(nameMax))
		pg.cookies = append(pg.cookies, r.Uint64())
		if plus {
			a, ok := readPostOp(r)
			pg.sizes = append(pg.sizes, a.size)
			hasFH := r.Bool()
			if hasFH {
				r.Opaque(fhMax)
			}
			pg.attrs = append(pg.attrs, ok && hasFH)
		}
	}
	pg.eof = r.Bool()
	if r.Err() != nil || r.Len() != 0 {
		v.t.Fatalf("malformed reply: %v, %d bytes left", r.Err(), r.Len())
	}
	return pg
}

// listAll reads a folder to the end and returns every name in order.
func (v *env) listAll(t testing.TB, h []byte, plus bool, count uint32) []string {
	var names []string
	cookie := uint64(0)
	for range 1 << 20 {
		pg := v.readdirPage(h, cookie, plus, count)
		if pg.status != nfsOK {
			t.Fatalf("status %d after %d names", pg.status, len(names))
		}
		if pg.size > int(count) {
			t.Fatalf("reply of %d bytes exceeds count %d", pg.size, count)
		}
		for i, ok := range pg.attrs {
			if !ok {
				t.Errorf("%s: no attributes or handle", pg.names[i])
			}
		}
		names = append(names, pg.names...)
		if pg.eof {
			return names
		}
		if len(pg.cookies) == 0 {
			t.Fatal("empty page without eof")
		}
		cookie = pg.cookies[len(pg.cookies)-1]
	}
	t.Fatal("listing does not end")
	return nil
}

func TestReaddir(t *testing.T) {
	v := newEnv(t)
	want := []string{".", ".."}
	for i := range 300 {
		name := fmt.Sprintf("file-%03d%s", i, "xxxxxxx"[:i%7])
		if err := os.WriteFile(filepath.Join(v.dir, name), nil, 0o644); err != nil {
			t.Fatal(err)
		}
		want = append(want, name)
	}
	slices.Sort(want)
	tests := []struct {
		name  string
		plus  bool
		count uint32
	}{
		{"readdir small pages", false, 512},
		{"readdir 8k", false, 8192},
		{"readdir 64k", false, 65536},
		{"readdirplus small pages", true, 1024},
		{"readdirplus 32k", true, 32768},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := v.listAll(t, v.rootFH(), tt.plus, tt.count)
			slices.Sort(got)
			if !slices.Equal(got, want) {
				t.Errorf("got %d names, want %d", len(got), len(want))
			}
		})
	}
	t.Run("8k page holds many entries", func(t *testing.T) {
		pg := v.readdirPage(v.rootFH(), 0, false, 8192)
		if len(pg.names) < 150 {
			t.Errorf("%d entries in 8 KiB", len(pg.names))
		}
	})
	t.Run("too small", func(t *testing.T) {
		if pg := v.readdirPage(v.rootFH(), 0, false, 100); pg.status != errTooSmall {
			t.Errorf("status %d, want TOOSMALL", pg.status)
		}
	})
	t.Run("not a folder", func(t *testing.T) {
		if pg := v.readdirPage(v.fh(want[5]), 0, false, 4096); pg.status != errNotDir {
			t.Errorf("status %d, want NOTDIR", pg.status)
		}
	})
	t.Run("unknown cookie", func(t *testing.T) {
		if pg := v.readdirPage(v.rootFH(), 1<<64-1, false, 4096); pg.status != nfsOK || !pg.eof {
			t.Errorf("status %d eof %v", pg.status, pg.eof)
		}
	})
}

// TestReaddirWhileAdding lists a big folder while files are added to it:
// every file there at the start is listed exactly once, and no name
// twice.
func TestReaddirWhileAdding(t *testing.T) {
	n := 20000
	if !testing.Short() && !raceEnabled {
		n = 100000
	}
	v := newEnv(t)
	dir := filepath.Join(v.dir, "big")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	// Hard links to a few files: many times faster to make than files
	// (ext4 allows 65,000 links to one).
	var srcs []string
	for i := range 4 {
		src := filepath.Join(v.dir, fmt.Sprintf("src%d", i))
		if err := os.WriteFile(src, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		srcs = append(srcs, src)
	}
	var wg sync.WaitGroup
	for g := range 2 {
		wg.Go(func() {
			for i := g; i < n; i += 2 {
				if err := os.Link(srcs[i%4], filepath.Join(dir, fmt.Sprintf("f%06d", i))); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	dh := v.fh("big")
	for _, plus := range []bool{false, true} {
		t.Run(fmt.Sprintf("plus=%v", plus), func(t *testing.T) {
			stop := make(chan struct{})
			var wg sync.WaitGroup
			wg.Go(func() {
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					if err := os.Link(srcs[i%4], filepath.Join(dir, fmt.Sprintf("new-%v-%06d", plus, i))); err != nil {
						t.Error(err)
						return
					}
				}
			})
			// Another client keeps starting listings, replacing the
			// snapshot under the first.
			wg.Go(func() {
				for {
					select {
					case <-stop:
						return
					default:
					}
					v.readdirPage(dh, 0, false, 4096)
				}
			})
			names := v.listAll(t, dh, plus, 32768)
			close(stop)
			wg.Wait()
			seen := make(map[string]bool, len(names))
			for _, name := range names {
				if seen[name] {
					t.Fatalf("%s listed twice", name)
				}
				seen[name] = true
			}
			for i := range n {
				if name := fmt.Sprintf("f%06d", i); !seen[name] {
					t.Fatalf("%s missing", name)
				}
			}
		})
	}
}

// TestReaddirplusReadahead checks the read-ahead of the next READDIRPLUS
// page: it is used when the client continues the listing, and a change
// made through the server after it began (a WRITE to a file of the next
// page) makes the next page stat afresh.
func TestReaddirplusReadahead(t *testing.T) {
	v := newEnv(t)
	h := v.dirOfFiles(t, "d", 300)
	all := v.listAll(t, h, true, 4096)
	readahead := func() *readahead {
		r := &v.s.readaheads
		r.mu.Lock()
		defer r.mu.Unlock()
		for _, ra := range r.m {
			return ra
		}
		return nil
	}

	// The read-ahead outlives its call, whose arguments (the handle) sit
	// in a buffer that the connection reuses: the race detector sees it
	// if the read-ahead reads them.
	args := encode(func(w *oncrpc.Writer) {
		w.Opaque(h)
		w.Uint64(0)
		w.Raw(make([]byte, 8))
		w.Uint32(1024)
		w.Uint32(4096)
	})
	if st := v.s.ServeRPC(context.Background(), &oncrpc.Call{Proc: procReaddirplus, Args: args, Sys: credRoot}, oncrpc.NewWriter(nil)); st != oncrpc.Success {
		t.Fatalf("accept %d", st)
	}
	for i := range args {
		args[i] = 0xff
	}

	p1 := v.readdirPage(h, 0, true, 4096)
	if p1.eof || len(p1.names) < 3 {
		t.Fatalf("first page: %d names, eof %v", len(p1.names), p1.eof)
	}
	last := p1.cookies[len(p1.cookies)-1]
	ra := readahead()
	if ra == nil || ra.after != last {
		t.Fatalf("no read-ahead after the first page (cookie %d): %+v", last, ra)
	}
	<-ra.done                  // it has statted the file before the WRITE
	next := all[len(p1.names)] // the second page's first entry
	fh := v.lookup(h, next)
	if st := v.status(procWrite, credRoot, writeArgs(fh, 0, unstable, []byte("0123456789"))); st != nfsOK {
		t.Fatalf("WRITE: %d", st)
	}
	p2 := v.readdirPage(h, last, true, 4096)
	if len(p2.names) == 0 || p2.names[0] != next {
		t.Fatalf("second page starts with %v, want %s", p2.names, next)
	}
	if p2.sizes[0] != 10 {
		t.Errorf("%s after a WRITE of 10 bytes: size %d in the next page (a stale read-ahead)", next, p2.sizes[0])
	}
	if ra := readahead(); ra == nil || ra.after != p2.cookies[len(p2.cookies)-1] {
		t.Errorf("no read-ahead after the second page: %+v", ra)
	}
	if got := v.listAll(t, h, true, 4096); !slices.Equal(got, all) {
		t.Errorf("listing with read-ahead: %d names, want %d", len(got), len(all))
	}
}

// TestReaddirSnapshotReuse checks when a new listing may use the folder's
// last snapshot again: only while the folder's times are unchanged and the
// snapshot was read a whole racyWindow after them.
func TestReaddirSnapshotReuse(t *testing.T) {
	v := newEnv(t)
	h := v.dirOfFiles(t, "d", 50)
	dir := filepath.Join(v.dir, "d")
	old := time.Now().Add(-time.Hour)
	if err := os.Chtimes(dir, old, old); err != nil { // a fixed mtime; ctime is now
		t.Fatal(err)
	}
	var st unix.Stat_t
	if err := unix.Stat(dir, &st); err != nil {
		t.Fatal(err)
	}
	key := snapKey{export: v.e.ID, dev: st.Dev, ino: st.Ino}
	list := func() *snapshot {
		t.Helper()
		if n := len(v.listAll(t, h, true, 4096)); n != 52 {
			t.Fatalf("%d names", n)
		}
		return v.s.dirs.get(key)
	}

	first := list()
	if again := list(); again == first {
		t.Fatal("snapshot read within racyWindow of the folder's last change used again")
	}
	// As if read long after the last change.
	sn := v.s.dirs.get(key)
	sn.taken = sn.taken.Add(time.Hour)
	if again := list(); again != sn {
		t.Error("snapshot of an unchanged folder not used again")
	}
	if err := os.WriteFile(filepath.Join(dir, "new"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if n := len(v.listAll(t, h, true, 4096)); n != 53 {
		t.Errorf("listing after a change: %d names, want 53", n)
	}
}
