package rootfs

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestBillyBoundOSRemovesSymlinkTarget records why this package exists:
// go-billy v5.9.2's bound osfs (osfs.New(dir, osfs.WithBoundOS())) resolves
// a final symlink, so Remove of a symlink deletes its target, and Remove of
// a dangling symlink fails. osfs needs a module the appliance does not
// depend on, so testdata/billybound is a module of its own, run with the go
// command. If this test starts failing, go-billy has fixed the bug.
func TestBillyBoundOSRemovesSymlinkTarget(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a separate module")
	}
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command")
	}
	dir := t.TempDir()
	write(t, filepath.Join(dir, "target"), "precious")
	if err := os.Symlink("target", filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("nowhere", filepath.Join(dir, "dangling")); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(gobin, "run", ".", dir)
	cmd.Dir = filepath.Join("testdata", "billybound")
	out, err := cmd.CombinedOutput()
	if err != nil {
		// Usually a module download without network: not the bug's fault.
		t.Skipf("go run billybound: %v\n%s", err, out)
	}
	t.Logf("go-billy v5.9.2 bound mode:\n%s", out)
	_, targetErr := os.Lstat(filepath.Join(dir, "target"))
	_, linkErr := os.Lstat(filepath.Join(dir, "link"))
	_, danglingErr := os.Lstat(filepath.Join(dir, "dangling"))
	buggy := targetErr != nil || linkErr == nil || danglingErr == nil ||
		!strings.Contains(string(out), "remove link: <nil>")
	if !buggy {
		t.Fatal("go-billy bound mode removed symlinks as links; the workaround may no longer be needed")
	}
	// The same steps through rootfs do the right thing.
	if err := os.Symlink("target", filepath.Join(dir, "link2")); err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(dir, "target"), "precious")
	r, err := os.OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	fsys := New(r, false)
	for _, name := range []string{"link2", "dangling"} {
		if err := fsys.Remove(name); err != nil {
			t.Errorf("rootfs Remove(%s): %v", name, err)
		}
	}
	if _, err := os.Lstat(filepath.Join(dir, "target")); err != nil {
		t.Errorf("rootfs removed the target: %v", err)
	}
}
