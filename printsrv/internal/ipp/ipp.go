// Package ipp is printsrv's protocol layer: it validates IPP/1.1 and
// IPP/2.0 requests decoded by goipp (RFC 8010, RFC 8011), runs the
// operations against the spool, and builds the printer and job attributes
// that lp, lpstat, cancel and ipptool read.
//
// The package knows nothing of HTTP: the server hands it a decoded
// request and the reader positioned at the document data, and sends back
// the response message it returns.
package ipp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/OpenPrinting/goipp"

	"example.com/appliance/printsrv/internal/spool"
)

// CUPS operations that lp, lpstat and cancel send.
const (
	OpCupsGetDefault  goipp.Op = 0x4001
	OpCupsGetPrinters goipp.Op = 0x4002
	OpCupsGetClasses  goipp.Op = 0x4005
)

// Spool is what the operations need from the job store. *spool.Spool
// implements it; tests use a fake.
type Spool interface {
	Submit(ctx context.Context, spec spool.JobSpec, doc io.Reader, format string) (spool.Job, error)
	Create(spec spool.JobSpec) (spool.Job, error)
	AddDocument(ctx context.Context, id int, doc io.Reader, format string, last bool) (spool.Job, error)
	CloseJob(id int) (spool.Job, error)
	Cancel(id int, reason string) (spool.Job, error)
	Hold(id int) (spool.Job, error)
	Release(id int) (spool.Job, error)
	Job(id int) (spool.Job, bool)
	Jobs(printer string, keep func(*spool.Job) bool) []spool.Job
	Pause(printer string) error
	Resume(printer string) error
	Printer(name string) (spool.PrinterStatus, error)
}

var _ Spool = (*spool.Spool)(nil)

// Printer describes one queue as IPP shows it.
type Printer struct {
	Name           string
	MakeAndModel   string
	Location       string
	Info           string
	Formats        []string // document-format-supported, without application/octet-stream
	PagesPerMinute int      // 0: instant
	Color          bool
	Duplex         bool
	Media          []string // PWG self-describing names
	MediaDefault   string
}

// Handler runs IPP operations. Set its fields before the first Serve.
type Handler struct {
	Spool     Spool
	Printers  []Printer
	Default   string   // the default queue's name
	Operators []string // users who may cancel anyone's jobs and pause queues
	Log       *slog.Logger
	// AuthBasic says that users authenticate with HTTP Basic, which
	// uri-authentication-supported then shows.
	AuthBasic bool
	// Started is the server's start, the origin of printer-up-time.
	Started time.Time
	// Now, when set, replaces time.Now (for tests).
	Now func() time.Time
	// Open, when set, remembers when jobs that wait for documents last
	// heard from their client, for CloseStale. It outlives reloads.
	Open *OpenJobs

	tablesOnce sync.Once
	tables     []*printerTable // by index in Printers, see printerTable
}

// OperationTimeout is multiple-operation-time-out: how long a job created
// with Create-Job waits for its next Send-Document before CloseStale
// closes it and it prints what it has (action process-job).
const OperationTimeout = 5 * time.Minute

// OpenJobs tracks jobs waiting for documents. Safe for concurrent use.
type OpenJobs struct {
	mu   sync.Mutex
	seen map[int]time.Time
}

func (o *OpenJobs) touch(id int, t time.Time, open bool) {
	if o == nil {
		return
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.seen == nil {
		o.seen = map[int]time.Time{}
	}
	if open {
		o.seen[id] = t
	} else {
		delete(o.seen, id)
	}
}

// CloseStale closes the jobs whose client has not sent a document for
// OperationTimeout, so that a client that went away does not leave a job
// waiting for ever; it returns how many it closed. A job left open by a
// previous run counts from its creation.
func (h *Handler) CloseStale(now time.Time) int {
	n := 0
	for _, j := range h.Spool.Jobs("", func(j *spool.Job) bool { return !j.Closed && !j.State.Terminal() }) {
		last := j.Created
		if h.Open != nil {
			h.Open.mu.Lock()
			if t, ok := h.Open.seen[j.ID]; ok {
				last = t
			}
			h.Open.mu.Unlock()
		}
		if now.Sub(last) < OperationTimeout {
			continue
		}
		if _, err := h.Spool.CloseJob(j.ID); err != nil {
			h.Log.Warn("closing a job whose client went away", "job", j.ID, "err", err)
			continue
		}
		h.Open.touch(j.ID, now, false)
		h.Log.Info("closed a job whose client sent nothing more", "job", j.ID, "printer", j.Printer, "idle", now.Sub(last).Round(time.Second))
		n++
	}
	return n
}

// Request is one decoded IPP request and where it came from.
type Request struct {
	Msg  *goipp.Message
	Doc  io.Reader // the HTTP body after the IPP message: the document data
	Host string    // the HTTP Host header, for the URIs in the response
	TLS  bool      // the request came over TLS: URIs are ipps://
	// User is the HTTP-authenticated user, or "" when there is none; it
	// then wins over requesting-user-name.
	User string
}

// Error is an IPP status with a message for status-message, and the
// attributes to return in the unsupported-attributes group.
type Error struct {
	Status      goipp.Status
	Msg         string
	Unsupported goipp.Attributes
}

func (e *Error) Error() string {
	return fmt.Sprintf("%s: %s", e.Status, e.Msg)
}

func errorf(st goipp.Status, format string, args ...any) *Error {
	return &Error{Status: st, Msg: fmt.Sprintf(format, args...)}
}

// response is a response being built.
type response struct {
	msg         *goipp.Message
	unsupported goipp.Attributes
	ignored     bool // an attribute was ignored or substituted
}

func (r *response) add(g goipp.Tag, attrs goipp.Attributes) {
	r.msg.Groups = append(r.msg.Groups, goipp.Group{Tag: g, Attrs: attrs})
}

// Serve runs one request and returns the response; it never fails.
func (h *Handler) Serve(ctx context.Context, req *Request) *goipp.Message {
	m := req.Msg
	resp := &response{msg: goipp.NewResponse(respVersion(m.Version), goipp.StatusOk, m.RequestID)}
	status, err := h.serve(ctx, req, resp)
	var ie *Error
	if err != nil {
		if !errors.As(err, &ie) {
			ie = mapSpoolError(err)
		}
		status = ie.Status
		resp.unsupported = append(resp.unsupported, ie.Unsupported...)
		// An error response carries only the operation group and the
		// unsupported attributes.
		resp.msg.Groups = nil
	} else if resp.ignored || len(resp.unsupported) > 0 {
		if status == goipp.StatusOk {
			status = goipp.StatusOkIgnoredOrSubstituted
		}
	}
	op := goipp.Attributes{
		goipp.MakeAttribute("attributes-charset", goipp.TagCharset, goipp.String("utf-8")),
		goipp.MakeAttribute("attributes-natural-language", goipp.TagLanguage, goipp.String("en")),
	}
	if ie != nil && ie.Msg != "" {
		op.Add(goipp.MakeAttribute("status-message", goipp.TagText, goipp.String(truncate(ie.Msg, 255))))
	}
	groups := goipp.Groups{{Tag: goipp.TagOperationGroup, Attrs: op}}
	if len(resp.unsupported) > 0 {
		groups = append(groups, goipp.Group{Tag: goipp.TagUnsupportedGroup, Attrs: resp.unsupported})
	}
	resp.msg.Groups = append(groups, resp.msg.Groups...)
	resp.msg.Code = goipp.Code(status)
	return resp.msg
}

// respVersion answers in the request's version when it is one we speak.
func respVersion(v goipp.Version) goipp.Version {
	if v.Major() == 1 || v.Major() == 2 {
		return v
	}
	return goipp.MakeVersion(2, 0)
}

// ErrDocument is wrapped by the server around failures to read the
// document from the client: the client's fault, not the server's.
var ErrDocument = errors.New("reading the document")

func mapSpoolError(err error) *Error {
	switch {
	case errors.Is(err, spool.ErrTooLarge):
		return errorf(goipp.StatusErrorRequestEntity, "%v", err)
	case errors.Is(err, ErrDocument), errors.Is(err, context.Canceled):
		return errorf(goipp.StatusErrorBadRequest, "%v", err)
	case errors.Is(err, spool.ErrNotFound), errors.Is(err, spool.ErrNoPrinter):
		return errorf(goipp.StatusErrorNotFound, "%v", err)
	case errors.Is(err, spool.ErrNotPossible):
		return errorf(goipp.StatusErrorNotPossible, "%v", err)
	case errors.Is(err, spool.ErrTooLarge):
		return errorf(goipp.StatusErrorRequestEntity, "%v", err)
	case errors.Is(err, spool.ErrClosed):
		return errorf(goipp.StatusErrorServiceUnavailable, "%v", err)
	case errors.Is(err, errCompression):
		return errorf(goipp.StatusErrorCompressionError, "%v", err)
	}
	return errorf(goipp.StatusErrorInternal, "%v", err)
}

// IsInternal reports whether a response status is a server error worth
// logging.
func IsInternal(st goipp.Status) bool {
	return st >= 0x0500 && st != goipp.StatusErrorServiceUnavailable
}

func (h *Handler) serve(ctx context.Context, req *Request, resp *response) (goipp.Status, error) {
	r, err := h.validate(req, resp)
	if err != nil {
		return 0, err
	}
	switch goipp.Op(req.Msg.Code) {
	case goipp.OpPrintJob:
		return h.printJob(ctx, r, resp)
	case goipp.OpValidateJob:
		return h.validateJob(r, resp)
	case goipp.OpCreateJob:
		return h.createJob(r, resp)
	case goipp.OpSendDocument:
		return h.sendDocument(ctx, r, resp)
	case goipp.OpCloseJob:
		return h.closeJob(r, resp)
	case goipp.OpCancelJob:
		return h.cancelJob(r, resp)
	case goipp.OpCancelJobs, goipp.OpCancelMyJobs:
		return h.cancelJobs(r, resp)
	case goipp.OpHoldJob, goipp.OpReleaseJob:
		return h.holdRelease(r, resp)
	case goipp.OpGetJobAttributes:
		return h.getJobAttributes(r, resp)
	case goipp.OpGetJobs:
		return h.getJobs(r, resp)
	case goipp.OpGetPrinterAttributes:
		return h.getPrinterAttributes(r, resp)
	case goipp.OpPausePrinter, goipp.OpResumePrinter:
		return h.pauseResume(r, resp)
	case goipp.OpIdentifyPrinter:
		return h.identify(r, resp)
	case OpCupsGetDefault:
		return h.cupsGetDefault(r, resp)
	case OpCupsGetPrinters:
		return h.cupsGetPrinters(r, resp)
	case OpCupsGetClasses:
		return goipp.StatusOk, nil
	}
	return 0, errorf(goipp.StatusErrorOperationNotSupported, "operation %s is not supported", goipp.Op(req.Msg.Code))
}

// printer finds a queue by name.
func (h *Handler) printer(name string) *Printer {
	for i := range h.Printers {
		if h.Printers[i].Name == name {
			return &h.Printers[i]
		}
	}
	return nil
}

// PrinterFromPath maps a request path (of an HTTP request or of a
// printer-uri) to a queue: /printers/NAME, /ipp/print/NAME, /classes/NAME
// or, for the default queue, /ipp/print. ok is false for paths that name
// no queue; name is "" with ok for paths that name the server (/, /jobs,
// /admin).
func (h *Handler) PrinterFromPath(path string) (name string, ok bool) {
	path = strings.TrimSuffix(path, "/")
	switch path {
	case "", "/jobs", "/admin", "/printers", "/ipp":
		return "", true
	case "/ipp/print":
		return h.Default, true
	}
	for _, pre := range []string{"/printers/", "/ipp/print/", "/classes/"} {
		if n, found := strings.CutPrefix(path, pre); found {
			if h.printer(n) != nil {
				return n, true
			}
			return n, false
		}
	}
	return "", false
}

// uriPath returns the path of an ipp:// or ipps:// URI.
func uriPath(uri string) (string, bool) {
	rest, ok := strings.CutPrefix(uri, "ipp://")
	if !ok {
		if rest, ok = strings.CutPrefix(uri, "ipps://"); !ok {
			return "", false
		}
	}
	if i := strings.IndexByte(rest, '/'); i >= 0 {
		p := rest[i:]
		if j := strings.IndexAny(p, "?#"); j >= 0 {
			p = p[:j]
		}
		return p, true
	}
	return "/", true
}

// jobIDFromURI reads the id at the end of a job-uri (…/jobs/N or …/N).
func jobIDFromURI(uri string) (int, bool) {
	p, ok := uriPath(uri)
	if !ok {
		return 0, false
	}
	i := strings.LastIndexByte(p, '/')
	id, err := strconv.Atoi(p[i+1:])
	return id, err == nil && id > 0
}

// base returns the scheme://host:port prefix for URIs in responses.
func (req *Request) base() string {
	scheme := "ipp"
	if req.TLS {
		scheme = "ipps"
	}
	host := req.Host
	if host == "" {
		host = "localhost"
	}
	if _, _, err := net.SplitHostPort(host); err != nil && !strings.Contains(host, ":") {
		host = net.JoinHostPort(host, "631")
	}
	return scheme + "://" + host
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}

func (h *Handler) isOperator(user string) bool {
	return user != "" && slices.Contains(h.Operators, user)
}

func (h *Handler) now() time.Time {
	if h.Now != nil {
		return h.Now()
	}
	return time.Now()
}
