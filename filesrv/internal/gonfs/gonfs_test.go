package gonfs

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"example.com/appliance/filesrv/internal/oncrpc"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// nullCall returns a parsed NFSv3 NULL call.
func nullCall(t *testing.T, xid uint32) *oncrpc.Call {
	t.Helper()
	w := oncrpc.NewWriter(nil)
	oncrpc.AppendCall(w, xid, 100003, 3, 0, oncrpc.SysCred(oncrpc.Cred{Machine: "test", UID: 1000, GID: 1000}))
	c := new(oncrpc.Call)
	if err := oncrpc.ParseCall(w.Bytes(), c); err != nil {
		t.Fatal(err)
	}
	return c
}

func TestForwardNull(t *testing.T) {
	f := NewForwarder(NewHandler(nil, nil), 2, nil)
	defer f.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	stat, res, err := f.Forward(ctx, nullCall(t, 42))
	if err != nil || stat != oncrpc.Success || len(res) != 0 {
		t.Fatalf("Forward(NULL) = %v, %x, %v; want Success, no results", stat, res, err)
	}
}

// TestForwardConcurrent runs more calls at once than the pool has
// connections: they queue for one and all succeed.
func TestForwardConcurrent(t *testing.T) {
	f := NewForwarder(NewHandler(nil, nil), 3, nil)
	defer f.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, 50)
	for i := range 50 {
		c := nullCall(t, uint32(i+1))
		wg.Go(func() {
			stat, _, err := f.Forward(ctx, c)
			if err == nil && stat != oncrpc.Success {
				err = errors.New("not Success")
			}
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	f.mu.Lock()
	n := len(f.all)
	f.mu.Unlock()
	if n > 3 {
		t.Errorf("%d connections, want at most 3", n)
	}
}

func TestForwardAfterClose(t *testing.T) {
	f := NewForwarder(NewHandler(nil, nil), 0, nil)
	if _, _, err := f.Forward(context.Background(), nullCall(t, 1)); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if _, _, err := f.Forward(context.Background(), nullCall(t, 2)); !errors.Is(err, ErrClosed) {
		t.Errorf("Forward after Close: %v, want ErrClosed", err)
	}
	f.Close() // a second Close is harmless
}

func TestForwardCancelled(t *testing.T) {
	f := NewForwarder(NewHandler(nil, nil), 1, nil)
	defer f.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	f.sem <- struct{}{} // the only slot is taken: the call must give up
	defer func() { <-f.sem }()
	if _, _, err := f.Forward(ctx, nullCall(t, 1)); !errors.Is(err, context.Canceled) {
		t.Errorf("Forward with a cancelled context: %v", err)
	}
}
