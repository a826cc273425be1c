package spool

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"example.com/appliance/shared/nettest"
	"golang.org/x/sys/unix"

	"example.com/appliance/printsrv/internal/docformat/docformattest"
)

// TestStateMachine drives jobs through the operations on a paused
// printer, so that nothing prints, and checks state, reasons and errors.
func TestStateMachine(t *testing.T) {
	type step struct {
		op      string // submit, submit-held, create, create-held, add, add-last, close, hold, release, cancel, cancel-op
		wantErr error
		state   State
		reasons []string
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{"submit queues", []step{
			{op: "submit", state: Pending, reasons: []string{"job-queued"}},
		}},
		{"submit held, release", []step{
			{op: "submit-held", state: PendingHeld, reasons: []string{"job-hold-until-specified"}},
			{op: "release", state: Pending, reasons: []string{"job-queued"}},
			{op: "release", wantErr: ErrNotPossible},
		}},
		{"create, add, close", []step{
			{op: "create", state: Pending, reasons: []string{"job-incoming"}},
			{op: "add", state: Pending, reasons: []string{"job-incoming"}},
			{op: "close", state: Pending, reasons: []string{"job-queued"}},
			{op: "close", wantErr: ErrNotPossible},
			{op: "add", wantErr: ErrNotPossible},
		}},
		{"add last closes", []step{
			{op: "create", state: Pending, reasons: []string{"job-incoming"}},
			{op: "add-last", state: Pending, reasons: []string{"job-queued"}},
			{op: "add-last", wantErr: ErrNotPossible},
		}},
		{"held while incoming", []step{
			{op: "create-held", state: PendingHeld, reasons: []string{"job-hold-until-specified", "job-incoming"}},
			{op: "add-last", state: PendingHeld, reasons: []string{"job-hold-until-specified"}},
			{op: "release", state: Pending, reasons: []string{"job-queued"}},
		}},
		{"hold, cancel", []step{
			{op: "submit", state: Pending, reasons: []string{"job-queued"}},
			{op: "hold", state: PendingHeld, reasons: []string{"job-hold-until-specified"}},
			{op: "hold", state: PendingHeld, reasons: []string{"job-hold-until-specified"}},
			{op: "cancel", state: Canceled, reasons: []string{"job-canceled-by-user"}},
			{op: "cancel", wantErr: ErrNotPossible},
			{op: "release", wantErr: ErrNotPossible},
			{op: "hold", wantErr: ErrNotPossible},
		}},
		{"cancel incoming by operator", []step{
			{op: "create", state: Pending, reasons: []string{"job-incoming"}},
			{op: "cancel-op", state: Canceled, reasons: []string{"job-canceled-by-operator"}},
			{op: "add", wantErr: ErrNotPossible},
			{op: "close", wantErr: ErrNotPossible},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := testOptions(t)
			s := open(t, opts)
			if err := s.Pause("p"); err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			id := 0
			for i, st := range tt.steps {
				var j Job
				var err error
				doc := bytes.NewReader(psDoc(2))
				switch st.op {
				case "submit", "submit-held":
					j, err = s.Submit(ctx, JobSpec{Printer: "p", Hold: st.op == "submit-held"}, doc, "")
				case "create", "create-held":
					j, err = s.Create(JobSpec{Printer: "p", Hold: st.op == "create-held"})
				case "add", "add-last":
					j, err = s.AddDocument(ctx, id, doc, "application/postscript", st.op == "add-last")
				case "close":
					j, err = s.CloseJob(id)
				case "hold":
					j, err = s.Hold(id)
				case "release":
					j, err = s.Release(id)
				case "cancel":
					j, err = s.Cancel(id, "")
				case "cancel-op":
					j, err = s.Cancel(id, "canceled-by-operator") // the short form gets its prefix
				default:
					t.Fatalf("bad op %q", st.op)
				}
				if st.wantErr != nil {
					if !errors.Is(err, st.wantErr) {
						t.Fatalf("step %d %s: err = %v, want %v", i, st.op, err, st.wantErr)
					}
					continue
				}
				if err != nil {
					t.Fatalf("step %d %s: %v", i, st.op, err)
				}
				if id == 0 {
					id = j.ID
				}
				if j.State != st.state || !slices.Equal(j.Reasons, st.reasons) {
					t.Fatalf("step %d %s: state %d %v, want %d %v", i, st.op, j.State, j.Reasons, st.state, st.reasons)
				}
				// What is on disk matches what was returned.
				rec, ok := journalRecord(t, opts.Dir, id)
				if !ok {
					t.Fatalf("step %d %s: no record of job %d in the journal", i, st.op, id)
				}
				if rec.State != j.State || rec.Documents != j.Documents || rec.Closed != j.Closed {
					t.Fatalf("step %d %s: record %d docs=%d closed=%v, job %d docs=%d closed=%v", i, st.op,
						rec.State, rec.Documents, rec.Closed, j.State, j.Documents, j.Closed)
				}
			}
		})
	}
}

func TestErrors(t *testing.T) {
	s := open(t, testOptions(t))
	ctx := context.Background()
	tests := []struct {
		name string
		do   func() error
		want error
	}{
		{"submit to unknown printer", func() error {
			_, err := s.Submit(ctx, JobSpec{Printer: "nope"}, strings.NewReader("x"), "")
			return err
		}, ErrNoPrinter},
		{"create on unknown printer", func() error { _, err := s.Create(JobSpec{Printer: "nope"}); return err }, ErrNoPrinter},
		{"cancel unknown job", func() error { _, err := s.Cancel(999, ""); return err }, ErrNotFound},
		{"add to unknown job", func() error {
			_, err := s.AddDocument(ctx, 999, strings.NewReader("x"), "", true)
			return err
		}, ErrNotFound},
		{"close unknown job", func() error { _, err := s.CloseJob(999); return err }, ErrNotFound},
		{"pause unknown printer", func() error { return s.Pause("nope") }, ErrNoPrinter},
		{"status of unknown printer", func() error { _, err := s.Printer("nope"); return err }, ErrNoPrinter},
		{"canceled context", func() error {
			cctx, cancel := context.WithCancel(ctx)
			cancel()
			_, err := s.Submit(cctx, JobSpec{Printer: "p"}, bytes.NewReader(make([]byte, 1<<20)), "")
			return err
		}, context.Canceled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.do(); !errors.Is(err, tt.want) {
				t.Errorf("err = %v, want %v", err, tt.want)
			}
		})
	}
	if _, ok := s.Job(999); ok {
		t.Error("Job(999) found")
	}
}

func TestOpenErrors(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name string
		opts Options
	}{
		{"no folder", Options{Printers: []PrinterConfig{{Name: "p"}}}},
		{"no printers", Options{Dir: dir}},
		{"duplicate printer", Options{Dir: dir, Printers: []PrinterConfig{{Name: "p"}, {Name: "p"}}}},
		{"bad printer name", Options{Dir: dir, Printers: []PrinterConfig{{Name: "../x"}}}},
		{"negative speed", Options{Dir: dir, Printers: []PrinterConfig{{Name: "p", PagesPerMinute: -1}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if s, err := Open(tt.opts); err == nil {
				_ = s.Close()
				t.Fatal("Open succeeded")
			}
		})
	}
}

// TestPrint prints jobs and checks the trays: one file per document,
// named by job id, with the job's JSON beside them.
func TestPrint(t *testing.T) {
	opts := testOptions(t)
	opts.Printers = append(opts.Printers, PrinterConfig{Name: "q", Tray: filepath.Join(opts.Dir, "out-q")})
	s := open(t, opts)
	ctx := context.Background()
	pdf := docformattest.PDF(3)

	j1 := submit(t, s, JobSpec{Name: "report", User: "ann", Copies: 2}, pdf, "application/octet-stream")
	if !slices.Equal(j1.Formats, []string{"application/pdf"}) || j1.Impressions != 6 || j1.Bytes != int64(len(pdf)) {
		t.Errorf("submitted job: formats %v impressions %d bytes %d", j1.Formats, j1.Impressions, j1.Bytes)
	}

	j2, err := s.Create(JobSpec{Printer: "q", Name: "two docs", User: "bob"})
	if err != nil {
		t.Fatal(err)
	}
	ps := psDoc(2)
	if _, err := s.AddDocument(ctx, j2.ID, bytes.NewReader(pdf), "application/pdf", false); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AddDocument(ctx, j2.ID, bytes.NewReader(ps), "", true); err != nil {
		t.Fatal(err)
	}

	done := waitState(t, s, j1.ID, Completed)
	if done.PagesCompleted != 6 || !slices.Equal(done.Reasons, []string{"job-completed-successfully"}) ||
		done.Processing.IsZero() || done.Completed.Before(done.Processing) {
		t.Errorf("completed job: %+v", done)
	}
	done2 := waitState(t, s, j2.ID, Completed)
	if done2.PagesCompleted != 5 || done2.Impressions != 5 || done2.Documents != 2 {
		t.Errorf("completed job 2: %+v", done2)
	}

	tray := opts.Printers[0].Tray
	trayQ := opts.Printers[1].Tray
	files := []struct {
		path string
		want []byte
	}{
		{filepath.Join(tray, "job-"+itoa(j1.ID)+".pdf"), pdf},
		{filepath.Join(trayQ, "job-"+itoa(j2.ID)+".pdf"), pdf},
		{filepath.Join(trayQ, "job-"+itoa(j2.ID)+"-2.ps"), ps},
	}
	for _, f := range files {
		if got := readFile(t, f.path); !bytes.Equal(got, f.want) {
			t.Errorf("%s: %d bytes, want %d", f.path, len(got), len(f.want))
		}
	}
	var rec trayRecord
	if err := json.Unmarshal(readFile(t, filepath.Join(trayQ, "job-"+itoa(j2.ID)+".json")), &rec); err != nil {
		t.Fatal(err)
	}
	if rec.ID != j2.ID || rec.Printer != "q" || rec.User != "bob" || rec.State != "completed" ||
		len(rec.Formats) != 2 || rec.Bytes != int64(len(pdf)+len(ps)) || rec.Impressions != 5 {
		t.Errorf("tray record: %+v", rec)
	}
	if jobs := s.Jobs("", nil); len(jobs) != 2 || jobs[0].ID != j2.ID {
		t.Errorf("Jobs: %d jobs, first %d", len(jobs), jobs[0].ID)
	}
	if jobs := s.Jobs("q", nil); len(jobs) != 1 {
		t.Errorf("Jobs(q): %d jobs", len(jobs))
	}
	if jobs := s.Jobs("", func(j *Job) bool { return j.User == "ann" }); len(jobs) != 1 || jobs[0].ID != j1.ID {
		t.Errorf("Jobs(ann): %v", jobs)
	}
	st, err := s.Printer("p")
	if err != nil || st.State != printerIdle || !slices.Equal(st.Reasons, []string{"none"}) || st.QueuedJobs != 0 || !st.Accepting {
		t.Errorf("printer: %+v, %v", st, err)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

// TestNoDocuments closes a job that never got a document.
func TestNoDocuments(t *testing.T) {
	s := open(t, testOptions(t))
	j, err := s.Create(JobSpec{Printer: "p"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.CloseJob(j.ID); err != nil {
		t.Fatal(err)
	}
	if got := waitState(t, s, j.ID, Completed); got.PagesCompleted != 0 {
		t.Errorf("job: %+v", got)
	}
}

// TestCancelPrinting cancels a job on a slow printer in the middle of
// its pages: it stops before the next page, promptly.
func TestCancelPrinting(t *testing.T) {
	opts := testOptions(t)
	opts.Printers[0].PagesPerMinute = 600 // 100 ms a page
	s := open(t, opts)
	j := submit(t, s, JobSpec{}, psDoc(1000), "")
	waitFor(t, "a page printed", func() bool { j, _ = s.Job(j.ID); return j.PagesCompleted >= 1 })
	st, _ := s.Printer("p")
	if st.State != printerProcessing || st.QueuedJobs != 1 {
		t.Errorf("printer while printing: %+v", st)
	}
	c, err := s.Cancel(j.ID, "")
	if err != nil || c.State != Canceled {
		t.Fatalf("Cancel: %+v, %v", c, err)
	}
	waitFor(t, "printer idle", func() bool { st, _ = s.Printer("p"); return st.State == printerIdle })
	j, _ = s.Job(j.ID)
	if j.State != Canceled || j.PagesCompleted >= 1000 || st.QueuedJobs != 0 {
		t.Errorf("after cancel: job %+v, printer %+v", j, st)
	}
	if _, err := os.Stat(filepath.Join(opts.Printers[0].Tray, "job-"+itoa(j.ID)+".ps")); err == nil {
		t.Error("canceled job reached the tray")
	}
	if _, err := s.Cancel(j.ID, ""); !errors.Is(err, ErrNotPossible) {
		t.Errorf("second cancel: %v", err)
	}
}

// TestPause pauses a printer while it prints: it finishes the page,
// stops, and goes on after Resume.
func TestPause(t *testing.T) {
	opts := testOptions(t)
	opts.Printers[0].PagesPerMinute = 1200 // 50 ms a page
	clk := newClock()
	opts.Now = clk.Now
	s := open(t, opts)
	j := submit(t, s, JobSpec{}, psDoc(1000), "")
	waitFor(t, "a page printed", func() bool { j, _ = s.Job(j.ID); return j.PagesCompleted >= 1 })
	before, _ := s.Printer("p")
	clk.Add(time.Second)
	if err := s.Pause("p"); err != nil {
		t.Fatal(err)
	}
	var st PrinterStatus
	waitFor(t, "printer stopped", func() bool { st, _ = s.Printer("p"); return st.State == printerStopped })
	if !slices.Equal(st.Reasons, []string{"paused"}) || !st.ChangeTime.After(before.ChangeTime) || st.QueuedJobs != 1 {
		t.Errorf("paused printer: %+v (before %+v)", st, before)
	}
	j = waitState(t, s, j.ID, ProcessingStopped)
	if !slices.Equal(j.Reasons, []string{"printer-stopped"}) {
		t.Errorf("job on a paused printer: %+v", j)
	}
	// Jobs keep queueing on a paused printer.
	j2 := submit(t, s, JobSpec{}, psDoc(1), "")
	if st, _ := s.Printer("p"); st.QueuedJobs != 2 {
		t.Errorf("queued jobs: %d", st.QueuedJobs)
	}
	stoppedAt := j.PagesCompleted
	if err := s.Resume("p"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "printing again", func() bool { j, _ = s.Job(j.ID); return j.PagesCompleted > stoppedAt })
	if j.State != Processing || !slices.Equal(j.Reasons, []string{"job-printing"}) {
		t.Errorf("resumed job: %+v", j)
	}
	if _, err := s.Cancel(j.ID, ""); err != nil {
		t.Fatal(err)
	}
	waitState(t, s, j2.ID, Completed)
}

// TestCloseWhilePrinting closes the spool in the middle of a long page:
// Close returns at once and the job starts over at the next Open.
func TestCloseWhilePrinting(t *testing.T) {
	opts := testOptions(t)
	opts.Printers[0].PagesPerMinute = 1 // a minute a page
	s, err := Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	j := submit(t, s, JobSpec{}, psDoc(3), "")
	waitState(t, s, j.ID, Processing)
	start := time.Now()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Close took %v", d)
	}
	if err := s.Close(); !errors.Is(err, ErrClosed) {
		t.Errorf("second Close: %v", err)
	}
	if _, err := s.Create(JobSpec{Printer: "p"}); !errors.Is(err, ErrClosed) {
		t.Errorf("Create after Close: %v", err)
	}

	opts.Printers[0].PagesPerMinute = 0
	s2 := open(t, opts)
	if got := waitState(t, s2, j.ID, Completed); got.PagesCompleted != 3 {
		t.Errorf("job after restart: %+v", got)
	}
}

// TestRecovery reopens spools left in various states by a crash.
func TestRecovery(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name  string
		setup func(t *testing.T, s *Spool, opts Options) int // returns a job id
		check func(t *testing.T, s *Spool, id int, opts Options)
	}{
		{"pending job prints", func(t *testing.T, s *Spool, opts Options) int {
			return submit(t, s, JobSpec{}, psDoc(2), "").ID
		}, func(t *testing.T, s *Spool, id int, opts Options) {
			waitState(t, s, id, Completed)
		}},
		{"held job stays held", func(t *testing.T, s *Spool, opts Options) int {
			return submit(t, s, JobSpec{Hold: true}, psDoc(2), "").ID
		}, func(t *testing.T, s *Spool, id int, opts Options) {
			if j, _ := s.Job(id); j.State != PendingHeld {
				t.Errorf("job: %+v", j)
			}
			if _, err := s.Release(id); err != nil {
				t.Fatal(err)
			}
			waitState(t, s, id, Completed)
		}},
		{"processing job with its document lost is aborted", func(t *testing.T, s *Spool, opts Options) int {
			j := submit(t, s, JobSpec{}, psDoc(2), "")
			waitState(t, s, j.ID, Processing)
			if err := os.Remove(filepath.Join(opts.Dir, docsDir, itoa(j.ID)+"-1.ps")); err != nil {
				t.Fatal(err)
			}
			return j.ID
		}, func(t *testing.T, s *Spool, id int, opts Options) {
			j, _ := s.Job(id)
			if j.State != Aborted || !slices.Equal(j.Reasons, []string{"aborted-by-system"}) || j.Completed.IsZero() {
				t.Errorf("job: %+v", j)
			}
		}},
		{"incoming job stays open, partial document dropped", func(t *testing.T, s *Spool, opts Options) int {
			j, err := s.Create(JobSpec{Printer: "p"})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := s.AddDocument(ctx, j.ID, bytes.NewReader(psDoc(1)), "", false); err != nil {
				t.Fatal(err)
			}
			// What a crash in the middle of the second document and of
			// a record write leaves behind.
			for _, f := range []string{filepath.Join(docsDir, itoa(j.ID)+"-2.ps"), filepath.Join(jobsDir, itoa(j.ID)+".json.tmp")} {
				if err := os.WriteFile(filepath.Join(opts.Dir, f), []byte("%!PS partial"), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			return j.ID
		}, func(t *testing.T, s *Spool, id int, opts Options) {
			j, _ := s.Job(id)
			if j.State != Pending || j.Closed || j.Documents != 1 || !slices.Equal(j.Reasons, []string{"job-incoming"}) {
				t.Errorf("job: %+v", j)
			}
			for _, f := range []string{filepath.Join(docsDir, itoa(id)+"-2.ps"), filepath.Join(jobsDir, itoa(id)+".json.tmp")} {
				if _, err := os.Stat(filepath.Join(opts.Dir, f)); err == nil {
					t.Errorf("%s not removed", f)
				}
			}
			if _, err := s.AddDocument(ctx, id, bytes.NewReader(psDoc(2)), "", true); err != nil {
				t.Fatal(err)
			}
			if j := waitState(t, s, id, Completed); j.PagesCompleted != 3 {
				t.Errorf("job: %+v", j)
			}
		}},
		{"damaged record set aside", func(t *testing.T, s *Spool, opts Options) int {
			j := submit(t, s, JobSpec{Hold: true}, psDoc(2), "")
			if err := os.WriteFile(filepath.Join(opts.Dir, jobsDir, "77.json"), []byte("{not json"), 0o600); err != nil {
				t.Fatal(err)
			}
			return j.ID
		}, func(t *testing.T, s *Spool, id int, opts Options) {
			if _, ok := s.Job(id); !ok {
				t.Error("good job lost")
			}
			if _, err := os.Stat(filepath.Join(opts.Dir, jobsDir, "77.json.bad")); err != nil {
				t.Errorf("damaged record: %v", err)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := testOptions(t)
			opts.Printers[0].PagesPerMinute = 1 // jobs stay printing until Close
			s, err := Open(opts)
			if err != nil {
				t.Fatal(err)
			}
			id := tt.setup(t, s, opts)
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			opts.Printers[0].PagesPerMinute = 0
			s2 := open(t, opts)
			tt.check(t, s2, id, opts)
			if next := submit(t, s2, JobSpec{}, psDoc(1), ""); next.ID <= id {
				t.Errorf("new job id %d after %d", next.ID, id)
			}
		})
	}
}

// TestPurge checks that finished jobs go after the history period with
// their spool files, and that their ids are not used again.
func TestPurge(t *testing.T) {
	opts := testOptions(t)
	clk := withHistory(&opts, time.Hour)
	s, err := Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	done := submit(t, s, JobSpec{}, psDoc(1), "")
	waitState(t, s, done.ID, Completed)
	canceled := submit(t, s, JobSpec{Hold: true}, psDoc(1), "")
	clk.Add(30 * time.Minute)
	if _, err := s.Cancel(canceled.ID, ""); err != nil {
		t.Fatal(err)
	}
	waiting := submit(t, s, JobSpec{Hold: true}, psDoc(1), "")

	steps := []struct {
		advance time.Duration
		purged  int
		left    []int
	}{
		{0, 0, []int{done.ID, canceled.ID, waiting.ID}},
		{31 * time.Minute, 1, []int{canceled.ID, waiting.ID}},
		{30 * time.Minute, 1, []int{waiting.ID}},
		{24 * time.Hour, 0, []int{waiting.ID}},
	}
	for i, st := range steps {
		clk.Add(st.advance)
		if n := s.Purge(); n != st.purged {
			t.Errorf("step %d: purged %d, want %d", i, n, st.purged)
		}
		var ids []int
		for _, j := range s.Jobs("", nil) {
			ids = append(ids, j.ID)
		}
		slices.Sort(ids)
		if !slices.Equal(ids, st.left) {
			t.Errorf("step %d: jobs %v, want %v", i, ids, st.left)
		}
	}
	ents, _ := os.ReadDir(filepath.Join(opts.Dir, docsDir))
	if len(ents) != 1 || !strings.HasPrefix(ents[0].Name(), itoa(waiting.ID)) {
		t.Errorf("%s holds %v", docsDir, ents)
	}
	for _, id := range []int{done.ID, canceled.ID, waiting.ID} {
		if _, ok := journalRecord(t, opts.Dir, id); ok != (id == waiting.ID) {
			t.Errorf("job %d in the journal: %v", id, ok)
		}
	}
	if _, err := os.Stat(filepath.Join(opts.Printers[0].Tray, "job-"+itoa(done.ID)+".ps")); err != nil {
		t.Errorf("printed copy: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// Ids stay unique even though the newest jobs' records are gone.
	if _, err := s.Cancel(waiting.ID, ""); !errors.Is(err, ErrClosed) {
		t.Errorf("Cancel after Close: %v", err)
	}
	s2 := open(t, opts)
	if j := submit(t, s2, JobSpec{}, psDoc(1), ""); j.ID <= waiting.ID {
		t.Errorf("id %d reused", j.ID)
	}
}

// TestTooLarge checks MaxJobBytes over all of a job's documents.
func TestTooLarge(t *testing.T) {
	opts := testOptions(t)
	opts.MaxJobBytes = 1000
	s := open(t, opts)
	if err := s.Pause("p"); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	big := bytes.Repeat([]byte("x"), 1001)
	tests := []struct {
		name string
		size int
	}{
		{"head", 600},      // fits in the first read
		{"stream", 1001},   // over by one byte
		{"large", 1 << 20}, // far over
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := s.Submit(ctx, JobSpec{Printer: "p"}, bytes.NewReader(bytes.Repeat([]byte("y"), tt.size)), "")
			if tt.size <= 1000 {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if !errors.Is(err, ErrTooLarge) {
				t.Fatalf("Submit: %v, want ErrTooLarge", err)
			}
		})
	}
	if n := len(s.Jobs("", nil)); n != 1 {
		t.Errorf("%d jobs after refused submissions, want 1", n)
	}

	j, err := s.Create(JobSpec{Printer: "p"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.AddDocument(ctx, j.ID, bytes.NewReader(big[:600]), "", false); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AddDocument(ctx, j.ID, bytes.NewReader(big[:401]), "", true); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("AddDocument over the limit: %v", err)
	}
	got, _ := s.Job(j.ID)
	if got.Documents != 1 || got.Bytes != 600 || got.Closed || got.State != Pending {
		t.Errorf("job after refused document: %+v", got)
	}
	if got, err = s.AddDocument(ctx, j.ID, bytes.NewReader(big[:400]), "", true); err != nil || got.Documents != 2 {
		t.Fatalf("AddDocument at the limit: %+v, %v", got, err)
	}
	ents, _ := os.ReadDir(filepath.Join(opts.Dir, docsDir))
	if len(ents) != 3 {
		t.Errorf("docs folder holds %d files, want 3", len(ents))
	}
}

// TestConcurrent submits from many goroutines while jobs print and get
// canceled: every job ends, and ids are unique.
func TestConcurrent(t *testing.T) {
	s := open(t, testOptions(t))
	const workers, each = 16, 8
	var mu sync.Mutex
	ids := make(map[int]bool)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				j, err := s.Submit(context.Background(), JobSpec{Printer: "p"}, bytes.NewReader(psDoc(1+i%3)), "")
				if err != nil {
					t.Error(err)
					return
				}
				if (w+i)%5 == 0 {
					_, _ = s.Cancel(j.ID, "") // may already be done
				}
				mu.Lock()
				if ids[j.ID] {
					t.Errorf("id %d given twice", j.ID)
				}
				ids[j.ID] = true
				mu.Unlock()
				_, _ = s.Printer("p")
				_ = s.Jobs("", nil)
			}
		})
	}
	wg.Wait()
	waitFor(t, "all jobs finished", func() bool {
		return len(s.Jobs("", func(j *Job) bool { return !j.State.Terminal() })) == 0
	})
	if n := len(s.Jobs("", nil)); n != workers*each {
		t.Errorf("%d jobs, want %d", n, workers*each)
	}
}

// TestSampleFormats submits the interop samples as lp does, with
// application/octet-stream: the spool detects their formats and counts
// their pages.
func TestSampleFormats(t *testing.T) {
	samplesDir := nettest.NeedShared(t, "ipptool")
	s := open(t, testOptions(t))
	tests := []struct {
		file        string
		format      string
		impressions int
	}{
		{"document-a4.pdf", "application/pdf", 4},
		{"onepage-a4.ps", "application/postscript", 1},
		{"color.jpg", "image/jpeg", 1},
		{"testfile.txt", "text/plain", 1},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			f, err := os.Open(filepath.Join(samplesDir, tt.file))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			j, err := s.Submit(context.Background(), JobSpec{Printer: "p", Name: tt.file}, f, "application/octet-stream")
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(j.Formats, []string{tt.format}) || j.Impressions != tt.impressions {
				t.Errorf("formats %v impressions %d, want %s %d", j.Formats, j.Impressions, tt.format, tt.impressions)
			}
			waitState(t, s, j.ID, Completed)
		})
	}
}

// TestDeferredPageCount submits a PDF whose last cross-reference section
// is not a classic table: its pages are counted after the
// acknowledgement, by the printer, and the count reaches the record.
func TestDeferredPageCount(t *testing.T) {
	opts := testOptions(t)
	s := open(t, opts)
	if err := s.Pause("p"); err != nil {
		t.Fatal(err)
	}
	pdf := append(docformattest.PDF(3), "startxref\n0\n%%EOF\n"...)
	j := submit(t, s, JobSpec{Copies: 2}, pdf, "application/octet-stream")
	if j.Impressions != 0 {
		t.Errorf("impressions %d before counting, want 0", j.Impressions)
	}
	if err := s.Resume("p"); err != nil {
		t.Fatal(err)
	}
	done := waitState(t, s, j.ID, Completed)
	if done.Impressions != 6 || done.PagesCompleted != 6 {
		t.Errorf("impressions %d pages completed %d, want 6 6", done.Impressions, done.PagesCompleted)
	}
	waitFor(t, "record with the count", func() bool {
		rec, ok := journalRecord(t, opts.Dir, j.ID)
		return ok && rec.State == Completed &&
			rec.Impressions == 6 && len(rec.Docs) == 1 && !rec.Docs[0].Uncounted && rec.Docs[0].Pages == 3
	})
}

// TestPurgeRecycles checks that purged jobs' files go back to the pool
// instead of being removed.
func TestPurgeRecycles(t *testing.T) {
	opts := testOptions(t)
	clk := withHistory(&opts, time.Minute)
	s := open(t, opts)
	// Canceled before it printed: no tray links its document.
	j := submit(t, s, JobSpec{Hold: true}, psDoc(1), "")
	if _, err := s.Cancel(j.ID, ""); err != nil {
		t.Fatal(err)
	}
	doc := s.docPath(docName(j.ID, 1, "application/postscript"))
	var rst unix.Stat_t
	if err := unix.Stat(doc, &rst); err != nil {
		t.Fatal(err)
	}
	clk.Add(2 * time.Minute)
	if n := s.Purge(); n != 1 {
		t.Fatalf("purged %d jobs", n)
	}
	if _, err := os.Stat(doc); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("document after purge: %v", err)
	}
	waitFor(t, "purged files emptied in the pool", func() bool {
		ents, err := os.ReadDir(filepath.Join(opts.Dir, freeDir))
		if err != nil {
			return false
		}
		for _, e := range ents {
			if fi, err := e.Info(); err != nil || fi.Size() != 0 {
				return false
			}
		}
		return true
	})
	found := false
	ents, _ := os.ReadDir(filepath.Join(opts.Dir, freeDir))
	for _, e := range ents {
		var st unix.Stat_t
		if unix.Stat(filepath.Join(opts.Dir, freeDir, e.Name()), &st) == nil && st.Ino == rst.Ino {
			found = true
		}
	}
	if !found {
		t.Error("the purged document's file is not in the pool")
	}
	if ents, _ := os.ReadDir(filepath.Join(opts.Dir, docsDir)); len(ents) != 0 {
		t.Errorf("%d documents left after purge", len(ents))
	}
}

// TestPurgeKeepsTrayOutput checks that a document delivered to a tray on
// the spool's filesystem is a hard link to the spooled one (no copy), and
// that purging the job, which recycles its files into the pool, and
// reopening the spool leave the tray's document whole.
func TestPurgeKeepsTrayOutput(t *testing.T) {
	opts := testOptions(t)
	clk := withHistory(&opts, time.Minute)
	s := open(t, opts)
	doc := psDoc(2)
	j := submit(t, s, JobSpec{}, doc, "")
	waitState(t, s, j.ID, Completed)
	out := filepath.Join(opts.Printers[0].Tray, "job-"+itoa(j.ID)+".ps")
	var st unix.Stat_t
	if err := unix.Stat(out, &st); err != nil {
		t.Fatal(err)
	}
	if st.Nlink != 2 || st.Mode&0o777 != 0o644 {
		t.Errorf("tray document: %d links, mode %o; want a hard link to the spooled document, mode 644", st.Nlink, st.Mode&0o777)
	}
	clk.Add(2 * time.Minute)
	if n := s.Purge(); n != 1 {
		t.Fatalf("purged %d jobs", n)
	}
	waitFor(t, "the purged files leave the pool's retired list", func() bool {
		if err := s.commit(); err != nil { // recycles what the purge retired
			t.Fatal(err)
		}
		s.retireMu.Lock()
		defer s.retireMu.Unlock()
		return len(s.retired) == 0
	})
	if got := readFile(t, out); !bytes.Equal(got, doc) {
		t.Fatalf("tray document after purge: %d bytes, want %d", len(got), len(doc))
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = open(t, opts)
	if got := readFile(t, out); !bytes.Equal(got, doc) {
		t.Fatalf("tray document after reopening: %d bytes, want %d", len(got), len(doc))
	}
	if err := unix.Stat(out, &st); err != nil || st.Nlink != 1 {
		t.Errorf("tray document after purge: %d links (%v), want 1", st.Nlink, err)
	}
}
