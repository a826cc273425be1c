// Package spool keeps print jobs durably on disk and runs the virtual
// printers that "print" them into their output trays.
//
// A job acknowledged by the protocol layer has been synced here first:
// Create, AddDocument, Submit, CloseJob, Cancel, Hold and Release return
// only after the job's record and documents are on stable storage, so a
// kill -9 or a power loss and restart lose nothing acknowledged.
//
// On disk, Options.Dir holds journal, the jobs' records appended one
// after another, the last of each job winning (see journal.go);
// docs/<id>-<n>.<ext>, the documents as received; and next-id, below
// which ids may have been used, so that ids are never reused even after
// finished jobs are purged. Syncing is group-committed: writers leave
// their files in the page cache and one goroutine makes every write
// since its last sync durable with one syncfs of the spool's filesystem,
// each writer waiting for the sync that covers it (see commit.go).
//
// Each printer's output tray gets job-<id>.<ext> for the first document
// of a printed job, job-<id>-<n>.<ext> for the next ones, and
// job-<id>.json describing the job, each written atomically (a reader
// never sees a part) and made durable by the sync that records the job's
// end. A tray on the spool's filesystem gets each document as a hard
// link to the spooled file (mode 0644), not a copy; purging the job
// removes only the spool's name.
package spool

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
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
	ErrNotFound    = errors.New("no such job")                // client-error-not-found
	ErrNotPossible = errors.New("not possible in this state") // client-error-not-possible
	ErrTooLarge    = errors.New("document too large")         // client-error-request-entity-too-large
	ErrNoPrinter   = errors.New("no such printer")            // client-error-not-found
	ErrClosed      = errors.New("spool closed")               // server-error-service-unavailable
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
	History     time.Duration // how long finished jobs are kept before being purged; 0 = DefaultHistory
	Logger      *slog.Logger
	Now         func() time.Time // nil = time.Now
}

// DefaultHistory is how long finished jobs are kept when Options.History
// is zero.
const DefaultHistory = time.Hour

// testBatchHook is copied into each new Spool's batchHook; tests set it.
var testBatchHook func(n int)

// purgeEvery is how often the spool purges finished jobs by itself.
const purgeEvery = time.Minute

// Spool is the durable job store and the virtual printers. Safe for
// concurrent use.
type Spool struct {
	dir      string
	log      *slog.Logger
	now      func() time.Time
	maxBytes int64
	history  time.Duration

	// ctx ends when Close begins: document transfers stop at their next
	// chunk and printers at their next page.
	ctx    context.Context
	cancel context.CancelFunc

	ops     sync.WaitGroup // Submit, Create, AddDocument... in progress
	workers sync.WaitGroup // printers and the purger
	commits chan commitReq // to the group committer
	done    chan struct{}  // closed when the committer has stopped
	// batchHook, set by tests before Open, sees each commit batch's size
	// before its folders are synced.
	batchHook  func(n int)
	syncHook   func() error // testSyncHook
	syncErr    error        // the first failed sync: every commit fails after it (committer only)
	syncFDs    []*os.File   // one folder per filesystem of the spool, for syncfs
	pool       chan string  // names of empty files ready in Dir/free (see pool.go)
	poolWake   chan struct{}
	freeSeq    atomic.Int64 // names files in Dir/free
	poolTarget atomic.Int64 // files the pooler keeps ready (see pool.go)
	retireMu   sync.Mutex
	retired    []string // files in Dir/free to recycle after the next sync

	jmu        sync.Mutex // guards the journal (see journal.go)
	jf         *os.File   // Dir/journal, open for appending; nil once closed
	jerr       error      // a failed write: no entry may follow it
	jbuf       []byte     // the entry being appended
	jsize      int64      // bytes in the journal
	jcompactAt int64      // size at which appendJournal compacts it

	idMu    sync.Mutex // guards nextID and idLimit
	nextID  int
	idLimit int // ids below this are reserved on disk

	mu       sync.Mutex // guards what follows and every job's exported fields
	closed   bool
	jobs     map[int]*job
	printers map[string]*printer
	names    []string // printer names in configuration order
}

// job is a job in memory. Its Job fields are guarded by Spool.mu.
type job struct {
	Job
	docs []docRecord

	wmu       sync.Mutex // serializes writes of the job's record
	receiving bool       // a document is being streamed in
	purged    bool       // purged: write its record no more (guarded by wmu)
}

// snapshot returns a copy of the job that shares no memory with it.
func (j *job) snapshot() Job {
	c := j.Job
	c.Reasons = slices.Clone(j.Reasons)
	c.Formats = slices.Clone(j.Formats)
	c.Attrs = slices.Clone(j.Attrs)
	return c
}

// setWaiting sets the state and reasons of a job that has not started
// printing, from whether it is held and closed.
func (j *job) setWaiting() {
	j.State, j.Reasons = Pending, nil
	if j.Held {
		j.State = PendingHeld
		j.Reasons = append(j.Reasons, "job-hold-until-specified")
	}
	if !j.Closed {
		j.Reasons = append(j.Reasons, "job-incoming")
	} else if !j.Held {
		j.Reasons = append(j.Reasons, "job-queued")
	}
}

// finish moves the job to a terminal state.
func (j *job) finish(st State, reason, msg string, now time.Time) {
	j.State, j.Reasons, j.Message, j.Completed = st, []string{reason}, msg, now
}

// addDoc appends a received document to the job.
func (j *job) addDoc(d docRecord) {
	j.docs = append(j.docs, d)
	j.Formats = append(j.Formats, d.Format)
	j.Documents = len(j.docs)
	j.Bytes += d.Bytes
	j.Impressions += d.Pages * j.Copies
}

// Open loads the spool in opts.Dir, recovers jobs interrupted by a crash
// (pending jobs queue again; a job that was printing starts over) and
// starts the printers.
func Open(opts Options) (*Spool, error) {
	if opts.Dir == "" {
		return nil, errors.New("open spool: no folder")
	}
	if len(opts.Printers) == 0 {
		return nil, errors.New("open spool: no printers")
	}
	s := &Spool{
		dir:      opts.Dir,
		log:      opts.Logger,
		now:      opts.Now,
		maxBytes: opts.MaxJobBytes,
		history:  opts.History,
		commits:  make(chan commitReq, 1024),
		pool:     make(chan string, poolCap),
		poolWake: make(chan struct{}, 1),
		done:     make(chan struct{}),
		jobs:     make(map[int]*job),
		printers: make(map[string]*printer),
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.poolTarget.Store(poolMinTarget)
	s.batchHook = testBatchHook
	s.syncHook = testSyncHook
	if s.now == nil {
		s.now = time.Now
	}
	if s.history == 0 {
		s.history = DefaultHistory
	}
	for _, pc := range opts.Printers {
		if pc.Name == "" || strings.ContainsAny(pc.Name, `/\`) || pc.Name == "." || pc.Name == ".." {
			return nil, fmt.Errorf("open spool: bad printer name %q", pc.Name)
		}
		if _, dup := s.printers[pc.Name]; dup {
			return nil, fmt.Errorf("open spool: printer %q configured twice", pc.Name)
		}
		if pc.PagesPerMinute < 0 {
			return nil, fmt.Errorf("open spool: printer %q: negative speed", pc.Name)
		}
		if pc.Tray == "" {
			pc.Tray = filepath.Join(opts.Dir, "tray", pc.Name)
		}
		s.printers[pc.Name] = newPrinter(pc, s.now())
		s.names = append(s.names, pc.Name)
	}
	if err := s.load(); err != nil {
		s.closeFiles()
		return nil, fmt.Errorf("open spool %q: %w", opts.Dir, err)
	}
	var err error
	s.syncFDs, err = openSyncFDs(s.dir, filepath.Join(s.dir, jobsDir), filepath.Join(s.dir, docsDir))
	if err != nil {
		s.closeFiles()
		return nil, fmt.Errorf("open spool %q: %w", opts.Dir, err)
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	go s.committer()
	s.Purge()
	for _, name := range s.names {
		p := s.printers[name]
		s.workers.Add(1)
		go s.run(p)
	}
	s.workers.Add(1)
	go s.purger()
	s.workers.Add(1)
	go s.pooler()
	return s, nil
}

// load creates the spool folders, removes what a crash left half
// written, reads the job records and recovers the jobs.
func (s *Spool) load() error {
	for _, d := range []string{s.dir, filepath.Join(s.dir, jobsDir), filepath.Join(s.dir, docsDir)} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return fmt.Errorf("create folder: %w", err)
		}
	}
	if err := syncDir(filepath.Dir(s.dir)); err != nil { // the spool folder itself may be new
		return err
	}
	for _, p := range s.printers {
		if err := os.MkdirAll(p.cfg.Tray, 0o755); err != nil {
			return fmt.Errorf("create tray of %q: %w", p.cfg.Name, err)
		}
		// A tray on another filesystem than the spool's is synced
		// on its own with the job's end (see end).
		same, err := sameFS(s.dir, p.cfg.Tray)
		if err != nil {
			return err
		}
		if !same {
			if p.trayFS, err = os.Open(p.cfg.Tray); err != nil {
				return fmt.Errorf("open tray of %q: %w", p.cfg.Name, err)
			}
		}
		if err := removeTemps(p.cfg.Tray, isTrayTemp); err != nil {
			return err
		}
	}
	isTemp := func(name string) bool { return strings.HasSuffix(name, tmpSuffix) }
	if err := removeTemps(filepath.Join(s.dir, jobsDir), isTemp); err != nil {
		return err
	}
	if err := removeTemps(s.dir, isTemp); err != nil {
		return err
	}
	if err := s.resetPool(); err != nil {
		return err
	}
	recs, err := s.readRecords()
	if err != nil {
		return err
	}
	legacy := len(recs)
	if recs, err = s.overlayJournal(recs); err != nil {
		return err
	}
	maxID := 0
	referenced := make(map[string]bool)
	var changed []*job
	for _, rec := range recs {
		maxID = max(maxID, rec.ID)
		j := &job{Job: rec.Job, docs: rec.Docs}
		for _, d := range j.docs {
			referenced[d.File] = true
		}
		if s.recover(j) {
			changed = append(changed, j)
		}
		s.jobs[j.ID] = j
		if p := s.printers[j.Printer]; p != nil && !j.State.Terminal() {
			p.enqueue(j.ID)
		}
	}
	// Documents no record names are from a transfer a crash interrupted
	// or a job whose record never became durable.
	docs := filepath.Join(s.dir, docsDir)
	if err := removeTemps(docs, func(name string) bool { return !referenced[name] }); err != nil {
		return err
	}
	// The journal anew, with the recovered jobs as they are now.
	live := make(map[int][]byte, len(s.jobs))
	for _, j := range s.jobs {
		data, err := encodeRecord(j)
		if err != nil {
			return fmt.Errorf("job %d record: %w", j.ID, err)
		}
		live[j.ID] = data
	}
	s.jmu.Lock()
	err = s.compactLocked(live)
	s.jmu.Unlock()
	if err != nil {
		return fmt.Errorf("write the job journal: %w", err)
	}
	if legacy > 0 {
		// Their jobs are in the journal now.
		jobs := filepath.Join(s.dir, jobsDir)
		if err := removeTemps(jobs, func(name string) bool { return strings.HasSuffix(name, ".json") }); err != nil {
			return err
		}
		if err := syncDir(jobs); err != nil {
			return err
		}
	}
	if err := syncDir(docs); err != nil {
		return err
	}
	next, err := readNextID(filepath.Join(s.dir, nextIDFile))
	if err != nil {
		return err
	}
	s.nextID = max(next, maxID+1, 1)
	s.idLimit = s.nextID + idBlock
	if err := s.reserveIDs(s.idLimit); err != nil {
		return err
	}
	if n := len(recs); n > 0 {
		s.log.Info("spool loaded", "jobs", n, "recovered", len(changed), "next_id", s.nextID)
	}
	return nil
}

// overlayJournal applies the journal's entries over the records read
// from the files of earlier versions, and returns the jobs' records by id.
func (s *Spool) overlayJournal(recs []*record) ([]*record, error) {
	bodies, purged, err := s.loadJournal()
	if err != nil {
		return nil, err
	}
	byID := make(map[int]*record, len(recs)+len(bodies))
	for _, r := range recs {
		if !purged[r.ID] {
			byID[r.ID] = r
		}
	}
	for id, body := range bodies {
		var r record
		err := json.Unmarshal(body, &r)
		if err == nil && r.ID != id {
			err = fmt.Errorf("entry of job %d holds job %d", id, r.ID)
		}
		if err != nil {
			// Its checksum held: damage from outside, not a crash.
			// Kept for a human; the journal is written without it.
			path := filepath.Join(s.dir, jobsDir, strconv.Itoa(id)+".journal"+badSuffix)
			s.log.Error("unreadable job record in the journal set aside", "job", id, "file", path, "err", err)
			if werr := writeFileSync(path, body); werr != nil {
				return nil, fmt.Errorf("set aside job %d: %w", id, werr)
			}
			delete(byID, id)
			continue
		}
		byID[id] = &r
	}
	out := make([]*record, 0, len(byID))
	for _, r := range byID {
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, b *record) int { return a.ID - b.ID })
	return out, nil
}

// recover brings a job loaded from disk back into a state the printers
// can go on from. It reports whether the job changed.
func (s *Spool) recover(j *job) bool {
	if j.State.Terminal() {
		return false
	}
	now := s.now()
	if s.printers[j.Printer] == nil {
		j.finish(Aborted, "aborted-by-system", fmt.Sprintf("printer %q is no longer configured", j.Printer), now)
		return true
	}
	for _, d := range j.docs {
		fi, err := os.Stat(s.docPath(d.File))
		if err != nil || fi.Size() != d.Bytes {
			s.log.Error("job aborted: document missing or damaged", "job", j.ID, "file", d.File, "err", err)
			j.finish(Aborted, "aborted-by-system", "a document was lost", now)
			return true
		}
	}
	if j.State == Processing || j.State == ProcessingStopped {
		s.log.Info("job was printing at shutdown; it starts over", "job", j.ID)
		j.Processing, j.PagesCompleted, j.Message = time.Time{}, 0, ""
		j.setWaiting()
		return true
	}
	return false
}

// Close stops the printers and releases the spool. Jobs in progress stay
// on disk and resume at the next Open. Documents still being received
// fail with ErrClosed at their next chunk.
func (s *Spool) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	s.closed = true
	s.mu.Unlock()
	s.cancel()
	s.ops.Wait()
	s.workers.Wait()
	close(s.commits)
	<-s.done
	s.closeFiles()
	return s.closeJournal()
}

// closeFiles closes the folders kept open for syncing.
func (s *Spool) closeFiles() {
	closeAll(s.syncFDs)
	for _, p := range s.printers {
		if p.trayFS != nil {
			_ = p.trayFS.Close()
		}
	}
}

// begin registers an operation, so that Close waits for it.
func (s *Spool) begin() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	s.ops.Add(1)
	return nil
}

// newID hands out the next job id, reserving a block on disk first when
// the last reserved one is used up.
func (s *Spool) newID() (int, error) {
	s.idMu.Lock()
	defer s.idMu.Unlock()
	if s.nextID >= s.idLimit {
		if err := s.reserveIDs(s.nextID + idBlock); err != nil {
			return 0, err
		}
		s.idLimit = s.nextID + idBlock
	}
	id := s.nextID
	s.nextID++
	return id, nil
}

// newJob makes the in-memory job for spec, not yet registered.
func (s *Spool) newJob(id int, spec JobSpec) *job {
	j := &job{Job: Job{
		ID:      id,
		Printer: spec.Printer,
		Name:    spec.Name,
		User:    spec.User,
		Attrs:   slices.Clone(spec.Attrs),
		Copies:  max(spec.Copies, 1),
		Held:    spec.Hold,
		Created: s.now(),
	}}
	j.setWaiting()
	return j
}

func (s *Spool) checkPrinter(name string) error {
	if s.printers[name] == nil {
		return fmt.Errorf("%w: %q", ErrNoPrinter, name)
	}
	return nil
}

// Submit creates a job with one document (Print-Job) and closes it. It
// returns once job and document are on stable storage. format may be
// "application/octet-stream", in which case it is detected from the data.
//
// If the document is over MaxJobBytes, Submit returns an error wrapping
// ErrTooLarge and creates no job (its id is skipped).
func (s *Spool) Submit(ctx context.Context, spec JobSpec, doc io.Reader, format string) (Job, error) {
	if err := s.checkPrinter(spec.Printer); err != nil {
		return Job{}, err
	}
	if err := s.begin(); err != nil {
		return Job{}, err
	}
	defer s.ops.Done()
	id, err := s.newID()
	if err != nil {
		return Job{}, err
	}
	j := s.newJob(id, spec)
	limit := int64(-1)
	if s.maxBytes > 0 {
		limit = s.maxBytes
	}
	d, err := s.receive(ctx, id, 1, doc, format, limit)
	if err != nil {
		return Job{}, fmt.Errorf("job %d: %w", id, err)
	}
	j.addDoc(d)
	j.Closed = true
	j.setWaiting()
	if err := s.createRecord(j); err != nil {
		_ = os.Remove(s.docPath(d.File))
		return Job{}, err
	}
	if err := s.commit(); err != nil {
		// Not acknowledged: best effort not to leave it behind.
		_ = s.appendJournal(entryPurge, j.ID, nil)
		_ = os.Remove(s.docPath(d.File))
		return Job{}, fmt.Errorf("job %d: %w", id, err)
	}
	return s.register(j), nil
}

// Create creates an empty job that waits for documents (Create-Job).
func (s *Spool) Create(spec JobSpec) (Job, error) {
	if err := s.checkPrinter(spec.Printer); err != nil {
		return Job{}, err
	}
	if err := s.begin(); err != nil {
		return Job{}, err
	}
	defer s.ops.Done()
	id, err := s.newID()
	if err != nil {
		return Job{}, err
	}
	j := s.newJob(id, spec)
	if err := s.createRecord(j); err != nil {
		return Job{}, err
	}
	if err := s.commit(); err != nil {
		_ = s.appendJournal(entryPurge, j.ID, nil)
		return Job{}, fmt.Errorf("job %d: %w", id, err)
	}
	return s.register(j), nil
}

// register makes a durable new job visible and wakes its printer.
func (s *Spool) register(j *job) Job {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.jobs[j.ID] = j
	p := s.printers[j.Printer]
	p.enqueue(j.ID)
	s.touch(p)
	p.kick()
	return j.snapshot()
}

// AddDocument streams doc to disk as the job's next document
// (Send-Document). last closes the job. The document is fsynced before
// AddDocument returns; ErrTooLarge leaves the job without that document.
func (s *Spool) AddDocument(ctx context.Context, id int, doc io.Reader, format string, last bool) (Job, error) {
	if err := s.begin(); err != nil {
		return Job{}, err
	}
	defer s.ops.Done()
	s.mu.Lock()
	j := s.jobs[id]
	if j == nil {
		s.mu.Unlock()
		return Job{}, fmt.Errorf("job %d: %w", id, ErrNotFound)
	}
	if j.Closed || j.State.Terminal() || j.receiving {
		s.mu.Unlock()
		return Job{}, fmt.Errorf("job %d: add document: %w", id, ErrNotPossible)
	}
	j.receiving = true
	n, limit := len(j.docs)+1, int64(-1)
	if s.maxBytes > 0 {
		limit = max(s.maxBytes-j.Bytes, 0)
	}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		j.receiving = false
		s.mu.Unlock()
	}()

	d, err := s.receive(ctx, id, n, doc, format, limit)
	if err != nil {
		return Job{}, fmt.Errorf("job %d: %w", id, err)
	}
	// The record naming the document is written before the job changes
	// in memory, so that a failed write leaves the job as it was.
	j.wmu.Lock()
	s.mu.Lock()
	if j.Closed || j.State.Terminal() {
		s.mu.Unlock()
		j.wmu.Unlock()
		_ = os.Remove(s.docPath(d.File))
		return Job{}, fmt.Errorf("job %d: add document: %w", id, ErrNotPossible)
	}
	next := &job{Job: j.snapshot(), docs: slices.Clone(j.docs)}
	next.addDoc(d)
	if last {
		next.Closed = true
		if next.State == Pending || next.State == PendingHeld {
			next.setWaiting()
		}
	}
	data, err := encodeRecord(next)
	var prev []byte
	if err == nil {
		prev, err = encodeRecord(j)
	}
	s.mu.Unlock()
	if err == nil {
		err = s.writeRecordData(j, data)
	}
	if err == nil {
		if err = s.commit(); err != nil {
			s.undoRecord(j, prev)
			err = fmt.Errorf("job %d: %w", id, err)
		}
	}
	if err != nil {
		j.wmu.Unlock()
		_ = os.Remove(s.docPath(d.File))
		return Job{}, err
	}
	s.mu.Lock()
	j.addDoc(d)
	if last {
		j.Closed = true
		if j.State == Pending || j.State == PendingHeld {
			j.setWaiting()
		}
		p := s.printers[j.Printer]
		p.kick()
	}
	s.mu.Unlock()
	j.wmu.Unlock()
	return s.snapshot(j), nil
}

// CloseJob marks the job as having all its documents (Close-Job, or
// Send-Document with no data and last-document true).
func (s *Spool) CloseJob(id int) (Job, error) {
	return s.change(id, func(j *job) error {
		if j.Closed || j.State.Terminal() {
			return ErrNotPossible
		}
		if j.receiving {
			return fmt.Errorf("%w: a document is still being received", ErrNotPossible)
		}
		j.Closed = true
		j.setWaiting()
		return nil
	})
}

// Cancel cancels a job that has not finished; ErrNotPossible if it has.
// reason is the job-state-reason to give: "job-canceled-by-user" if
// empty; short forms such as "canceled-by-operator" get their "job-"
// prefix. A job being printed stops before its next page.
func (s *Spool) Cancel(id int, reason string) (Job, error) {
	switch reason {
	case "":
		reason = "job-canceled-by-user"
	case "canceled-by-user", "canceled-by-operator", "canceled-at-device":
		reason = "job-" + reason
	}
	return s.change(id, func(j *job) error {
		if j.State.Terminal() {
			return ErrNotPossible
		}
		j.finish(Canceled, reason, "canceled", s.now())
		return nil
	})
}

// Hold keeps a pending job from printing until Release.
func (s *Spool) Hold(id int) (Job, error) {
	return s.change(id, func(j *job) error {
		if j.State != Pending && j.State != PendingHeld {
			return ErrNotPossible
		}
		j.Held = true
		j.setWaiting()
		return nil
	})
}

// Release lets a held job print.
func (s *Spool) Release(id int) (Job, error) {
	return s.change(id, func(j *job) error {
		if j.State != PendingHeld {
			return ErrNotPossible
		}
		j.Held = false
		j.setWaiting()
		return nil
	})
}

// change applies f to a job under the lock, updates its printer, and
// writes the job's record durably.
func (s *Spool) change(id int, f func(*job) error) (Job, error) {
	if err := s.begin(); err != nil {
		return Job{}, err
	}
	defer s.ops.Done()
	s.mu.Lock()
	j := s.jobs[id]
	if j == nil {
		s.mu.Unlock()
		return Job{}, fmt.Errorf("job %d: %w", id, ErrNotFound)
	}
	prev, err := encodeRecord(j)
	if err != nil {
		s.mu.Unlock()
		return Job{}, err
	}
	if err := f(j); err != nil {
		st := j.State
		s.mu.Unlock()
		return Job{}, fmt.Errorf("job %d (state %d): %w", id, st, err)
	}
	p := s.printers[j.Printer]
	if p != nil {
		if j.State.Terminal() {
			p.dequeue(j.ID)
		}
		s.touch(p)
		p.kick()
	}
	s.mu.Unlock()
	if err := s.persist(j, prev); err != nil {
		return Job{}, err
	}
	return s.snapshot(j), nil
}

func (s *Spool) snapshot(j *job) Job {
	s.mu.Lock()
	defer s.mu.Unlock()
	return j.snapshot()
}

// Job returns a snapshot of one job.
func (s *Spool) Job(id int) (Job, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	j := s.jobs[id]
	if j == nil {
		return Job{}, false
	}
	return j.snapshot(), true
}

// Jobs returns the jobs of printer ("" = all printers) for which keep
// returns true (nil = all), newest first.
func (s *Spool) Jobs(printer string, keep func(*Job) bool) []Job {
	s.mu.Lock()
	all := make([]Job, 0, len(s.jobs))
	for _, j := range s.jobs {
		if printer == "" || j.Printer == printer {
			all = append(all, j.snapshot())
		}
	}
	s.mu.Unlock()
	out := all[:0]
	for i := range all {
		if keep == nil || keep(&all[i]) {
			out = append(out, all[i])
		}
	}
	slices.SortFunc(out, func(a, b Job) int { return b.ID - a.ID })
	return out
}

// Pause stops a printer after the page it is on; jobs keep queueing.
func (s *Spool) Pause(printer string) error {
	return s.setPaused(printer, true)
}

// Resume lets a paused printer go on.
func (s *Spool) Resume(printer string) error {
	return s.setPaused(printer, false)
}

func (s *Spool) setPaused(name string, paused bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	p := s.printers[name]
	if p == nil {
		return fmt.Errorf("%w: %q", ErrNoPrinter, name)
	}
	p.paused = paused
	s.touch(p)
	p.kick()
	return nil
}

// Printer returns a printer's status.
func (s *Spool) Printer(name string) (PrinterStatus, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.printers[name]
	if p == nil {
		return PrinterStatus{}, fmt.Errorf("%w: %q", ErrNoPrinter, name)
	}
	st, reasons := p.status()
	msg := ""
	switch {
	case p.cur != nil:
		msg = fmt.Sprintf("printing job %d", p.cur.ID)
	case p.paused:
		msg = "paused"
	}
	return PrinterStatus{
		State:      st,
		Reasons:    reasons,
		Message:    msg,
		ChangeTime: p.changed,
		QueuedJobs: len(p.queue),
		Accepting:  !s.closed,
	}, nil
}

// Purge removes finished jobs older than the history period, with their
// files; the spool also runs it by itself periodically. It returns how
// many jobs it removed. The printed copies in the trays stay.
func (s *Spool) Purge() int {
	now := s.now()
	s.mu.Lock()
	var old []*job
	for id, j := range s.jobs {
		if j.State.Terminal() && !j.Completed.IsZero() && now.Sub(j.Completed) >= s.history {
			old = append(old, j)
			delete(s.jobs, id)
		}
	}
	s.mu.Unlock()
	if len(old) == 0 {
		return 0
	}
	if err := s.begin(); err != nil {
		return 0 // closing: the jobs are purged at the next Open's first Purge
	}
	defer s.ops.Done()
	// The purge is durable in the journal before the documents go, so
	// that a crash cannot bring back a job without its documents.
	// Documents left by a crash after that are removed by the next Open
	// as unreferenced.
	for _, j := range old {
		j.wmu.Lock()
		j.purged = true
		if err := s.appendJournal(entryPurge, j.ID, nil); err != nil {
			s.log.Error("purge job", "job", j.ID, "err", err)
		}
		j.wmu.Unlock()
	}
	if err := s.commit(); err != nil {
		s.log.Error("purge jobs", "err", err)
		return len(old)
	}
	// The files are not removed but retired to the pool (see pool.go):
	// the committer empties them once a sync has made their moves
	// durable.
	for _, j := range old {
		if err := s.retireOrRemove(s.recordPath(j.ID)); err != nil { // of an earlier version
			s.log.Error("purge job record", "job", j.ID, "err", err)
		}
		for _, d := range j.docs {
			if err := s.retireOrRemove(s.docPath(d.File)); err != nil {
				s.log.Error("purge document", "job", j.ID, "file", d.File, "err", err)
			}
		}
	}
	s.log.Debug("purged finished jobs", "count", len(old))
	s.commitAsync(nil, nil) // a sync to recycle the files by
	return len(old)
}

// purger runs Purge every purgeEvery until Close.
func (s *Spool) purger() {
	defer s.workers.Done()
	t := time.NewTicker(purgeEvery)
	defer t.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-t.C:
			s.Purge()
		}
	}
}

// persist durably writes the job's current record. If the sync fails it
// writes prev, the record before the change, back: the change is not
// acknowledged, and a spool reopened on what reached the disk must not
// show it.
func (s *Spool) persist(j *job, prev []byte) error {
	if err := s.writeRecord(j); err != nil {
		return err
	}
	if err := s.commit(); err != nil {
		j.wmu.Lock()
		s.undoRecord(j, prev)
		j.wmu.Unlock()
		return fmt.Errorf("job %d: %w", j.ID, err)
	}
	return nil
}

// undoRecord appends prev as the job's record again after a failed sync,
// best effort (the spool acknowledges nothing more until it is reopened,
// see commit.go); nil prev is a job that was never acknowledged. The
// caller holds j.wmu.
func (s *Spool) undoRecord(j *job, prev []byte) {
	var err error
	if prev == nil {
		err = s.appendJournal(entryPurge, j.ID, nil)
	} else {
		err = s.writeRecordData(j, prev)
	}
	if err != nil {
		s.log.Error("undo an unacknowledged change of a job", "job", j.ID, "err", err)
	}
}

// writeRecord writes the job's record as it is now. Writes of one job are
// serialized and each encodes the job after taking the write lock, so the
// last write on disk is never older than the job in memory was at its
// start.
func (s *Spool) writeRecord(j *job) error {
	j.wmu.Lock()
	defer j.wmu.Unlock()
	s.mu.Lock()
	data, err := encodeRecord(j)
	s.mu.Unlock()
	if err != nil {
		return err
	}
	return s.writeRecordData(j, data)
}

// createRecord writes the record of a new job, not yet registered, to
// the journal. The caller commits before acknowledging the job.
func (s *Spool) createRecord(j *job) error {
	data, err := encodeRecord(j)
	if err != nil {
		return err
	}
	if err := s.appendJournal(entryRecord, j.ID, data); err != nil {
		return fmt.Errorf("job %d record: %w", j.ID, err)
	}
	return nil
}

// writeRecordData writes data as the job's record; the caller holds
// j.wmu and commits before it tells anyone. The journal keeps the last
// record of a job, so a crash leaves the old record or the new one.
func (s *Spool) writeRecordData(j *job, data []byte) error {
	if j.purged {
		return nil
	}
	if err := s.appendJournal(entryRecord, j.ID, data); err != nil {
		return fmt.Errorf("job %d record: %w", j.ID, err)
	}
	return nil
}

// persistEnd records a printed job's end without waiting for the disk,
// so that an instant printer is not held by syncs: the record goes to
// the journal, and a lazy commit makes it (and the tray's output)
// durable with the next sync. If a crash loses the end, the job prints
// again and its tray files are written over, no worse.
func (s *Spool) persistEnd(p *printer, j *job) error {
	j.wmu.Lock()
	s.mu.Lock()
	data, err := encodeRecord(j)
	s.mu.Unlock()
	if err == nil {
		err = s.writeRecordData(j, data)
	}
	j.wmu.Unlock()
	if err != nil {
		return err
	}
	s.commitAsync(p.trayFS, nil)
	return nil
}

func encodeRecord(j *job) ([]byte, error) {
	data, err := json.Marshal(record{Job: j.Job, Docs: j.docs})
	if err != nil {
		return nil, fmt.Errorf("encode job %d: %w", j.ID, err)
	}
	return data, nil
}
