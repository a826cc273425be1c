package spool

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"example.com/appliance/printsrv/internal/docformat"
)

// IPP printer-state values.
const (
	printerIdle       = 3
	printerProcessing = 4
	printerStopped    = 5
)

// printer is one virtual printer: its queue and what it is doing. All
// fields but cfg and wake are guarded by Spool.mu.
type printer struct {
	cfg    PrinterConfig
	wake   chan struct{} // a job, a cancel, a pause or a resume to look at
	trayFS *os.File      // the tray folder if on another filesystem than the spool, else nil

	queue   []int // ids of its unfinished jobs, ascending
	cur     *job  // the job being printed
	midPage bool  // a page of cur is under way
	paused  bool

	changed     time.Time // printer-state-change-time
	lastState   int
	lastReasons string
}

func newPrinter(cfg PrinterConfig, now time.Time) *printer {
	return &printer{cfg: cfg, wake: make(chan struct{}, 1), changed: now, lastState: printerIdle, lastReasons: "none"}
}

// kick wakes the printer's goroutine without blocking.
func (p *printer) kick() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

func (p *printer) enqueue(id int) {
	if i, found := slices.BinarySearch(p.queue, id); !found {
		p.queue = slices.Insert(p.queue, i, id)
	}
}

func (p *printer) dequeue(id int) {
	if i, found := slices.BinarySearch(p.queue, id); found {
		p.queue = slices.Delete(p.queue, i, i+1)
	}
}

// status returns printer-state and printer-state-reasons.
func (p *printer) status() (int, []string) {
	switch {
	case p.paused && p.cur != nil && p.midPage:
		return printerProcessing, []string{"moving-to-paused"}
	case p.paused:
		return printerStopped, []string{"paused"}
	case p.cur != nil:
		return printerProcessing, []string{"none"}
	}
	return printerIdle, []string{"none"}
}

// touch updates the printer's state change time if its state or reasons
// changed. The caller holds s.mu.
func (s *Spool) touch(p *printer) {
	st, reasons := p.status()
	r := strings.Join(reasons, ",")
	if st != p.lastState || r != p.lastReasons {
		p.lastState, p.lastReasons, p.changed = st, r, s.now()
	}
}

// run is a printer's goroutine: it prints the queue's jobs one at a time,
// oldest first, until Close.
func (s *Spool) run(p *printer) {
	defer s.workers.Done()
	for {
		if j := s.pick(p); j != nil {
			s.print(p, j)
			continue
		}
		select {
		case <-s.ctx.Done():
			return
		case <-p.wake:
		}
	}
}

// pick starts the oldest job that is closed, not held and pending.
func (s *Spool) pick(p *printer) *job {
	s.mu.Lock()
	defer s.mu.Unlock()
	if p.paused || s.ctx.Err() != nil {
		return nil
	}
	for _, id := range p.queue {
		j := s.jobs[id]
		if j == nil || j.State != Pending || !j.Closed || j.Held {
			continue
		}
		j.State, j.Reasons, j.Processing, j.PagesCompleted = Processing, []string{"job-printing"}, s.now(), 0
		p.cur = j
		s.touch(p)
		return j
	}
	return nil
}

// print prints job j on p: page by page at the printer's speed, each
// document going to the tray when its pages are done.
func (s *Spool) print(p *printer, j *job) {
	// The processing state is not written: after a crash a job that
	// was printing starts over, just as a pending one.
	var interval time.Duration
	if p.cfg.PagesPerMinute > 0 {
		interval = time.Minute / time.Duration(p.cfg.PagesPerMinute)
	}
	s.countPages(j)
	s.mu.Lock()
	docs, copies := slices.Clone(j.docs), j.Copies
	s.mu.Unlock()
	for i, d := range docs {
		pages := max(d.Pages, 1)
		for range copies * pages {
			if !s.boundary(p, j) || !s.printPage(p, j, interval) {
				return
			}
		}
		if err := s.deliver(p, j, i+1, d); err != nil {
			if s.ctx.Err() != nil {
				return // closing: the job starts over at the next Open
			}
			s.log.Error("deliver document to tray", "job", j.ID, "document", i+1, "err", err)
			s.end(p, j, Aborted, "aborted-by-system", "could not write the output: "+err.Error())
			return
		}
	}
	if !s.boundary(p, j) {
		return
	}
	s.end(p, j, Completed, "job-completed-successfully", "")
}

// countPages counts the pages of the job's documents that receive left
// uncounted, and adds them to its impressions. The record is not written
// for that: the update rides on the job's next write (its end at the
// latest); a crash before it means counting again.
func (s *Spool) countPages(j *job) {
	s.mu.Lock()
	docs := slices.Clone(j.docs)
	s.mu.Unlock()
	for i, d := range docs {
		if !d.Uncounted {
			continue
		}
		pages := 0
		if f, err := os.Open(s.docPath(d.File)); err == nil {
			pages = s.pages(f, j.ID, i+1, d.Bytes, d.Format)
			_ = f.Close()
		}
		s.mu.Lock()
		// A closed job's documents are only appended to before it
		// prints, so i is still this document.
		j.docs[i].Pages, j.docs[i].Uncounted = pages, false
		j.Impressions += pages * j.Copies
		s.mu.Unlock()
	}
}

// boundary is called between pages: it waits while the printer is
// paused and reports whether printing goes on (false once the job was
// canceled or the spool is closing).
func (s *Spool) boundary(p *printer, j *job) bool {
	for {
		s.mu.Lock()
		p.midPage = false
		if s.stopping(p, j) {
			s.mu.Unlock()
			return false
		}
		if !p.paused {
			if j.State == ProcessingStopped {
				j.State, j.Reasons = Processing, []string{"job-printing"}
			}
			p.midPage = true
			s.touch(p)
			s.mu.Unlock()
			return true
		}
		if j.State != ProcessingStopped {
			j.State, j.Reasons = ProcessingStopped, []string{"printer-stopped"}
		}
		s.touch(p)
		s.mu.Unlock()
		select {
		case <-s.ctx.Done():
		case <-p.wake:
		}
	}
}

// stopping reports whether the printer must drop job j: it was canceled
// (the printer then lets it go) or the spool is closing (the job stays
// as it is and starts over at the next Open). The caller holds s.mu.
func (s *Spool) stopping(p *printer, j *job) bool {
	if j.State.Terminal() {
		p.cur, p.midPage = nil, false
		s.touch(p)
		return true
	}
	return s.ctx.Err() != nil
}

// printPage takes one page's time, or no time at speed 0. It returns
// false, the page not counted, if the job is canceled or the spool
// closes meanwhile; a pause lets the page finish.
func (s *Spool) printPage(p *printer, j *job, interval time.Duration) bool {
	if interval > 0 {
		t := time.NewTimer(interval)
		defer t.Stop()
	wait:
		for {
			select {
			case <-s.ctx.Done():
				return false
			case <-p.wake:
				s.mu.Lock()
				stop := s.stopping(p, j)
				s.touch(p) // a pause shows as moving-to-paused
				s.mu.Unlock()
				if stop {
					return false
				}
			case <-t.C:
				break wait
			}
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopping(p, j) {
		return false
	}
	j.PagesCompleted++
	return true
}

// end finishes job j with a terminal state, unless it was canceled
// meanwhile. The tray's JSON is written first, so that once the job shows
// as finished its output is all in the tray.
func (s *Spool) end(p *printer, j *job, st State, reason, msg string) {
	now := s.now()
	s.mu.Lock()
	if s.stopping(p, j) {
		s.mu.Unlock()
		return
	}
	final := &job{Job: j.snapshot()}
	s.mu.Unlock()
	final.finish(st, reason, msg, now)
	if err := s.writeTrayRecord(p, final.Job); err != nil {
		s.log.Error("write job record to tray", "job", j.ID, "err", err)
	}
	s.mu.Lock()
	p.cur, p.midPage = nil, false
	if j.State.Terminal() { // canceled while the record was written
		s.touch(p)
		s.mu.Unlock()
		return
	}
	j.finish(st, reason, msg, now)
	p.dequeue(j.ID)
	s.touch(p)
	pages := j.PagesCompleted
	s.mu.Unlock()
	// The end is not waited for on disk: if a crash loses it, the job
	// prints again and its tray files are written over, no worse.
	if err := s.persistEnd(p, j); err != nil {
		s.log.Error("record job end", "job", j.ID, "err", err)
	}
	s.log.Debug("job done", "job", j.ID, "printer", p.cfg.Name, "state", st, "pages", pages)
}

// trayName is the output file of document n of a job: job-42.pdf for the
// first, job-42-2.ps for the second.
func trayName(id, n int, format string) string {
	if n == 1 {
		return fmt.Sprintf("job-%d.%s", id, docformat.Extension(format))
	}
	return fmt.Sprintf("job-%d-%d.%s", id, n, docformat.Extension(format))
}

// isTrayTemp reports whether name is a temporary file of a tray.
func isTrayTemp(name string) bool {
	return strings.HasPrefix(name, ".job-") && strings.HasSuffix(name, tmpSuffix)
}

// deliver puts a printed document into the tray, atomically. A tray on
// the spool's filesystem gets a hard link to the spooled document, which
// the spool never writes again once received: no copy, and no new inode
// (inode allocation is the dearest step of a job on ext4, see pool.go).
// The pool refuses files with more than one link (emptyFile), so purging
// the job later leaves the tray's name intact. Elsewhere it is copied.
func (s *Spool) deliver(p *printer, j *job, n int, d docRecord) error {
	if p.trayFS == nil {
		err := linkTrayFile(p.cfg.Tray, trayName(j.ID, n, d.Format), s.docPath(d.File))
		if !errors.Is(err, errNoLink) {
			return err
		}
	}
	src, err := os.Open(s.docPath(d.File))
	if err != nil {
		return fmt.Errorf("open document: %w", err)
	}
	defer src.Close()
	return writeTrayFile(p.cfg.Tray, trayName(j.ID, n, d.Format), func(w io.Writer) error {
		bp := copyBufs.Get().(*[]byte)
		defer copyBufs.Put(bp)
		_, err := io.CopyBuffer(onlyWriter{w}, ctxReader{s.ctx, src}, *bp)
		return err
	})
}

// onlyWriter hides ReadFrom, so that io.CopyBuffer uses the given buffer.
type onlyWriter struct{ io.Writer }

// ctxReader stops a copy at its next read once ctx is done, so that
// Close does not wait for a large document to reach the tray.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// trayRecord is the job-<id>.json put in the tray next to the output.
type trayRecord struct {
	ID          int       `json:"id"`
	Printer     string    `json:"printer"`
	Name        string    `json:"name"`
	User        string    `json:"user"`
	State       string    `json:"state"`
	Formats     []string  `json:"formats"`
	Bytes       int64     `json:"bytes"`
	Impressions int       `json:"impressions"`
	Pages       int       `json:"pages_completed"`
	Copies      int       `json:"copies"`
	Created     time.Time `json:"created"`
	Processing  time.Time `json:"processing"`
	Completed   time.Time `json:"completed"`
}

var stateNames = map[State]string{
	Pending: "pending", PendingHeld: "pending-held", Processing: "processing",
	ProcessingStopped: "processing-stopped", Canceled: "canceled", Aborted: "aborted", Completed: "completed",
}

func (s *Spool) writeTrayRecord(p *printer, j Job) error {
	data, err := json.MarshalIndent(trayRecord{
		ID: j.ID, Printer: j.Printer, Name: j.Name, User: j.User, State: stateNames[j.State],
		Formats: j.Formats, Bytes: j.Bytes, Impressions: j.Impressions, Pages: j.PagesCompleted,
		Copies: j.Copies, Created: j.Created, Processing: j.Processing, Completed: j.Completed,
	}, "", "  ")
	if err != nil {
		return fmt.Errorf("encode tray record: %w", err)
	}
	data = append(data, '\n')
	return writeTrayFile(p.cfg.Tray, fmt.Sprintf("job-%d.json", j.ID), func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
}

// errNoLink says the filesystem cannot link the document into the tray.
var errNoLink = errors.New("no hard links here")

// linkTrayFile links the file src into tray as name, through a hidden
// temporary name renamed over name (a reprint after a crash replaces the
// earlier output). It makes the document readable like a copied one;
// the spool folder keeps it private on the spool's side.
func linkTrayFile(tray, name, src string) error {
	tmp := filepath.Join(tray, "."+name+tmpSuffix)
	if err := os.Chmod(src, 0o644); err != nil {
		return fmt.Errorf("link %q to tray: %w", name, err)
	}
	_ = os.Remove(tmp)
	if err := os.Link(src, tmp); err != nil {
		if errors.Is(err, unix.EXDEV) || errors.Is(err, unix.EPERM) || errors.Is(err, unix.EMLINK) || errors.Is(err, unix.ENOTSUP) {
			return errNoLink
		}
		return fmt.Errorf("link %q to tray: %w", name, err)
	}
	if err := os.Rename(tmp, filepath.Join(tray, name)); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("link %q to tray: %w", name, err)
	}
	return nil
}

// writeTrayFile writes name in tray through a hidden temporary file that
// is renamed, so that a reader of the tray never sees a part. It does not
// sync: the tray is a copy, made durable by the commit that records the
// job's end (persistEnd); a crash before that prints the job again.
func writeTrayFile(tray, name string, fill func(io.Writer) error) error {
	tmp := filepath.Join(tray, "."+name+tmpSuffix)
	_ = os.Remove(tmp) // a new file, never a truncated one: it may be a link
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return fmt.Errorf("create %q: %w", tmp, err)
	}
	err = fill(f)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, filepath.Join(tray, name))
	}
	if err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("write %q to tray: %w", name, err)
	}
	return nil
}
