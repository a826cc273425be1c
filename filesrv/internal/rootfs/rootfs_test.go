package rootfs

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/go-git/go-billy/v5"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// setup returns a filesystem over <tmp>/export and the path of <tmp>/outside,
// which holds a file "secret" the filesystem must never reach.
func setup(t *testing.T, readOnly bool) (billy.Filesystem, string, string) {
	t.Helper()
	base := t.TempDir()
	exp := filepath.Join(base, "export")
	out := filepath.Join(base, "outside")
	for _, d := range []string{exp, out, filepath.Join(exp, "dir")} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	write(t, filepath.Join(out, "secret"), "secret")
	write(t, filepath.Join(exp, "file"), "data")
	for link, target := range map[string]string{
		"toroot":   "/",
		"up":       "../..",
		"upout":    "../outside",
		"abs":      filepath.Join(out, "secret"),
		"absdir":   out,
		"dir/deep": "../../outside/secret",
		"tofile":   "file",
		"todir":    "dir",
		"dangling": "nonexistent",
	} {
		if err := os.Symlink(target, filepath.Join(exp, link)); err != nil {
			t.Fatal(err)
		}
	}
	r, err := os.OpenRoot(exp)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return New(r, readOnly), exp, out
}

func write(t *testing.T, name, data string) {
	t.Helper()
	if err := os.WriteFile(name, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

// snapshot describes every file under dir (name, mode, size, mtime, content).
func snapshot(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		s := p + " " + info.Mode().String() + " " + info.ModTime().String()
		if info.Mode().IsRegular() {
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			s += " " + string(b)
		}
		out = append(out, s)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestClean(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", "."},
		{"/", "."},
		{".", "."},
		{"//a//b/", "a/b"},
		{"/a/./b/../c", "a/c"},
		{"../x", "../x"},
		{"/../x", "../x"},
		{"a/../../x", "../x"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			if got := Clean(tt.in); got != tt.want {
				t.Errorf("Clean(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestEscapesFail(t *testing.T) {
	bfs, _, out := setup(t, false)
	before := snapshot(t, out)
	change := bfs.(billy.Change)
	outName := filepath.Base(out)
	tests := []struct {
		name string
		op   func() error
	}{
		{"open abs symlink", func() error { return readAll(bfs, "abs") }},
		{"open via symlink to /", func() error { return readAll(bfs, "toroot/etc/passwd") }},
		{"open via ../..", func() error { return readAll(bfs, "up/"+outName+"/secret") }},
		{"open via ../outside", func() error { return readAll(bfs, "upout/secret") }},
		{"open nested escaping symlink", func() error { return readAll(bfs, "dir/deep") }},
		{"open dotdot path", func() error { return readAll(bfs, "../outside/secret") }},
		{"open slash dotdot path", func() error { return readAll(bfs, "/../outside/secret") }},
		{"open joined dotdot", func() error { return readAll(bfs, bfs.Join("dir", "..", "..", "outside", "secret")) }},
		{"stat abs", func() error { _, err := bfs.Stat("abs"); return err }},
		{"stat via symlink", func() error { _, err := bfs.Stat("upout/secret"); return err }},
		{"lstat dotdot", func() error { _, err := bfs.Lstat("../outside/secret"); return err }},
		{"readdir via symlink", func() error { _, err := bfs.ReadDir("absdir"); return err }},
		{"readdir dotdot", func() error { _, err := bfs.ReadDir(".."); return err }},
		{"create via symlink", func() error { return create(bfs, "upout/new") }},
		{"create dotdot", func() error { return create(bfs, "../outside/new") }},
		{"truncate abs symlink", func() error {
			_, err := bfs.OpenFile("abs", os.O_WRONLY|os.O_TRUNC, 0)
			return err
		}},
		{"mkdirall via symlink", func() error { return bfs.MkdirAll("absdir/newdir", 0o755) }},
		{"mkdirall dotdot", func() error { return bfs.MkdirAll("../outside/newdir", 0o755) }},
		{"rename out", func() error { return bfs.Rename("file", "../outside/file") }},
		{"rename in", func() error { return bfs.Rename("../outside/secret", "stolen") }},
		{"rename via symlink", func() error { return bfs.Rename("upout/secret", "stolen") }},
		{"remove dotdot", func() error { return bfs.Remove("../outside/secret") }},
		{"remove via symlink", func() error { return bfs.Remove("upout/secret") }},
		{"symlink dotdot", func() error { return bfs.Symlink("x", "../outside/link") }},
		{"readlink dotdot", func() error { _, err := bfs.Readlink("../outside/secret"); return err }},
		{"chmod abs", func() error { return change.Chmod("abs", 0o777) }},
		{"chmod via symlink", func() error { return change.Chmod("upout/secret", 0o777) }},
		{"chown abs", func() error { return change.Chown("abs", 1, 1) }},
		{"lchown dotdot", func() error { return change.Lchown("../outside/secret", 1, 1) }},
		{"chtimes abs", func() error { return change.Chtimes("abs", time.Unix(1, 0), time.Unix(1, 0)) }},
		{"link dotdot", func() error { return bfs.(*FS).Link("../outside/secret", "hard") }},
		{"link via symlink", func() error { return bfs.(*FS).Link("upout/secret", "hard") }},
		{"tempfile via symlink", func() error {
			f, err := bfs.TempFile("absdir", "tmp")
			if err == nil {
				f.Close()
			}
			return err
		}},
		{"chroot via symlink", func() error { _, err := bfs.Chroot("absdir"); return err }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.op(); err == nil {
				t.Errorf("%s succeeded", tt.name)
			}
		})
	}
	if after := snapshot(t, out); !slices.Equal(before, after) {
		t.Errorf("outside changed:\nbefore %q\nafter  %q", before, after)
	}
}

func readAll(bfs billy.Filesystem, name string) error {
	f, err := bfs.Open(name)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.ReadAll(f)
	return err
}

func create(bfs billy.Filesystem, name string) error {
	f, err := bfs.Create(name)
	if err != nil {
		return err
	}
	return f.Close()
}

func TestSymlinksAreLinks(t *testing.T) {
	bfs, exp, _ := setup(t, false)
	tests := []struct {
		name   string
		op     func() error
		gone   string // must no longer exist (lstat)
		remain string // must still exist
	}{
		{"remove symlink to file", func() error { return bfs.Remove("tofile") }, "tofile", "file"},
		{"remove symlink to dir", func() error { return bfs.Remove("todir") }, "todir", "dir"},
		{"remove dangling symlink", func() error { return bfs.Remove("dangling") }, "dangling", ""},
		{"remove escaping symlink", func() error { return bfs.Remove("abs") }, "abs", ""},
		{"rename escaping symlink", func() error { return bfs.Rename("upout", "dir/moved") }, "upout", "dir/moved"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.op(); err != nil {
				t.Fatal(err)
			}
			if _, err := os.Lstat(filepath.Join(exp, tt.gone)); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("%s still there: %v", tt.gone, err)
			}
			if tt.remain != "" {
				if _, err := os.Lstat(filepath.Join(exp, tt.remain)); err != nil {
					t.Errorf("%s gone: %v", tt.remain, err)
				}
			}
		})
	}
	if fi, err := os.Lstat(filepath.Join(exp, "dir/moved")); err != nil || fi.Mode()&fs.ModeSymlink == 0 {
		t.Errorf("renamed symlink is not a symlink: %v %v", fi, err)
	}
	if fi, err := bfs.Lstat("dir/deep"); err != nil || fi.Mode()&fs.ModeSymlink == 0 {
		t.Errorf("Lstat of escaping symlink = %v, %v; want the link", fi, err)
	}
	if got, err := bfs.Readlink("dir/deep"); err != nil || got != "../../outside/secret" {
		t.Errorf("Readlink = %q, %v", got, err)
	}
}

func TestReadOnlyRefusesEverything(t *testing.T) {
	bfs, exp, _ := setup(t, true)
	before := snapshot(t, exp)
	change := bfs.(billy.Change)
	f := bfs.(*FS)
	tests := []struct {
		name string
		op   func() error
	}{
		{"create", func() error { return create(bfs, "new") }},
		{"open write", func() error { _, err := bfs.OpenFile("file", os.O_WRONLY, 0); return err }},
		{"open rdwr", func() error { _, err := bfs.OpenFile("file", os.O_RDWR, 0); return err }},
		{"open append", func() error { _, err := bfs.OpenFile("file", os.O_APPEND, 0); return err }},
		{"open trunc", func() error { _, err := bfs.OpenFile("file", os.O_RDONLY|os.O_TRUNC, 0); return err }},
		{"tempfile", func() error { _, err := bfs.TempFile("", "x"); return err }},
		{"rename", func() error { return bfs.Rename("file", "file2") }},
		{"remove", func() error { return bfs.Remove("file") }},
		{"remove symlink", func() error { return bfs.Remove("dangling") }},
		{"mkdirall", func() error { return bfs.MkdirAll("d/e", 0o755) }},
		{"symlink", func() error { return bfs.Symlink("file", "l") }},
		{"chmod", func() error { return change.Chmod("file", 0o600) }},
		{"chown", func() error { return change.Chown("file", 0, 0) }},
		{"lchown", func() error { return change.Lchown("tofile", 0, 0) }},
		{"chtimes", func() error { return change.Chtimes("file", time.Unix(1, 0), time.Unix(1, 0)) }},
		{"link", func() error { return f.Link("file", "hard") }},
		{"mknod", func() error { return f.Mknod("dev", 0o600, 1, 3) }},
		{"mkfifo", func() error { return f.Mkfifo("fifo", 0o600) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.op()
			if !errors.Is(err, fs.ErrPermission) || !errors.Is(err, syscall.EROFS) || !errors.Is(err, ErrReadOnly) {
				t.Errorf("err = %v; want ErrReadOnly (fs.ErrPermission, EROFS)", err)
			}
		})
	}
	if after := snapshot(t, exp); !slices.Equal(before, after) {
		t.Errorf("export changed:\nbefore %q\nafter  %q", before, after)
	}
	if billy.CapabilityCheck(bfs, billy.WriteCapability) {
		t.Error("read-only filesystem has WriteCapability")
	}
	if err := readAll(bfs, "file"); err != nil {
		t.Errorf("read: %v", err)
	}
}

func TestSpecialFilesRefused(t *testing.T) {
	bfs, exp, _ := setup(t, false)
	f := bfs.(*FS)
	tests := []struct {
		name string
		op   func() error
	}{
		{"openfile device", func() error { _, err := bfs.OpenFile("dev", os.O_CREATE|os.O_RDWR, fs.ModeDevice|0o600); return err }},
		{"openfile chardev", func() error {
			_, err := bfs.OpenFile("dev", os.O_CREATE|os.O_RDWR, fs.ModeDevice|fs.ModeCharDevice|0o600)
			return err
		}},
		{"openfile fifo", func() error { _, err := bfs.OpenFile("dev", os.O_CREATE|os.O_RDWR, fs.ModeNamedPipe|0o600); return err }},
		{"mknod", func() error { return f.Mknod("dev", 0o600, 1, 3) }},
		{"mkfifo", func() error { return f.Mkfifo("dev", 0o600) }},
		{"socket", func() error { return f.Socket("dev") }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.op(); !errors.Is(err, ErrSpecialFile) || !errors.Is(err, fs.ErrPermission) {
				t.Errorf("err = %v; want ErrSpecialFile", err)
			}
			if _, err := os.Lstat(filepath.Join(exp, "dev")); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("dev exists: %v", err)
			}
		})
	}
}

func TestReadWrite(t *testing.T) {
	bfs, exp, _ := setup(t, false)
	f, err := bfs.Create("/dir/new")
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Lock(); err != nil {
		t.Error(err)
	}
	if _, err := f.Write([]byte("hello")); err != nil {
		t.Error(err)
	}
	if _, ok := f.(io.WriterAt); !ok {
		t.Error("file is not an io.WriterAt")
	}
	if err := f.Unlock(); err != nil {
		t.Error(err)
	}
	if f.Name() != "/dir/new" {
		t.Errorf("Name = %q", f.Name())
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(exp, "dir/new")); err != nil || string(b) != "hello" {
		t.Errorf("content %q, %v", b, err)
	}
	if err := bfs.Rename("dir/new", "/renamed"); err != nil {
		t.Fatal(err)
	}
	if err := bfs.(*FS).Link("renamed", "hard"); err != nil {
		t.Fatal(err)
	}
	tf, err := bfs.TempFile("dir", "tmp")
	if err != nil {
		t.Fatal(err)
	}
	tf.Close()
	infos, err := bfs.ReadDir("/")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, fi := range infos {
		names = append(names, fi.Name())
		if _, ok := fi.Sys().(*syscall.Stat_t); !ok {
			t.Errorf("%s: Sys is %T", fi.Name(), fi.Sys())
		}
	}
	for _, want := range []string{"renamed", "hard", "dangling", "dir"} {
		if !slices.Contains(names, want) {
			t.Errorf("ReadDir lacks %q: %q", want, names)
		}
	}
	if err := bfs.MkdirAll("a/b/c", 0o750); err != nil {
		t.Fatal(err)
	}
	if err := bfs.Remove("a/b/c"); err != nil {
		t.Error(err)
	}
	if err := bfs.Remove("/"); err == nil {
		t.Error("removing the root succeeded")
	}
	sub, err := bfs.Chroot("dir")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sub.Stat(filepath.Base(tf.Name())); err != nil {
		t.Errorf("chroot stat: %v", err)
	}
	if _, err := sub.Stat("../file"); err == nil {
		t.Error("chroot reached its parent")
	}
	if !billy.CapabilityCheck(bfs, billy.WriteCapability) {
		t.Error("no WriteCapability")
	}
}
