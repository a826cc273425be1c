package spool

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"
)

// TestAckWaitsForSync holds the committer's sync: Submit and Create do
// not return before it is over, and each costs one sync.
func TestAckWaitsForSync(t *testing.T) {
	release := make(chan struct{})
	var syncs atomic.Int32
	testSyncHook = func() error {
		syncs.Add(1)
		<-release
		return nil
	}
	defer func() { testSyncHook = nil }()
	s := open(t, testOptions(t))
	if err := s.Pause("p"); err != nil {
		t.Fatal(err)
	}
	returned := make(chan Job, 1)
	go func() {
		j, err := s.Submit(context.Background(), JobSpec{Printer: "p"}, bytes.NewReader(psDoc(1)), "")
		if err != nil {
			t.Error(err)
		}
		returned <- j
	}()
	waitFor(t, "sync started", func() bool { return syncs.Load() == 1 })
	select {
	case <-returned:
		t.Fatal("Submit returned before its sync")
	case <-time.After(50 * time.Millisecond):
	}
	if n := len(s.Jobs("", nil)); n != 0 {
		t.Errorf("%d jobs visible before the sync", n)
	}
	close(release)
	j := <-returned
	if got := syncs.Load(); got != 1 {
		t.Errorf("Submit took %d syncs, want 1", got)
	}
	if _, err := s.Create(JobSpec{Printer: "p"}); err != nil {
		t.Fatal(err)
	}
	if got := syncs.Load(); got != 2 {
		t.Errorf("Create took %d syncs, want 1", got-1)
	}
	// An update: one journal entry, one sync.
	if _, err := s.Hold(j.ID); err != nil {
		t.Fatal(err)
	}
	if got := syncs.Load(); got != 3 {
		t.Errorf("Hold took %d syncs, want 1", got-2)
	}
}

// TestSyncFailure injects a failing sync: nothing is acknowledged, no
// job appears, in memory or after a restart; the failure is sticky until
// the spool is reopened.
func TestSyncFailure(t *testing.T) {
	var fail atomic.Bool
	errInjected := errors.New("injected I/O error")
	testSyncHook = func() error {
		if fail.Load() {
			return errInjected
		}
		return nil
	}
	defer func() { testSyncHook = nil }()
	opts := testOptions(t)
	s, err := Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Pause("p"); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	held, err := s.Submit(ctx, JobSpec{Printer: "p", Hold: true}, bytes.NewReader(psDoc(1)), "")
	if err != nil {
		t.Fatal(err)
	}
	incoming, err := s.Create(JobSpec{Printer: "p"})
	if err != nil {
		t.Fatal(err)
	}

	fail.Store(true)
	if _, err := s.Submit(ctx, JobSpec{Printer: "p"}, bytes.NewReader(psDoc(1)), ""); !errors.Is(err, errInjected) {
		t.Errorf("Submit: %v, want the injected error", err)
	}
	fail.Store(false) // sticky: what follows fails all the same
	if _, err := s.Create(JobSpec{Printer: "p"}); !errors.Is(err, errInjected) {
		t.Errorf("Create: %v, want the injected error", err)
	}
	if _, err := s.AddDocument(ctx, incoming.ID, bytes.NewReader(psDoc(2)), "", true); !errors.Is(err, errInjected) {
		t.Errorf("AddDocument: %v, want the injected error", err)
	}
	if _, err := s.Release(held.ID); !errors.Is(err, errInjected) {
		t.Errorf("Release: %v, want the injected error", err)
	}
	if n := len(s.Jobs("", nil)); n != 2 {
		t.Errorf("%d jobs after failed syncs, want 2", n)
	}
	if j, _ := s.Job(incoming.ID); j.Documents != 0 || j.Closed {
		t.Errorf("job after a failed AddDocument: %+v", j)
	}
	for _, dir := range []string{jobsDir, docsDir} {
		ents, _ := os.ReadDir(filepath.Join(opts.Dir, dir))
		for _, e := range ents {
			if filepath.Ext(e.Name()) == tmpSuffix {
				t.Errorf("%s left in %s", e.Name(), dir)
			}
		}
	}
	if n, _ := os.ReadDir(filepath.Join(opts.Dir, docsDir)); len(n) != 1 {
		t.Errorf("docs holds %d files, want 1", len(n))
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s2 := open(t, opts)
	if err := s2.Pause("p"); err != nil {
		t.Fatal(err)
	}
	if n := len(s2.Jobs("", nil)); n != 2 {
		t.Errorf("%d jobs after reopening, want 2", n)
	}
	if j, _ := s2.Job(held.ID); j.State != PendingHeld {
		t.Errorf("held job after reopening: %+v", j)
	}
	j, err := s2.AddDocument(ctx, incoming.ID, bytes.NewReader(psDoc(2)), "", true)
	if err != nil || j.Documents != 1 {
		t.Fatalf("AddDocument after reopening: %+v, %v", j, err)
	}
}

// TestEndRecorded checks that the end of a printed job, recorded without
// waiting, is on disk after Close: the job does not print again.
func TestEndRecorded(t *testing.T) {
	opts := testOptions(t)
	s, err := Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	var ids []int
	for range 20 {
		ids = append(ids, submit(t, s, JobSpec{}, psDoc(1), "").ID)
	}
	for _, id := range ids {
		waitState(t, s, id, Completed)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		if rec, ok := journalRecord(t, opts.Dir, id); !ok || rec.State != Completed {
			t.Errorf("job %d in the journal: %+v, %v", id, rec, ok)
		}
	}
	s2 := open(t, opts)
	for _, id := range ids {
		if j, _ := s2.Job(id); j.State != Completed {
			t.Errorf("job %d after restart: %+v", id, j)
		}
	}
}

// TestEmptyRecord reopens a spool in which a crash left the empty record
// of a job being created: it goes, quietly, with its document.
func TestEmptyRecord(t *testing.T) {
	opts := testOptions(t)
	s, err := Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Pause("p"); err != nil {
		t.Fatal(err)
	}
	j := submit(t, s, JobSpec{}, psDoc(1), "")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	id := j.ID + 1
	for _, f := range []string{filepath.Join(jobsDir, itoa(id)+".json"), filepath.Join(docsDir, itoa(id)+"-1.ps")} {
		if err := os.WriteFile(filepath.Join(opts.Dir, f), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	s2 := open(t, opts)
	if _, ok := s2.Job(id); ok {
		t.Error("job of an empty record loaded")
	}
	for _, f := range []string{filepath.Join(jobsDir, itoa(id)+".json"), filepath.Join(jobsDir, itoa(id)+".json.bad"), filepath.Join(docsDir, itoa(id)+"-1.ps")} {
		if _, err := os.Stat(filepath.Join(opts.Dir, f)); err == nil {
			t.Errorf("%s still there", f)
		}
	}
	if next := submit(t, s2, JobSpec{}, psDoc(1), ""); next.ID <= id {
		t.Errorf("new job id %d after %d", next.ID, id)
	}
}

// TestJournalCompaction makes the journal compact itself while jobs
// change: it shrinks to the latest record of each job, appends go on in
// the new file, and a reopened spool finds every job as it was last.
func TestJournalCompaction(t *testing.T) {
	opts := testOptions(t)
	s := open(t, opts)
	if err := s.Pause("p"); err != nil {
		t.Fatal(err)
	}
	var ids []int
	for range 5 {
		ids = append(ids, submit(t, s, JobSpec{Hold: true}, psDoc(1), "").ID)
	}
	size := func() int64 {
		fi, err := os.Stat(filepath.Join(opts.Dir, journalFile))
		if err != nil {
			t.Fatal(err)
		}
		return fi.Size()
	}
	for range 20 { // many entries of one job
		if _, err := s.Release(ids[0]); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Hold(ids[0]); err != nil {
			t.Fatal(err)
		}
	}
	before := size()
	s.jmu.Lock()
	s.jcompactAt = s.jsize + 1 // the next append compacts
	s.jmu.Unlock()
	if _, err := s.Release(ids[1]); err != nil {
		t.Fatal(err)
	}
	after := size()
	if after >= before/4 {
		t.Errorf("journal of %d bytes after compaction, %d before", after, before)
	}
	if _, err := s.Cancel(ids[2], ""); err != nil { // appended to the new file
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2 := open(t, opts)
	want := map[int]State{ids[0]: PendingHeld, ids[2]: Canceled, ids[3]: PendingHeld, ids[4]: PendingHeld}
	for id, st := range want {
		if j, ok := s2.Job(id); !ok || j.State != st {
			t.Errorf("job %d after reopening: %+v, want state %d", id, j, st)
		}
	}
	// Released: the reopened printer, not paused, may be printing it.
	if j, ok := s2.Job(ids[1]); !ok || j.State == PendingHeld || j.State == Canceled || j.State == Aborted {
		t.Errorf("released job %d after reopening: %+v", ids[1], j)
	}
}

// TestLazyCommit checks the two ways a lazy request (a printed job's
// end) reaches the disk: with the next sync somebody waits for, in the
// same batch, or on its own after lazyDelay when nobody asks.
func TestLazyCommit(t *testing.T) {
	batches := make(chan int, 16)
	testBatchHook = func(n int) { batches <- n }
	defer func() { testBatchHook = nil }()
	s := open(t, testOptions(t))
	if err := s.Pause("p"); err != nil {
		t.Fatal(err)
	}
	// Whatever Open and Pause committed is counted before this returns.
	if err := s.commit(); err != nil {
		t.Fatal(err)
	}
	for len(batches) > 0 {
		<-batches
	}

	t.Run("joins an eager sync", func(t *testing.T) {
		synced := make(chan error, 1)
		s.commitAsync(nil, func(err error) { synced <- err })
		if err := s.commit(); err != nil {
			t.Fatal(err)
		}
		if n := <-batches; n != 2 {
			t.Errorf("batch of %d requests, want the lazy one and the eager one together", n)
		}
		if err := <-synced; err != nil {
			t.Fatal(err)
		}
	})
	t.Run("syncs alone after the delay", func(t *testing.T) {
		synced := make(chan error, 1)
		start := time.Now()
		s.commitAsync(nil, func(err error) { synced <- err })
		if err := <-synced; err != nil {
			t.Fatal(err)
		}
		if d := time.Since(start); d < lazyDelay {
			t.Errorf("lazy request synced after %v, before the %v delay", d, lazyDelay)
		}
		if n := <-batches; n != 1 {
			t.Errorf("batch of %d requests, want 1", n)
		}
	})
}
