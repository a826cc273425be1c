// Package rootfs is a go-billy filesystem confined to one folder by Go's
// os.Root: no path, "..", absolute or relative symlink can reach outside
// it, and symlinks themselves are removed, renamed and read as links,
// never followed to their targets.
//
// It exists because neither mode of go-billy v5.9.2's osfs is both safe and
// correct for a file server: the chroot mode follows symlinks out of the
// folder, and the bound mode resolves symlinks in every path, so removing a
// symlink deletes its target and a dangling symlink cannot be removed (see
// TestBillyBoundOSRemovesSymlinkTarget).
package rootfs

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/go-git/go-billy/v5"
	"golang.org/x/sys/unix"
)

// ErrReadOnly is the error inside every change refused by a read-only
// filesystem. It wraps syscall.EROFS (so callers can answer NFS3ERR_ROFS)
// and errors.Is also matches it to fs.ErrPermission and billy.ErrReadOnly.
// os.IsPermission does not see it: use errors.Is.
var ErrReadOnly error = roError{}

// ErrSpecialFile is the error inside a refused creation of a device file,
// FIFO or socket; errors.Is matches it to fs.ErrPermission.
var ErrSpecialFile error = specialError{}

type roError struct{}

func (roError) Error() string   { return "read-only file system" }
func (roError) Unwrap() error   { return syscall.EROFS }
func (roError) Is(t error) bool { return t == fs.ErrPermission || t == billy.ErrReadOnly }

type specialError struct{}

func (specialError) Error() string   { return "special files cannot be created" }
func (specialError) Unwrap() error   { return syscall.EPERM }
func (specialError) Is(t error) bool { return t == fs.ErrPermission }

// FS is a billy.Filesystem (with billy.Change, billy.Symlink, billy.Capable
// and go-nfs's UnixChange) over an *os.Root. It is safe for concurrent use.
type FS struct {
	root     *os.Root
	readOnly bool
}

// Interfaces FS satisfies; go-nfs finds Change, Capabilities and Link by
// type assertion.
var (
	_ billy.Filesystem = (*FS)(nil)
	_ billy.Change     = (*FS)(nil)
	_ billy.Capable    = (*FS)(nil)
)

// New returns a billy filesystem over root. With readOnly every change
// fails with an error wrapping ErrReadOnly, for which
// errors.Is(err, fs.ErrPermission) and errors.Is(err, syscall.EROFS) hold,
// and Capabilities lacks billy.WriteCapability. The caller keeps owning
// root (and closes it).
func New(root *os.Root, readOnly bool) billy.Filesystem {
	return &FS{root: root, readOnly: readOnly}
}

// Clean turns a billy path into a name for os.Root: leading slashes are
// stripped (billy paths are relative to the filesystem even when they start
// with "/"), the rest is cleaned, and "" becomes ".". A ".." that climbs
// above the root is kept, so that os.Root refuses it rather than this
// function silently confining it.
func Clean(name string) string {
	name = strings.TrimLeft(name, "/")
	if name == "" {
		return "."
	}
	return path.Clean(name)
}

func (f *FS) refuse(op, name string) error {
	return &fs.PathError{Op: op, Path: name, Err: ErrReadOnly}
}

// Create creates or truncates a file, as os.Create.
func (f *FS) Create(filename string) (billy.File, error) {
	return f.OpenFile(filename, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o666)
}

// Open opens a file for reading.
func (f *FS) Open(filename string) (billy.File, error) {
	return f.OpenFile(filename, os.O_RDONLY, 0)
}

const writeFlags = os.O_WRONLY | os.O_RDWR | os.O_CREATE | os.O_TRUNC | os.O_APPEND

// OpenFile opens a file as os.OpenFile does, inside the root. perm may hold
// only permission bits (and setuid, setgid, sticky): a request to create a
// device, FIFO, socket or any other special file is refused.
func (f *FS) OpenFile(filename string, flag int, perm os.FileMode) (billy.File, error) {
	name := Clean(filename)
	if f.readOnly && flag&writeFlags != 0 {
		return nil, f.refuse("open", filename)
	}
	if perm&fs.ModeType != 0 {
		return nil, &fs.PathError{Op: "open", Path: filename, Err: ErrSpecialFile}
	}
	fl, err := f.root.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return &file{File: fl, name: filename}, nil
}

// Stat returns the FileInfo of filename, following a final symlink (within
// the root only).
func (f *FS) Stat(filename string) (os.FileInfo, error) {
	return f.root.Stat(Clean(filename))
}

// Lstat returns the FileInfo of filename without following a final symlink.
func (f *FS) Lstat(filename string) (os.FileInfo, error) {
	return f.root.Lstat(Clean(filename))
}

// Rename renames oldpath to newpath. A symlink is renamed as a link; the
// destination's parent must exist (NFS RENAME does not create folders).
func (f *FS) Rename(oldpath, newpath string) error {
	if f.readOnly {
		return f.refuse("rename", oldpath)
	}
	return f.root.Rename(Clean(oldpath), Clean(newpath))
}

// Remove removes a file, an empty folder or a symlink (never its target; a
// dangling symlink is removable too).
func (f *FS) Remove(filename string) error {
	if f.readOnly {
		return f.refuse("remove", filename)
	}
	name := Clean(filename)
	if name == "." {
		// Removing the export root is never meant.
		return &fs.PathError{Op: "remove", Path: filename, Err: fs.ErrInvalid}
	}
	return f.root.Remove(name)
}

// Join joins path elements with "/", as billy paths are; the result is
// resolved inside the root by every method.
func (f *FS) Join(elem ...string) string {
	return path.Join(elem...)
}

var tempSeq atomic.Uint64

// TempFile creates a new file named dir/prefix plus a random suffix, open
// for reading and writing, as os.CreateTemp.
func (f *FS) TempFile(dir, prefix string) (billy.File, error) {
	if f.readOnly {
		return nil, f.refuse("open", path.Join(dir, prefix))
	}
	seed := uint64(time.Now().UnixNano())
	for range 10000 {
		n := tempSeq.Add(1)*0x9e3779b97f4a7c15 ^ seed
		name := path.Join(Clean(dir), prefix+strconv.FormatUint(n%1e10, 10))
		fl, err := f.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		return fl, err
	}
	return nil, &fs.PathError{Op: "createtemp", Path: path.Join(dir, prefix), Err: fs.ErrExist}
}

// ReadDir returns the entries of a folder, in directory order, as lstat'ed
// FileInfos (whose Sys is a *syscall.Stat_t).
func (f *FS) ReadDir(dirname string) ([]os.FileInfo, error) {
	d, err := f.root.Open(Clean(dirname))
	if err != nil {
		return nil, err
	}
	defer d.Close()
	return d.Readdir(-1)
}

// MkdirAll creates a folder and any missing parents.
func (f *FS) MkdirAll(filename string, perm os.FileMode) error {
	if f.readOnly {
		return f.refuse("mkdir", filename)
	}
	return f.root.MkdirAll(Clean(filename), perm.Perm()|perm&(fs.ModeSetgid|fs.ModeSticky))
}

// Symlink creates link pointing to target. The target is stored as given;
// following it is confined to the root like every other path.
func (f *FS) Symlink(target, link string) error {
	if f.readOnly {
		return f.refuse("symlink", link)
	}
	return f.root.Symlink(target, Clean(link))
}

// Readlink returns the target of a symlink.
func (f *FS) Readlink(link string) (string, error) {
	return f.root.Readlink(Clean(link))
}

// Chroot returns the filesystem of a folder inside this one, confined to
// that folder. It holds a descriptor of its own, released when it is
// garbage collected.
func (f *FS) Chroot(p string) (billy.Filesystem, error) {
	r, err := f.root.OpenRoot(Clean(p))
	if err != nil {
		return nil, fmt.Errorf("chroot %s: %w", p, err)
	}
	return &FS{root: r, readOnly: f.readOnly}, nil
}

// Root returns the name of the root folder.
func (f *FS) Root() string { return f.root.Name() }

// Capabilities reports what the filesystem supports; a read-only one lacks
// WriteCapability, ReadAndWriteCapability and TruncateCapability.
func (f *FS) Capabilities() billy.Capability {
	if f.readOnly {
		return billy.ReadCapability | billy.SeekCapability | billy.LockCapability
	}
	return billy.DefaultCapabilities
}

// Chmod changes the mode of a file (following a final symlink, within the
// root only).
func (f *FS) Chmod(name string, mode os.FileMode) error {
	if f.readOnly {
		return f.refuse("chmod", name)
	}
	return f.root.Chmod(Clean(name), mode)
}

// Lchown changes the owner of a file or of a symlink itself.
func (f *FS) Lchown(name string, uid, gid int) error {
	if f.readOnly {
		return f.refuse("lchown", name)
	}
	return f.root.Lchown(Clean(name), uid, gid)
}

// Chown changes the owner of a file (following a final symlink, within the
// root only).
func (f *FS) Chown(name string, uid, gid int) error {
	if f.readOnly {
		return f.refuse("chown", name)
	}
	return f.root.Chown(Clean(name), uid, gid)
}

// Chtimes changes the access and modification times of a file (following a
// final symlink, within the root only).
func (f *FS) Chtimes(name string, atime, mtime time.Time) error {
	if f.readOnly {
		return f.refuse("chtimes", name)
	}
	return f.root.Chtimes(Clean(name), atime, mtime)
}

// Link creates newname as a hard link to oldname (go-nfs's UnixChange).
func (f *FS) Link(oldname, newname string) error {
	if f.readOnly {
		return f.refuse("link", newname)
	}
	return f.root.Link(Clean(oldname), Clean(newname))
}

// Mknod refuses: clients may not create device files (go-nfs's UnixChange).
func (f *FS) Mknod(name string, mode, major, minor uint32) error {
	return f.refuseSpecial("mknod", name)
}

// Mkfifo refuses: clients may not create special files (go-nfs's UnixChange).
func (f *FS) Mkfifo(name string, mode uint32) error {
	return f.refuseSpecial("mkfifo", name)
}

// Socket refuses: clients may not create special files (go-nfs's UnixChange).
func (f *FS) Socket(name string) error {
	return f.refuseSpecial("mksock", name)
}

func (f *FS) refuseSpecial(op, name string) error {
	if f.readOnly {
		return f.refuse(op, name)
	}
	return &fs.PathError{Op: op, Path: name, Err: ErrSpecialFile}
}

// file is an *os.File with billy's Name, Lock and Unlock. Embedding keeps
// WriteAt, Sync, Stat and Readdir available to type assertions.
type file struct {
	*os.File
	name string
}

// Name returns the name the file was opened with.
func (f *file) Name() string { return f.name }

// Lock takes an exclusive flock on the file.
func (f *file) Lock() error { return f.flock(unix.LOCK_EX) }

// Unlock releases the flock.
func (f *file) Unlock() error { return f.flock(unix.LOCK_UN) }

func (f *file) flock(how int) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return fmt.Errorf("flock %s: %w", f.name, err)
	}
	var ferr error
	if err := rc.Control(func(fd uintptr) {
		for {
			ferr = unix.Flock(int(fd), how)
			if ferr != unix.EINTR {
				return
			}
		}
	}); err != nil {
		return fmt.Errorf("flock %s: %w", f.name, err)
	}
	if ferr != nil {
		return &fs.PathError{Op: "flock", Path: f.name, Err: ferr}
	}
	return nil
}
