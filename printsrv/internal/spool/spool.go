// Package spool keeps print jobs durably on disk and runs the virtual
// printers that "print" them into their output trays.
//
// A job acknowledged by the protocol layer has been fsynced here first:
// Create, AddDocument and Submit return only after the job's record and
// document are on stable storage, so a kill -9 and restart lose nothing.
package spool

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"time"
)

// State is a job's state, numbered as IPP's job-state (RFC 8011 5.3.7).
type State int

// The job states.
const (
	Pending           State = 3
	PendingHeld       State = 4
	Processing        State = 5
	ProcessingStopped State = 6
	Canceled          State = 7
	Aborted           State = 8
	Completed         State = 9
)

// Terminal reports whether s is canceled, aborted or completed.
func (s State) Terminal() bool { return s >= Canceled }

// Errors the protocol layer maps to IPP status codes.
var (
	ErrNotFound    = errors.New("no such job")             // client-error-not-found
	ErrNotPossible = errors.New("not possible in this state") // client-error-not-possible
	ErrTooLarge    = errors.New("document too large")       // client-error-request-entity-too-large
	ErrNoPrinter   = errors.New("no such printer")          // client-error-not-found
	ErrClosed      = errors.New("spool closed")             // server-error-service-unavailable
)

// Job is a snapshot of one job. Times are zero until the event happens.
type Job struct {
	ID      int
	Printer string
	Name    string // job-name
	User    string // job-originating-user-name
	State   State
	Reasons []string // job-state-reasons, e.g. "job-incoming", "job-printing", "job-completed-successfully"
	Message string   // job-state-message

	// Attrs holds the job's template attributes as the protocol layer
	// encoded them; the spool stores them and never looks inside.
	Attrs []byte

	Copies         int      // from the spec; at least 1
	Formats        []string // document-format of each document, after auto-detection
	Documents      int      // number of documents received
	Bytes          int64    // total document bytes on disk (uncompressed)
	Impressions    int      // pages counted in the documents times copies (0 if unknown)
	PagesCompleted int      // pages "printed" so far
	Closed         bool     // no more documents will come (last-document, Close-Job or Print-Job)
	Held           bool     // job-hold-until was set; Release clears it

	Created    time.Time
	Processing time.Time
	Completed  time.Time // also set for canceled and aborted
}

// JobSpec is what a Print-Job or Create-Job request asks for.
type JobSpec struct {
	Printer string
	Name    string
	User    string
	Copies  int
	Hold    bool   // job-hold-until other than no-hold: the job waits for Release
	Attrs   []byte // opaque, stored with the job
}

// PrinterConfig describes one virtual printer (one queue).
type PrinterConfig struct {
	Name           string
	PagesPerMinute int    // printing speed; 0 means instant
	Tray           string // output tray folder: finished documents and JSON records go here
}

// PrinterStatus is a printer's state, numbered as IPP's printer-state.
type PrinterStatus struct {
	State      int      // 3 idle, 4 processing, 5 stopped
	Reasons    []string // printer-state-reasons, "none" when empty
	Message    string
	ChangeTime time.Time
	QueuedJobs int // pending, held and processing jobs
	Accepting  bool
}

// Options configure Open.
type Options struct {
	Dir         string // spool folder (created if missing)
	Printers    []PrinterConfig
	MaxJobBytes int64         // per job, over all documents; 0 = no limit
	History     time.Duration // how long finished jobs are kept before being purged
	Logger      *slog.Logger
	Now         func() time.Time // nil = time.Now
}

// Spool is the durable job store and the virtual printers. Safe for
// concurrent use.
type Spool struct{}

// Open loads the spool in opts.Dir, recovers jobs interrupted by a crash
// (pending jobs queue again; a job that was printing starts over) and
// starts the printers.
func Open(opts Options) (*Spool, error) { panic("TODO") }

// Close stops the printers and releases the spool. Jobs in progress stay
// on disk and resume at the next Open.
func (s *Spool) Close() error { panic("TODO") }

// Submit creates a job with one document (Print-Job) and closes it. It
// returns once job and document are on stable storage. format may be
// "application/octet-stream", in which case it is detected from the data.
func (s *Spool) Submit(ctx context.Context, spec JobSpec, doc io.Reader, format string) (Job, error) {
	panic("TODO")
}

// Create creates an empty job that waits for documents (Create-Job).
func (s *Spool) Create(spec JobSpec) (Job, error) { panic("TODO") }

// AddDocument streams doc to disk as the job's next document
// (Send-Document). last closes the job. The document is fsynced before
// AddDocument returns; ErrTooLarge leaves the job without that document.
func (s *Spool) AddDocument(ctx context.Context, id int, doc io.Reader, format string, last bool) (Job, error) {
	panic("TODO")
}

// CloseJob marks the job as having all its documents (Close-Job, or
// Send-Document with no data and last-document true).
func (s *Spool) CloseJob(id int) (Job, error) { panic("TODO") }

// Cancel cancels a job that has not finished; ErrNotPossible if it has.
func (s *Spool) Cancel(id int, reason string) (Job, error) { panic("TODO") }

// Hold keeps a pending job from printing until Release.
func (s *Spool) Hold(id int) (Job, error) { panic("TODO") }

// Release lets a held job print.
func (s *Spool) Release(id int) (Job, error) { panic("TODO") }

// Job returns a snapshot of one job.
func (s *Spool) Job(id int) (Job, bool) { panic("TODO") }

// Jobs returns the jobs of printer ("" = all printers) for which keep
// returns true (nil = all), newest first.
func (s *Spool) Jobs(printer string, keep func(*Job) bool) []Job { panic("TODO") }

// Pause stops a printer after the page it is on; jobs keep queueing.
func (s *Spool) Pause(printer string) error { panic("TODO") }

// Resume lets a paused printer go on.
func (s *Spool) Resume(printer string) error { panic("TODO") }

// Printer returns a printer's status.
func (s *Spool) Printer(name string) (PrinterStatus, error) { panic("TODO") }

// Purge removes finished jobs older than the history period, with their
// files; the spool also runs it by itself periodically.
func (s *Spool) Purge() int { panic("TODO") }
