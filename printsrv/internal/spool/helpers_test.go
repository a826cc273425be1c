package spool

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// clock is an injectable Now for tests of time-based behaviour.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// testOptions returns options for a spool in a fresh temporary folder
// with one instant printer "p".
func testOptions(t testing.TB) Options {
	dir := t.TempDir()
	return Options{
		Dir:      dir,
		Printers: []PrinterConfig{{Name: "p", Tray: filepath.Join(dir, "out")}},
		Logger:   slog.New(slog.DiscardHandler),
	}
}

// open opens a spool that is closed when the test ends.
func open(t testing.TB, opts Options) *Spool {
	t.Helper()
	s, err := Open(opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// waitFor polls cond until it holds or 10 s have passed.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond) // polling, not synchronization
	}
}

// waitState waits for job id to reach state st and returns it.
func waitState(t testing.TB, s *Spool, id int, st State) Job {
	t.Helper()
	var j Job
	waitFor(t, fmt.Sprintf("job %d in state %d", id, st), func() bool {
		j, _ = s.Job(id)
		return j.State == st
	})
	return j
}

// psDoc is a PostScript document of n pages.
func psDoc(n int) []byte {
	return fmt.Appendf(nil, "%%!PS-Adobe-3.0\n%%%%Pages: %d\n%%%%EndComments\nshowpage\n", n)
}

func submit(t testing.TB, s *Spool, spec JobSpec, doc []byte, format string) Job {
	t.Helper()
	if spec.Printer == "" {
		spec.Printer = "p"
	}
	j, err := s.Submit(context.Background(), spec, bytes.NewReader(doc), format)
	if err != nil {
		t.Fatalf("Submit: %v", err)
	}
	return j
}

func readFile(t testing.TB, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// withHistory makes opts keep finished jobs for history and run on a
// test clock, which it returns.
func withHistory(opts *Options, history time.Duration) *clock {
	clk := newClock()
	opts.Now = clk.Now
	opts.History = history
	return clk
}

// journalRecord returns the record of job id in the journal of the spool
// in dir as it is on disk now (the page cache included), and whether the
// journal has one.
func journalRecord(t testing.TB, dir string, id int) (record, bool) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, journalFile))
	if err != nil {
		t.Fatal(err)
	}
	ents, _ := readJournal(data)
	bodies, _ := latest(ents)
	body, ok := bodies[id]
	if !ok {
		return record{}, false
	}
	var rec record
	if err := json.Unmarshal(body, &rec); err != nil {
		t.Fatalf("job %d in the journal: %v", id, err)
	}
	return rec, true
}
