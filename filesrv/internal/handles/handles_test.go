package handles

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"example.com/appliance/filesrv/internal/export"
	"go.uber.org/goleak"
	"golang.org/x/sys/unix"
)

var quiet = slog.New(slog.DiscardHandler)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// newExport returns an export of a new folder holding files (names ending
// in "/" are folders).
func newExport(t testing.TB, files ...string) *export.Export {
	t.Helper()
	dir := t.TempDir()
	for _, f := range files {
		p := filepath.Join(dir, f)
		if f[len(f)-1] == '/' {
			if err := os.MkdirAll(p, 0o755); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(f), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	r, err := os.OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return &export.Export{Path: "/exp", Dir: dir, Root: r, ID: export.IDFor("/exp")}
}

func open(t testing.TB, state string, e *export.Export) *Store {
	t.Helper()
	s, err := Open(state, []*export.Export{e}, WithLogger(quiet))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func handle(t testing.TB, s *Store, e *export.Export, p string) []byte {
	t.Helper()
	h, err := s.Handle(e, p)
	if err != nil {
		t.Fatalf("Handle(%q): %v", p, err)
	}
	return h
}

func resolve(t testing.TB, s *Store, h []byte, want string) {
	t.Helper()
	_, got, err := s.Resolve(h)
	if err != nil || got != want {
		t.Fatalf("Resolve = %q, %v; want %q", got, err, want)
	}
}

func scans(s *Store, e *export.Export) int64 { return s.exps[e.ID].scans.Load() }

func TestHandleResolve(t *testing.T) {
	e := newExport(t, "f", "a/b/c", "empty/")
	if err := os.Symlink("../../outside", filepath.Join(e.Dir, "a/link")); err != nil {
		t.Fatal(err)
	}
	s := open(t, t.TempDir(), e)
	tests := []struct{ in, want string }{
		{"", ""},
		{".", ""},
		{"/", ""},
		{"f", "f"},
		{"/f", "f"},
		{"a", "a"},
		{"a/b", "a/b"},
		{"a//b/./c", "a/b/c"},
		{"a/b/../b/c", "a/b/c"},
		{"empty", "empty"},
		{"a/link", "a/link"}, // the link itself
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			h := handle(t, s, e, tt.in)
			if len(h) != Len {
				t.Fatalf("len %d", len(h))
			}
			if binary.BigEndian.Uint32(h) != e.ID {
				t.Errorf("export ID %x", h[:4])
			}
			got, p, err := s.Resolve(h)
			if err != nil || got != e || p != tt.want {
				t.Errorf("Resolve = %v, %q, %v; want %q", got, p, err, tt.want)
			}
			if h2 := handle(t, s, e, tt.want); !bytes.Equal(h, h2) {
				t.Errorf("handle of %q differs from %q's", tt.want, tt.in)
			}
		})
	}
	if scans(s, e) != 0 {
		t.Errorf("%d scans for known handles", scans(s, e))
	}
}

func TestHandleErrors(t *testing.T) {
	e := newExport(t, "f")
	s := open(t, t.TempDir(), e)
	if err := os.Symlink("/", filepath.Join(e.Dir, "root")); err != nil {
		t.Fatal(err)
	}
	other := newExport(t)
	tests := []struct {
		name string
		e    *export.Export
		path string
	}{
		{"missing", e, "nope"},
		{"dotdot", e, "../x"},
		{"dotdot root", e, ".."},
		{"through escaping symlink", e, "root/etc/passwd"},
		{"unknown export", other, "f"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if h, err := s.Handle(tt.e, tt.path); err == nil {
				t.Errorf("Handle(%q) = %x", tt.path, h)
			}
		})
	}
}

func TestBadHandle(t *testing.T) {
	e := newExport(t, "f")
	s := open(t, t.TempDir(), e)
	good := handle(t, s, e, "f")
	unknown := bytes.Clone(good)
	unknown[0] ^= 0xff
	tests := []struct {
		name string
		h    []byte
	}{
		{"nil", nil},
		{"short", good[:12]},
		{"long", append(bytes.Clone(good), 0, 0, 0, 0)},
		{"unknown export", unknown},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, _, err := s.Resolve(tt.h); !errors.Is(err, ErrBadHandle) {
				t.Errorf("err = %v; want ErrBadHandle", err)
			}
		})
	}
}

func TestSurvivesReopen(t *testing.T) {
	e := newExport(t, "a/b/c", "d")
	state := t.TempDir()
	s := open(t, state, e)
	hc, hd, hroot := handle(t, s, e, "a/b/c"), handle(t, s, e, "d"), handle(t, s, e, "")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2 := open(t, state, e)
	resolve(t, s2, hc, "a/b/c")
	resolve(t, s2, hd, "d")
	resolve(t, s2, hroot, "")
	if n := scans(s2, e); n != 0 {
		t.Errorf("%d scans after reopen with a saved index", n)
	}
}

func TestSurvivesLostIndex(t *testing.T) {
	tests := []struct {
		name  string
		index func(t *testing.T, file string)
	}{
		{"deleted", func(t *testing.T, file string) {
			if err := os.Remove(file); err != nil {
				t.Fatal(err)
			}
		}},
		{"garbage", func(t *testing.T, file string) {
			if err := os.WriteFile(file, []byte("FSHIDX01 nonsense"), 0o600); err != nil {
				t.Fatal(err)
			}
		}},
		{"bit flip", func(t *testing.T, file string) {
			b, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			b[len(b)/2] ^= 1
			if err := os.WriteFile(file, b, 0o600); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newExport(t, "a/b/c", "a/x", "d")
			state := t.TempDir()
			s := open(t, state, e)
			hc, hx := handle(t, s, e, "a/b/c"), handle(t, s, e, "a/x")
			file := s.file(s.exps[e.ID])
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			tt.index(t, file)
			s2 := open(t, state, e)
			resolve(t, s2, hc, "a/b/c")
			resolve(t, s2, hx, "a/x")
			if n := scans(s2, e); n != 1 {
				t.Errorf("%d scans; want 1", n)
			}
		})
	}
}

func TestRenames(t *testing.T) {
	tests := []struct {
		name       string
		from, to   string
		tell       bool // call Moved
		wantScans  int64
		handlePath string // handle taken before the rename
		wantPath   string // its path after
	}{
		{"parent dir via Moved", "d/x", "d/z", true, 0, "d/x/y/f", "d/z/y/f"},
		{"parent dir to other folder via Moved", "d/x", "e/x2", true, 0, "d/x/y/f", "e/x2/y/f"},
		{"file via Moved", "d/x/y/f", "e/g", true, 0, "d/x/y/f", "e/g"},
		{"parent dir outside NFS", "d/x", "e/w", false, 1, "d/x/y/f", "e/w/y/f"},
		{"file outside NFS", "d/x/y/f", "top", false, 1, "d/x/y/f", "top"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newExport(t, "d/x/y/f", "e/")
			s := open(t, t.TempDir(), e)
			h := handle(t, s, e, tt.handlePath)
			hy := handle(t, s, e, "d/x/y")
			if err := os.Rename(filepath.Join(e.Dir, tt.from), filepath.Join(e.Dir, tt.to)); err != nil {
				t.Fatal(err)
			}
			if tt.tell {
				s.Moved(e, tt.from, tt.to)
			}
			resolve(t, s, h, tt.wantPath)
			if _, p, err := s.Resolve(hy); err != nil || filepath.Base(p) != "y" {
				t.Errorf("Resolve(y) = %q, %v", p, err)
			}
			if n := scans(s, e); n != tt.wantScans {
				t.Errorf("%d scans; want %d", n, tt.wantScans)
			}
		})
	}
}

func TestMovedOverExisting(t *testing.T) {
	e := newExport(t, "a", "b")
	s := open(t, t.TempDir(), e)
	ha, hb := handle(t, s, e, "a"), handle(t, s, e, "b")
	if err := os.Rename(filepath.Join(e.Dir, "a"), filepath.Join(e.Dir, "b")); err != nil {
		t.Fatal(err)
	}
	s.Moved(e, "a", "b")
	resolve(t, s, ha, "b")
	if _, _, err := s.Resolve(hb); !errors.Is(err, ErrStale) {
		t.Errorf("replaced file: err = %v; want ErrStale", err)
	}
}

func TestRemovedIsStale(t *testing.T) {
	e := newExport(t, "d/f", "d/g", "h")
	s := open(t, t.TempDir(), e)
	hf, hg, hh := handle(t, s, e, "d/f"), handle(t, s, e, "d/g"), handle(t, s, e, "h")
	for _, p := range []string{"d/f", "d/g"} {
		if err := os.Remove(filepath.Join(e.Dir, p)); err != nil {
			t.Fatal(err)
		}
	}
	s.Removed(e, "d/f") // d/g is removed beside NFS
	for _, h := range [][]byte{hf, hg, hf, hg} {
		if _, p, err := s.Resolve(h); !errors.Is(err, ErrStale) {
			t.Errorf("Resolve = %q, %v; want ErrStale", p, err)
		}
	}
	// One scan answers both; the rest is remembered or rate-limited.
	if n := scans(s, e); n != 1 {
		t.Errorf("%d scans; want 1", n)
	}
	resolve(t, s, hh, "h")
}

func TestHardLinkSurvivesRemove(t *testing.T) {
	e := newExport(t, "a", "d/")
	s := open(t, t.TempDir(), e)
	if err := os.Link(filepath.Join(e.Dir, "a"), filepath.Join(e.Dir, "d/b")); err != nil {
		t.Fatal(err)
	}
	h := handle(t, s, e, "a")
	if err := os.Remove(filepath.Join(e.Dir, "a")); err != nil {
		t.Fatal(err)
	}
	s.Removed(e, "a")
	resolve(t, s, h, "d/b")
}

func TestGeneration(t *testing.T) {
	e := newExport(t, "f")
	s := open(t, t.TempDir(), e)
	var st unix.Statx_t
	if err := unix.Statx(unix.AT_FDCWD, e.Dir, 0, unix.STATX_BTIME, &st); err != nil || st.Mask&unix.STATX_BTIME == 0 {
		if os.Getenv("CI") != "" {
			t.Fatalf("no birth time on %s (%v): generations are 0, and CI's file system should have them", e.Dir, err)
		}
		t.Skipf("no birth time on %s (%v): generations are 0", e.Dir, err)
	}
	h := handle(t, s, e, "f")
	if binary.BigEndian.Uint32(h[12:]) == 0 {
		t.Error("generation 0 on a filesystem with birth times")
	}

	t.Run("forged generation", func(t *testing.T) {
		forged := bytes.Clone(h)
		forged[15] ^= 1
		if _, _, err := s.Resolve(forged); !errors.Is(err, ErrStale) {
			t.Errorf("err = %v; want ErrStale", err)
		}
		if n := scans(s, e); n != 0 {
			t.Errorf("%d scans for a known inode with another generation", n)
		}
	})

	t.Run("reused inode", func(t *testing.T) {
		ino := binary.BigEndian.Uint64(h[4:])
		if err := os.Remove(filepath.Join(e.Dir, "f")); err != nil {
			t.Fatal(err)
		}
		s.Removed(e, "f")
		// ext4 and tmpfs hand a freed inode number out again soon.
		var reused string
		for i := range 2000 {
			name := fmt.Sprintf("n%d", i)
			p := filepath.Join(e.Dir, name)
			if err := os.WriteFile(p, nil, 0o644); err != nil {
				t.Fatal(err)
			}
			fi, err := os.Stat(p)
			if err != nil {
				t.Fatal(err)
			}
			if fi.Sys().(*syscall.Stat_t).Ino == ino {
				reused = name
				break
			}
		}
		if reused == "" {
			t.Skip("inode number not reused")
		}
		hn := handle(t, s, e, reused)
		if bytes.Equal(hn, h) {
			t.Fatal("new file got the old file's handle")
		}
		if _, p, err := s.Resolve(h); !errors.Is(err, ErrStale) {
			t.Errorf("old handle resolves to %q, %v; want ErrStale", p, err)
		}
		resolve(t, s, hn, reused)
	})
}

func TestManyHandles(t *testing.T) {
	const n = 10000
	e := newExport(t)
	for i := range n {
		p := filepath.Join(e.Dir, fmt.Sprintf("d%02d/f%05d", i%50, i))
		if i < 50 {
			if err := os.Mkdir(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.WriteFile(p, nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	state := t.TempDir()
	s := open(t, state, e)
	hs := make([][]byte, n)
	for i := range n {
		hs[i] = handle(t, s, e, fmt.Sprintf("d%02d/f%05d", i%50, i))
	}
	check := func(s *Store) {
		for i, h := range hs {
			resolve(t, s, h, fmt.Sprintf("d%02d/f%05d", i%50, i))
		}
	}
	check(s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2 := open(t, state, e)
	check(s2)
	if n := scans(s2, e); n != 0 {
		t.Errorf("%d scans with a saved index", n)
	}
	if err := os.Remove(s.file(s.exps[e.ID])); err != nil {
		t.Fatal(err)
	}
	s2.Close()
	s3 := open(t, state, e)
	check(s3)
	if n := scans(s3, e); n != 1 {
		t.Errorf("%d scans without index; want 1", n)
	}
}

func TestConcurrent(t *testing.T) {
	e := newExport(t, "d/")
	s := open(t, t.TempDir(), e)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 200 {
				p := fmt.Sprintf("d/g%d-%d", g, i)
				if err := os.WriteFile(filepath.Join(e.Dir, p), nil, 0o644); err != nil {
					t.Error(err)
					return
				}
				h, err := s.Handle(e, p)
				if err != nil {
					t.Error(err)
					return
				}
				if i%3 == 0 {
					q := p + "-moved"
					if err := os.Rename(filepath.Join(e.Dir, p), filepath.Join(e.Dir, q)); err != nil {
						t.Error(err)
						return
					}
					s.Moved(e, p, q)
					p = q
				}
				if _, got, err := s.Resolve(h); err != nil || got != p {
					t.Errorf("Resolve = %q, %v; want %q", got, err, p)
				}
				if i%50 == 0 {
					if err := s.save(); err != nil {
						t.Error(err)
					}
				}
			}
		})
	}
	wg.Wait()
}

func BenchmarkResolve(b *testing.B) {
	e := newExport(b, "a/b/c/file")
	s := open(b, b.TempDir(), e)
	h := handle(b, s, e, "a/b/c/file")
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := s.Resolve(h); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkHandle(b *testing.B) {
	e := newExport(b, "a/b/c/file")
	s := open(b, b.TempDir(), e)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Handle(e, "a/b/c/file"); err != nil {
			b.Fatal(err)
		}
	}
}

// TestLargeDirectory: 100,000 files in one folder get handles quickly, and
// a restart without index finds any of them with one scan.
func TestLargeDirectory(t *testing.T) {
	if testing.Short() {
		t.Skip("creates 100,000 files")
	}
	const n = 100_000
	e := newExport(t, "big/")
	big := filepath.Join(e.Dir, "big")
	for i := range n {
		fd, err := unix.Open(filepath.Join(big, fmt.Sprintf("f%06d", i)), unix.O_CREAT|unix.O_WRONLY|unix.O_CLOEXEC, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		unix.Close(fd)
	}
	state := t.TempDir()
	s := open(t, state, e)
	hs := make([][]byte, n)
	start := time.Now()
	for i := range n {
		hs[i] = handle(t, s, e, fmt.Sprintf("big/f%06d", i))
	}
	t.Logf("%d handles in %v", n, time.Since(start))
	file := s.file(s.exps[e.ID])
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(file); err != nil {
		t.Fatal(err)
	}
	s2 := open(t, state, e)
	for i := 0; i < n; i += 997 {
		resolve(t, s2, hs[i], fmt.Sprintf("big/f%06d", i))
	}
	if got := scans(s2, e); got != 1 {
		t.Errorf("%d scans; want 1", got)
	}
}

func TestPeriodicSave(t *testing.T) {
	saved := make(chan error, 1)
	oldInterval := saveInterval
	saveInterval = time.Millisecond
	afterSave = func(err error) {
		select {
		case saved <- err:
		default:
		}
	}
	t.Cleanup(func() { saveInterval, afterSave = oldInterval, nil })

	e := newExport(t, "a/b")
	state := t.TempDir()
	s, err := Open(state, []*export.Export{e}, WithLogger(quiet))
	if err != nil {
		t.Fatal(err)
	}
	h := handle(t, s, e, "a/b")
	// Wait for a save that covers the handle.
	ix := s.exps[e.ID]
	ix.mu.RLock()
	want := ix.version
	ix.mu.RUnlock()
	for done := false; !done; {
		if err := <-saved; err != nil {
			t.Fatal(err)
		}
		ix.mu.RLock()
		done = ix.saved >= want
		ix.mu.RUnlock()
	}
	// A copy of the state folder taken now, as a crash would leave it.
	crash := t.TempDir()
	file := s.file(s.exps[e.ID])
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(crash, filepath.Base(file)), b, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2 := open(t, crash, e)
	resolve(t, s2, h, "a/b")
	if n := scans(s2, e); n != 0 {
		t.Errorf("%d scans; the periodic save lacked the handle", n)
	}
}
