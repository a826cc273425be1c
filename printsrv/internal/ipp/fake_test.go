package ipp

import (
	"context"
	"io"
	"slices"
	"sync"
	"time"

	"example.com/appliance/printsrv/internal/spool"
)

// fakeSpool is an in-memory spool whose printers finish a job the moment
// it is closed, for testing the protocol layer alone.
type fakeSpool struct {
	mu       sync.Mutex
	jobs     map[int]*spool.Job
	next     int
	paused   map[string]bool
	maxBytes int64
	printers []string
}

func newFakeSpool(printers ...string) *fakeSpool {
	return &fakeSpool{jobs: map[int]*spool.Job{}, next: 1, paused: map[string]bool{}, printers: printers}
}

func (f *fakeSpool) hasPrinter(p string) bool { return slices.Contains(f.printers, p) }

func (f *fakeSpool) Submit(ctx context.Context, spec spool.JobSpec, doc io.Reader, format string) (spool.Job, error) {
	j, err := f.Create(spec)
	if err != nil {
		return j, err
	}
	return f.AddDocument(ctx, j.ID, doc, format, true)
}

func (f *fakeSpool) Create(spec spool.JobSpec) (spool.Job, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.hasPrinter(spec.Printer) {
		return spool.Job{}, spool.ErrNoPrinter
	}
	j := &spool.Job{ID: f.next, Printer: spec.Printer, Name: spec.Name, User: spec.User, State: spool.Pending,
		Reasons: []string{"job-incoming"}, Attrs: spec.Attrs, Copies: max(spec.Copies, 1), Held: spec.Hold, Created: time.Now()}
	if spec.Hold {
		j.State, j.Reasons = spool.PendingHeld, []string{"job-hold-until-specified"}
	}
	f.next++
	f.jobs[j.ID] = j
	return *j, nil
}

func (f *fakeSpool) AddDocument(_ context.Context, id int, doc io.Reader, format string, last bool) (spool.Job, error) {
	n, err := io.Copy(io.Discard, doc)
	f.mu.Lock()
	defer f.mu.Unlock()
	j, ok := f.jobs[id]
	if !ok {
		return spool.Job{}, spool.ErrNotFound
	}
	if err != nil {
		return *j, err
	}
	if j.Closed || j.State.Terminal() {
		return *j, spool.ErrNotPossible
	}
	if f.maxBytes > 0 && j.Bytes+n > f.maxBytes {
		return *j, spool.ErrTooLarge
	}
	if format == "application/octet-stream" {
		format = "application/pdf"
	}
	j.Bytes += n
	j.Documents++
	j.Formats = append(j.Formats, format)
	j.Impressions = j.Copies
	if last {
		f.closeLocked(j)
	}
	return *j, nil
}

func (f *fakeSpool) closeLocked(j *spool.Job) {
	j.Closed = true
	if j.State == spool.Pending && !f.paused[j.Printer] {
		now := time.Now()
		j.State, j.Reasons, j.Processing, j.Completed = spool.Completed, []string{"job-completed-successfully"}, now, now
		j.PagesCompleted = j.Impressions
	}
}

func (f *fakeSpool) CloseJob(id int) (spool.Job, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	j, ok := f.jobs[id]
	if !ok {
		return spool.Job{}, spool.ErrNotFound
	}
	if j.Closed || j.State.Terminal() {
		return *j, spool.ErrNotPossible
	}
	f.closeLocked(j)
	return *j, nil
}

func (f *fakeSpool) Cancel(id int, reason string) (spool.Job, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	j, ok := f.jobs[id]
	if !ok {
		return spool.Job{}, spool.ErrNotFound
	}
	if j.State.Terminal() {
		return *j, spool.ErrNotPossible
	}
	j.State, j.Reasons, j.Completed = spool.Canceled, []string{"job-canceled-by-user"}, time.Now()
	return *j, nil
}

func (f *fakeSpool) Hold(id int) (spool.Job, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	j, ok := f.jobs[id]
	if !ok {
		return spool.Job{}, spool.ErrNotFound
	}
	if j.State != spool.Pending {
		return *j, spool.ErrNotPossible
	}
	j.State, j.Held = spool.PendingHeld, true
	return *j, nil
}

func (f *fakeSpool) Release(id int) (spool.Job, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	j, ok := f.jobs[id]
	if !ok {
		return spool.Job{}, spool.ErrNotFound
	}
	if j.State != spool.PendingHeld {
		return *j, spool.ErrNotPossible
	}
	j.State, j.Held = spool.Pending, false
	if j.Closed {
		f.closeLocked(j)
	}
	return *j, nil
}

func (f *fakeSpool) Job(id int) (spool.Job, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	j, ok := f.jobs[id]
	if !ok {
		return spool.Job{}, false
	}
	return *j, true
}

func (f *fakeSpool) Jobs(printer string, keep func(*spool.Job) bool) []spool.Job {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []spool.Job
	for id := f.next - 1; id > 0; id-- {
		j, ok := f.jobs[id]
		if ok && (printer == "" || j.Printer == printer) && (keep == nil || keep(j)) {
			out = append(out, *j)
		}
	}
	return out
}

func (f *fakeSpool) Pause(printer string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.hasPrinter(printer) {
		return spool.ErrNoPrinter
	}
	f.paused[printer] = true
	return nil
}

func (f *fakeSpool) Resume(printer string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.hasPrinter(printer) {
		return spool.ErrNoPrinter
	}
	f.paused[printer] = false
	return nil
}

func (f *fakeSpool) Printer(name string) (spool.PrinterStatus, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.hasPrinter(name) {
		return spool.PrinterStatus{}, spool.ErrNoPrinter
	}
	st := spool.PrinterStatus{State: 3, Accepting: true, ChangeTime: time.Unix(1700000000, 0)}
	if f.paused[name] {
		st.State, st.Reasons = 5, []string{"paused"}
	}
	for _, j := range f.jobs {
		if j.Printer == name && !j.State.Terminal() {
			st.QueuedJobs++
		}
	}
	return st, nil
}
