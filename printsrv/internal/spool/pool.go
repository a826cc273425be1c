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
// creating a job's document (falling back to creating when the pool is
// empty); records take no file of their own (journal.go). Nothing about
// durability changes: the file is renamed, then written, then covered by
// the job's commit like a created one; a crash before the commit leaves
// an empty or partial document that no durable record names, removed by
// Open. Files in Dir/free are never written, and Open empties the
// folder.
//
// Purged jobs' documents are not removed but moved to Dir/free (retired)
// and, after a commit has made the move durable, emptied and added to
// the pool (recycle): every freed inode would slow the next half minute
// of creates.

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
// from the pool if it has a file; an existing file at path is replaced.
func (s *Spool) createFile(path string, flag int) (*os.File, error) {
	select {
	case name := <-s.pool:
		if len(s.pool) < int(s.poolTarget.Load())/2 {
			s.wakePooler()
		}
		src := filepath.Join(s.dir, freeDir, name)
		if err := os.Rename(src, path); err == nil {
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
		// Create the file as without a pool.
		_ = os.Remove(src)
	default:
		// The pool ran dry: the pooler must keep more ahead.
		if t := s.poolTarget.Load(); t < poolMaxTarget {
			s.poolTarget.CompareAndSwap(t, t*2)
		}
		s.wakePooler()
	}
	// Replace, never truncate: the old file may be linked into a tray
	// (deliver).
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("create %q: %w", path, err)
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
