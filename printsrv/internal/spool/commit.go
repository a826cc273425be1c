package spool

import (
	"path/filepath"
	"sync"
)

// commitReq asks the committer to sync folders and answer on done.
type commitReq struct {
	dirs int // syncJobs, syncDocs
	done chan error
}

// commit makes the names created in the spool folders so far durable.
// Concurrent callers share one fsync per folder: the committer takes
// every request queued while it was syncing as one batch, so each batch
// covers every rename its callers made before asking.
func (s *Spool) commit(dirs int) error {
	req := commitReq{dirs: dirs, done: make(chan error, 1)}
	s.commits <- req
	return <-req.done
}

// committer serves commit requests in batches until the channel closes.
func (s *Spool) committer() {
	defer close(s.done)
	for req := range s.commits {
		batch := []commitReq{req}
		dirs := req.dirs
	more:
		for {
			select {
			case r, ok := <-s.commits:
				if !ok {
					break more
				}
				batch = append(batch, r)
				dirs |= r.dirs
			default:
				break more
			}
		}
		if s.batchHook != nil {
			s.batchHook(len(batch))
		}
		// The two folders are synced side by side: the device takes
		// concurrent flushes about as fast as one.
		var docErr, err error
		var wg sync.WaitGroup
		if dirs&syncDocs != 0 {
			wg.Go(func() { docErr = syncDir(filepath.Join(s.dir, docsDir)) })
		}
		if dirs&syncJobs != 0 {
			err = syncDir(filepath.Join(s.dir, jobsDir))
		}
		wg.Wait()
		if err == nil {
			err = docErr
		}
		if err != nil {
			s.log.Error("spool commit", "err", err)
		}
		for _, r := range batch {
			r.done <- err
		}
	}
}
