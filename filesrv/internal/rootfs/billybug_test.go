package rootfs

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/go-git/go-billy/v5/osfs"
)

// TestBillyBoundOSRemovesSymlinkTarget records why this package exists:
// go-billy v5.9.2's bound osfs (osfs.New(dir, osfs.WithBoundOS())) resolves
// a final symlink, so Remove of a symlink deletes its target, and Remove of
// a dangling symlink fails. If this test starts failing, go-billy has
// fixed the bug and the workaround may no longer be needed.
func TestBillyBoundOSRemovesSymlinkTarget(t *testing.T) {
	for _, tc := range []struct {
		name string
		fs   func(t *testing.T, dir string) interface{ Remove(string) error }
		bug  bool
	}{
		{"go-billy bound osfs", func(t *testing.T, dir string) interface{ Remove(string) error } {
			return osfs.New(dir, osfs.WithBoundOS())
		}, true},
		{"rootfs", func(t *testing.T, dir string) interface{ Remove(string) error } {
			r, err := os.OpenRoot(dir)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { r.Close() })
			return New(r, false)
		}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			write(t, filepath.Join(dir, "target"), "precious")
			if err := os.Symlink("target", filepath.Join(dir, "link")); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink("nowhere", filepath.Join(dir, "dangling")); err != nil {
				t.Fatal(err)
			}
			fsys := tc.fs(t, dir)
			linkErr := fsys.Remove("link")
			_, targetErr := os.Lstat(filepath.Join(dir, "target"))
			danglingErr := fsys.Remove("dangling")
			t.Logf("remove link: %v; target after: %v; remove dangling: %v", linkErr, targetErr, danglingErr)
			buggy := targetErr != nil || danglingErr != nil
			if buggy != tc.bug {
				t.Errorf("removing symlinks touched their targets or failed: %v; expected %v", buggy, tc.bug)
			}
		})
	}
}
