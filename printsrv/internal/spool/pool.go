package spool

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"

	"golang.org/x/sys/unix"
)

// The file pool.
//
// Creating a file can be the slowest step left of a submission once the
// syncs are shared. On ext4 without a journal (the test box's root
// filesystem) every inode allocation skips, one cache lookup each, the
// inodes deleted in the last half minute, and a spool that purges jobs,
// or shares its filesystem with programs that delete files, has many:
// a create measured there 0.1 to 1.5 ms against 30 µs for renaming an
// existing empty file. So a background goroutine keeps empty files ready
// in Dir/free, and the hot path renames one into place instead of
// creating its document and record (falling back to creating when the
// pool is empty). Nothing about durability changes: the file is renamed,
// then written, then covered by the job's commit like a created one; a
// crash before the commit leaves an empty or partial document that no
// durable record names, or an empty record, both removed by Open. Files
// in Dir/free are never written, and Open empties the folder.
//
// The pool is also what keeps that cost from growing: replacing a record
// through a rename would free the old record's inode, and every freed
// inode slows the next half minute of creates (an instant printer
// replaces one record per job). So a record is replaced by exchanging
// it with its temporary file (RENAME_EXCHANGE), the old file moves to
// Dir/free, and after a commit has made the exchange durable the
// committer empties it and adds it to the pool (retire, recycle). Until
// that commit it keeps the old record whole: a crash before it finds the
// old record or the new one at the record's name, never an emptied one.

// The pool's sizes. The pooler refills the pool to its target in one go
// whenever it falls below half of it; the target starts at
// poolMinTarget and doubles, up to poolMaxTarget, each time a
// submission finds the pool empty, so that it keeps ahead of the load it
// sees without creating thousands of files for a quiet spool. Files
// freed by the spool (replaced records, purged jobs) are recycled into
// it up to poolCap, and only beyond that unlinked: every unlink makes
// the next half minute of creates slower.
const (
	freeDir       = "free"
	poolCap       = 4096
	poolMinTarget = 256
	poolMaxTarget = 2048
)

// createFile creates path for writing (flag: os.O_WRONLY or os.O_RDWR),
// from the pool if it has a file. With excl, path must not exist yet;
// without, an existing file is replaced.
func (s *Spool) createFile(path string, flag int, excl bool) (*os.File, error) {
	select {
	case name := <-s.pool:
		if len(s.pool) < int(s.poolTarget.Load())/2 {
			s.wakePooler()
		}
		src := filepath.Join(s.dir, freeDir, name)
		var err error
		if excl {
			err = unix.Renameat2(unix.AT_FDCWD, src, unix.AT_FDCWD, path, unix.RENAME_NOREPLACE)
		} else {
			err = unix.Rename(src, path)
		}
		if err == nil {
			// No O_TRUNC: pool files are empty, and truncating
			// one makes ext4 write it back at close (auto_da_alloc),
			// one file at a time in the submitter's path, instead of
			// with the batch's sync.
			f, err := os.OpenFile(path, flag, 0o600)
			if err != nil {
				_ = os.Remove(path)
				return nil, fmt.Errorf("create %q: %w", path, err)
			}
			return f, nil
		}
		_ = os.Remove(src)
		if errors.Is(err, unix.EEXIST) {
			return nil, &fs.PathError{Op: "create", Path: path, Err: fs.ErrExist}
		}
		// Another error, such as no RENAME_NOREPLACE on this
		// filesystem: create the file as without a pool.
	default:
		// The pool ran dry: the pooler must keep more ahead.
		if t := s.poolTarget.Load(); t < poolMaxTarget {
			s.poolTarget.CompareAndSwap(t, t*2)
		}
		s.wakePooler()
	}
	if !excl {
		// Replace, never truncate: the old file may be linked into a
		// tray (deliver).
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("create %q: %w", path, err)
		}
	}
	f, err := os.OpenFile(path, flag|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("create %q: %w", path, err)
	}
	return f, nil
}

// pooler keeps the file pool filled until Close.
func (s *Spool) pooler() {
	defer s.workers.Done()
	dir := filepath.Join(s.dir, freeDir)
	for {
	fill:
		for len(s.pool) < int(s.poolTarget.Load()) && s.ctx.Err() == nil {
			name := s.freeName()
			path := filepath.Join(dir, name)
			f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
			if err != nil {
				// Submissions create their files themselves
				// meanwhile.
				s.log.Warn("spool file pool", "err", err)
				break
			}
			_ = f.Close()
			if !s.offer(name) {
				_ = os.Remove(path)
				break fill
			}
		}
		select {
		case <-s.ctx.Done():
			return
		case <-s.poolWake:
		}
	}
}

// wakePooler asks the pooler to refill the pool, without blocking.
func (s *Spool) wakePooler() {
	select {
	case s.poolWake <- struct{}{}:
	default:
	}
}

// freeName returns a name for a new file in Dir/free.
func (s *Spool) freeName() string {
	return strconv.FormatInt(s.freeSeq.Add(1), 10)
}

// offer adds an empty file of Dir/free to the pool, unless it is full.
func (s *Spool) offer(name string) bool {
	select {
	case s.pool <- name:
		return true
	default:
		return false
	}
}

// replaceFile atomically puts the file tmp at path. The file it replaces
// is not freed but retired to the pool.
func (s *Spool) replaceFile(tmp, path string) error {
	err := unix.Renameat2(unix.AT_FDCWD, tmp, unix.AT_FDCWD, path, unix.RENAME_EXCHANGE)
	if err == nil {
		s.retire(tmp) // tmp is the old file now
		return nil
	}
	// ENOENT: no file at path to exchange with (or no tmp, which the
	// rename reports). EINVAL: no exchange on this filesystem.
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	return nil
}

// retire moves a file that no name of the spool needs any more to
// Dir/free, where the committer empties it and gives it to the pool
// after the next sync; see the comment at the top.
func (s *Spool) retire(path string) {
	name := s.freeName()
	if err := os.Rename(path, filepath.Join(s.dir, freeDir, name)); err != nil {
		_ = os.Remove(path)
		return
	}
	s.retireMu.Lock()
	s.retired = append(s.retired, name)
	s.retireMu.Unlock()
}

// retireOrRemove takes a file out of the spool: retired to the pool if
// the pool has room, else removed. A missing file is no error.
func (s *Spool) retireOrRemove(path string) error {
	if len(s.pool) < poolCap {
		name := s.freeName()
		err := os.Rename(path, filepath.Join(s.dir, freeDir, name))
		if err == nil {
			s.retireMu.Lock()
			s.retired = append(s.retired, name)
			s.retireMu.Unlock()
			return nil
		}
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// takeRetired returns the files retired so far; the committer calls it
// before a sync, and recycles them after the sync if it succeeds.
func (s *Spool) takeRetired() []string {
	s.retireMu.Lock()
	defer s.retireMu.Unlock()
	r := s.retired
	s.retired = nil
	return r
}

// recycle empties retired files, now durably out of the spool's names,
// and gives them to the pool; beyond its capacity they are removed.
func (s *Spool) recycle(names []string) {
	for _, name := range names {
		path := filepath.Join(s.dir, freeDir, name)
		if len(s.pool) >= poolCap || emptyFile(path) != nil || !s.offer(name) {
			_ = os.Remove(path)
		}
	}
}

// emptyFile truncates the file at path to zero bytes, unless another name
// links to it (a document delivered to a tray as a hard link): such a
// file is refused, so that the pool never empties a tray's document. It
// truncates through a descriptor it then closes, which clears the mark
// ext4 sets on a truncated inode to write it back at its next close
// (auto_da_alloc): the job that reuses the file would pay for it.
func emptyFile(path string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|unix.O_NOFOLLOW, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return err
	}
	if st.Nlink != 1 || st.Mode&unix.S_IFMT != unix.S_IFREG {
		return fmt.Errorf("%q is not a regular file with one link", path)
	}
	if st.Size == 0 {
		return nil
	}
	return f.Truncate(0)
}

// resetPool creates the pool's folder and gives the files a previous run
// left there to the pool, emptied, instead of removing them (which would
// slow creates down): none of them is part of the spool. Only a file
// that a crash left with another name besides (a rename half done on a
// filesystem without a journal, whose link count fsck then raised) is
// removed, unemptied. The caller holds no pool file yet.
func (s *Spool) resetPool() error {
	dir := filepath.Join(s.dir, freeDir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create folder: %w", err)
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("read folder %q: %w", dir, err)
	}
	var seq int64
	for _, e := range ents {
		name := e.Name()
		path := filepath.Join(dir, name)
		n, nerr := strconv.ParseInt(name, 10, 64)
		var st unix.Stat_t
		if nerr == nil && n > 0 && e.Type().IsRegular() && len(s.pool) < poolCap &&
			unix.Lstat(path, &st) == nil && st.Nlink == 1 && (st.Size == 0 || emptyFile(path) == nil) {
			s.pool <- name
			seq = max(seq, n)
			continue
		}
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("remove from the file pool: %w", err)
		}
	}
	s.freeSeq.Store(seq)
	return nil
}
