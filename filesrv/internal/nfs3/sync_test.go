package nfs3

import (
	"fmt"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
)

// TestGroupCommit checks that creates waiting for a folder sync share
// the next one instead of syncing one by one.
func TestGroupCommit(t *testing.T) {
	v := newEnv(t)
	root := v.rootFH()
	var syncs atomic.Int32
	started := make(chan struct{})
	release := make(chan struct{})
	old := syncDir
	syncDir = func(f *os.File) error {
		if syncs.Add(1) == 1 {
			close(started)
			<-release // hold the first sync until the others queue up
		}
		return old(f)
	}
	t.Cleanup(func() { syncDir = old })
	const n = 8
	var wg sync.WaitGroup
	wg.Go(func() {
		if _, st := v.create(credRoot, root, "first", 0o644); st != nfsOK {
			t.Errorf("create first: %d", st)
		}
	})
	<-started
	for i := range n - 1 {
		wg.Go(func() {
			if _, st := v.create(credRoot, root, fmt.Sprintf("f%d", i), 0o644); st != nfsOK {
				t.Errorf("create f%d: %d", i, st)
			}
		})
	}
	// Wait until every create has asked for its sync.
	for {
		v.s.syncs.mu.Lock()
		queued := 0
		for _, ds := range v.s.syncs.m {
			queued = int(ds.requests)
		}
		v.s.syncs.mu.Unlock()
		if queued == n {
			break
		}
		runtime.Gosched()
	}
	close(release)
	wg.Wait()
	if got := syncs.Load(); got != 2 {
		t.Errorf("%d folder syncs for %d creates, want 2", got, n)
	}
}
