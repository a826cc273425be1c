package handles

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// TestResolveStat checks the attributes ResolveStat returns and that
// HandleStat makes the handle Handle makes.
func TestResolveStat(t *testing.T) {
	e := newExport(t, "a/b/f", "g")
	s := open(t, t.TempDir(), e)
	for _, p := range []string{".", "g", "a", "a/b", "a/b/f"} {
		h := handle(t, s, e, p)
		ge, gp, st, err := s.ResolveStat(h)
		if err != nil || ge != e || st == nil {
			t.Fatalf("ResolveStat(%s): %v %v %v", p, ge, st, err)
		}
		want := p
		if p == "." {
			want = ""
		}
		if gp != want {
			t.Errorf("ResolveStat(%s): path %q, want %q", p, gp, want)
		}
		fi, err := os.Lstat(filepath.Join(e.Dir, p))
		if err != nil {
			t.Fatal(err)
		}
		sys := fi.Sys().(*syscall.Stat_t)
		if st.Ino != sys.Ino || uint32(st.Mode) != sys.Mode || int64(st.Size) != sys.Size || uint64(st.Nlink) != sys.Nlink {
			t.Errorf("ResolveStat(%s): ino %d mode %o size %d nlink %d, on disk %d %o %d %d",
				p, st.Ino, st.Mode, st.Size, st.Nlink, sys.Ino, sys.Mode, sys.Size, sys.Nlink)
		}
		if p == "." {
			continue
		}
		var sx unix.Statx_t
		if err := unix.Statx(unix.AT_FDCWD, filepath.Join(e.Dir, p), unix.AT_SYMLINK_NOFOLLOW, statxMask, &sx); err != nil {
			t.Fatal(err)
		}
		h2, err := s.HandleStat(e, p, &sx)
		if err != nil || !bytes.Equal(h, h2) {
			t.Errorf("HandleStat(%s) = %x, %v; Handle gave %x", p, h2, err, h)
		}
	}
	h := handle(t, s, e, "g")
	if err := os.Remove(filepath.Join(e.Dir, "g")); err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := s.ResolveStat(h); !errors.Is(err, ErrStale) {
		t.Errorf("ResolveStat of a removed file: %v", err)
	}
}
