package spool

import (
	"errors"
	"fmt"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// Durability.
//
// Nothing on the hot path fsyncs a single file. Writers put their
// documents and records in the page cache (write, create, rename) and
// then ask for a commit; the committer takes every request queued while
// it was busy as one batch and makes the whole batch durable with one
// syncfs(2) of the spool's filesystem, then wakes the batch's waiters.
// One submitter thus pays one sync per job instead of three, and
// concurrent submitters share one. Requests nobody waits for (a printed
// job's end, a purge) are lazy: they ride along with the next sync that
// somebody waits for, or get one of their own lazyDelay later, so that
// an instant printer does not put a second sync in front of every
// submitter.
//
// Why syncfs covers everything a waiter did before asking: syncfs runs
// sync_filesystem, which writes back every dirty inode and page of the
// filesystem (our documents' and records' data, their inodes, and the
// directories holding the names we created, renamed or removed), waits
// for that writeback, has the filesystem commit its journal (ext4_sync_fs:
// a jbd2 commit and a device cache flush; XFS: a synchronous log force),
// and finally writes and waits for the block device's own dirty buffers.
// That last step matters on ext4 without a journal (the test box's root
// filesystem is one): there, directory blocks and inode tables are plain
// block-device buffers written by that final step, after ext4_sync_fs's
// cache flush, so they could still sit in the device's volatile cache.
// So after syncfs the committer fsyncs the spool folder, which is clean
// by then and costs only the cache flush that every ext4 fsync issues
// (tens of microseconds measured): when it returns, the data and names
// of every file written before the batch was taken are on stable
// storage, whatever the order of the operations was. Since Linux 5.8,
// syncfs also reports writeback errors that happened on the filesystem
// since the descriptor sampled them; the spool keeps its descriptors open
// from Open to Close so that no error between two commits is missed.
// But an error is reported once, to whichever sync comes first, which
// may be an earlier batch than the one whose page failed (its writers
// were still writing while that sync ran): so a failed sync is sticky,
// and the spool acknowledges nothing more until it is reopened, when
// Open finds what is really on disk.
//
// The price is that syncfs also flushes other programs' dirty data on
// the same filesystem; a spool on a busy shared filesystem may see
// slower commits, never weaker ones.
//
// What a crash before the sync can leave, and why it is harmless:
//   - a document not yet named by any durable record: Open removes it;
//   - journal entries written after the last sync, possibly torn or
//     zeroed: none of them was acknowledged, since acknowledgement waits
//     for the sync; Open stops reading at the first entry that does not
//     check out (journal.go), so a job's record is the last one that
//     reached the disk whole.
//
// A sync that fails leaves entries of unacknowledged changes in the
// journal's page cache; the spool appends the records from before them
// again (undoRecord), so that a spool reopened on what reached the disk
// shows none of those changes.

// commitReq asks the committer for a sync. done, if not nil, gets its
// result; after, if not nil, is called with it by the committer once the
// sync is over, for work that must follow the sync without anyone
// waiting.
type commitReq struct {
	done  chan error
	after func(error)
	extra *os.File // another filesystem to sync too, or nil
	lazy  bool     // may wait up to lazyDelay for another request's sync
}

// lazyDelay is how long a lazy request (a printed job's end, a purge's
// recycling) waits for a sync that someone waits for. An instant printer
// finishes a job right after each acknowledgement; a sync of its own
// would make the next submitter wait for two syncs instead of one.
const lazyDelay = 100 * time.Millisecond

// testSyncHook, when set by a test before Open, replaces each batch's
// sync: fault injection.
var testSyncHook func() error

// commit makes what the caller wrote in the spool so far durable.
// Concurrent callers share one sync: the committer takes every request
// queued while it was syncing as one batch, so each batch covers every
// write its callers made before asking.
func (s *Spool) commit() error {
	req := commitReq{done: make(chan error, 1)}
	s.commits <- req
	return <-req.done
}

// commitAsync asks for a sync without waiting for it; after runs in the
// committer once the sync is over, with its result. The sync is lazy: it
// is the next one anybody waits for, or one lazyDelay later at most.
func (s *Spool) commitAsync(extra *os.File, after func(error)) {
	s.commits <- commitReq{after: after, extra: extra, lazy: true}
}

// committer serves commit requests in batches until the channel closes.
func (s *Spool) committer() {
	defer close(s.done)
	var (
		batch []commitReq
		timer = time.NewTimer(time.Hour)
		open  = true
	)
	timer.Stop()
	for open {
		// Collect a batch: wait for a request; lazy ones wait for an
		// eager one, the delay, or the end, whichever comes first.
		eager := false
		for !eager && open {
			var deadline <-chan time.Time
			if len(batch) > 0 {
				deadline = timer.C
			}
			select {
			case r, ok := <-s.commits:
				if !ok {
					open = false
					break
				}
				if len(batch) == 0 {
					timer.Reset(lazyDelay)
				}
				batch = append(batch, r)
				eager = !r.lazy
			case <-deadline:
				eager = true
			}
		}
		timer.Stop()
	more:
		for open {
			select {
			case r, ok := <-s.commits:
				if !ok {
					open = false
					break more
				}
				batch = append(batch, r)
			default:
				break more
			}
		}
		if len(batch) == 0 {
			continue
		}
		s.runBatch(batch)
		batch = nil
	}
}

// runBatch makes one batch durable and tells its requests.
func (s *Spool) runBatch(batch []commitReq) {
	if s.batchHook != nil {
		s.batchHook(len(batch))
	}
	retired := s.takeRetired()
	err := s.syncBatch(batch)
	if err != nil {
		s.log.Error("spool commit", "err", err)
	} else {
		s.recycle(retired)
	}
	for _, r := range batch {
		if r.done != nil {
			r.done <- err
		}
		if r.after != nil {
			r.after(err)
		}
	}
}

// syncBatch makes the spool's filesystems durable, and those the batch
// names besides. Only the committer calls it.
func (s *Spool) syncBatch(batch []commitReq) error {
	if s.syncErr != nil {
		return fmt.Errorf("an earlier sync failed, reopen the spool: %w", s.syncErr)
	}
	err := s.syncAll(batch)
	if err != nil {
		s.syncErr = err
	}
	return err
}

// syncAll does syncBatch's work.
func (s *Spool) syncAll(batch []commitReq) error {
	if s.syncHook != nil {
		return s.syncHook()
	}
	fds := s.syncFDs
	for _, r := range batch {
		if r.extra != nil && !containsFile(fds, r.extra) {
			if len(fds) == len(s.syncFDs) {
				fds = append([]*os.File(nil), fds...)
			}
			fds = append(fds, r.extra)
		}
	}
	var errs []error
	for _, f := range fds {
		if err := syncfs(f); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) == 0 {
		// The cache flush (see the comment at the top).
		for _, f := range fds {
			if err := f.Sync(); err != nil {
				errs = append(errs, fmt.Errorf("flush %q: %w", f.Name(), err))
			}
		}
	}
	return errors.Join(errs...)
}

func containsFile(fs []*os.File, f *os.File) bool {
	for _, g := range fs {
		if g == f {
			return true
		}
	}
	return false
}

// syncfs syncs the whole filesystem holding the open folder f.
func syncfs(f *os.File) error {
	for {
		err := unix.Syncfs(int(f.Fd()))
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return fmt.Errorf("syncfs %q: %w", f.Name(), err)
		}
		return nil
	}
}

// openSyncFDs opens one folder of each filesystem that holds part of the
// spool: normally the spool folder alone; more if jobs or docs are
// mount points of their own.
func openSyncFDs(dirs ...string) ([]*os.File, error) {
	var fds []*os.File
	seen := make(map[uint64]bool)
	for _, d := range dirs {
		var st unix.Stat_t
		if err := unix.Stat(d, &st); err != nil {
			closeAll(fds)
			return nil, fmt.Errorf("stat %q: %w", d, err)
		}
		if seen[uint64(st.Dev)] {
			continue
		}
		seen[uint64(st.Dev)] = true
		f, err := os.Open(d)
		if err != nil {
			closeAll(fds)
			return nil, fmt.Errorf("open folder %q: %w", d, err)
		}
		fds = append(fds, f)
	}
	return fds, nil
}

// sameFS reports whether folders a and b are on one filesystem.
func sameFS(a, b string) (bool, error) {
	var sa, sb unix.Stat_t
	if err := unix.Stat(a, &sa); err != nil {
		return false, fmt.Errorf("stat %q: %w", a, err)
	}
	if err := unix.Stat(b, &sb); err != nil {
		return false, fmt.Errorf("stat %q: %w", b, err)
	}
	return sa.Dev == sb.Dev, nil
}

func closeAll(fs []*os.File) {
	for _, f := range fs {
		_ = f.Close()
	}
}
