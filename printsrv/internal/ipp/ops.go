package ipp

import (
	"bufio"
	"compress/flate"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/OpenPrinting/goipp"

	"example.com/appliance/printsrv/internal/spool"
)

// errCompression wraps a failure to decompress a document.
var errCompression = errors.New("bad compressed document")

// jobTemplate checks the value of each job template attribute a job may
// carry; a false result puts the attribute in the unsupported group.
var jobTemplate = map[string]func(p *Printer, a goipp.Attribute) bool{
	"copies": func(_ *Printer, a goipp.Attribute) bool {
		return one(a, goipp.TagInteger) && intIn(a, 1, 999)
	},
	"finishings": func(_ *Printer, a goipp.Attribute) bool {
		return syntaxOK(a, synEnum, true) && intIn(a, 3, 3)
	},
	"job-hold-until": func(_ *Printer, a goipp.Attribute) bool {
		return syntaxOK(a, synKwName, false) && slices.Contains([]string{"no-hold", "indefinite"}, a.Values[0].V.String())
	},
	"job-priority": func(_ *Printer, a goipp.Attribute) bool {
		return one(a, goipp.TagInteger) && intIn(a, 1, 100)
	},
	"job-sheets": func(_ *Printer, a goipp.Attribute) bool {
		return syntaxOK(a, synKwName, true) && a.Values[0].V.String() == "none"
	},
	"media": func(p *Printer, a goipp.Attribute) bool {
		return syntaxOK(a, synKwName, false) && slices.Contains(p.Media, a.Values[0].V.String())
	},
	"media-col": func(p *Printer, a goipp.Attribute) bool {
		return syntaxOK(a, synColl, false) && mediaColOK(p, a.Values[0].V.(goipp.Collection))
	},
	"multiple-document-handling": func(_ *Printer, a goipp.Attribute) bool {
		return syntaxOK(a, synKeyword, false) && slices.Contains([]string{"separate-documents-uncollated-copies", "separate-documents-collated-copies"}, a.Values[0].V.String())
	},
	"number-up": func(_ *Printer, a goipp.Attribute) bool {
		return one(a, goipp.TagInteger) && intIn(a, 1, 1)
	},
	"orientation-requested": func(_ *Printer, a goipp.Attribute) bool {
		return one(a, goipp.TagEnum) && intIn(a, 3, 6)
	},
	"output-bin": func(_ *Printer, a goipp.Attribute) bool {
		return syntaxOK(a, synKwName, false) && a.Values[0].V.String() == "face-down"
	},
	"page-ranges": func(_ *Printer, a goipp.Attribute) bool {
		if !syntaxOK(a, synRange, true) {
			return false
		}
		prev := 0
		for _, v := range a.Values {
			r := v.V.(goipp.Range)
			if r.Lower < 1 || r.Upper < r.Lower || r.Lower <= prev {
				return false
			}
			prev = r.Upper
		}
		return true
	},
	"print-color-mode": func(p *Printer, a goipp.Attribute) bool {
		return syntaxOK(a, synKeyword, false) && slices.Contains(p.colorModes(), a.Values[0].V.String())
	},
	"print-content-optimize": func(_ *Printer, a goipp.Attribute) bool {
		return syntaxOK(a, synKeyword, false) && a.Values[0].V.String() == "auto"
	},
	"print-quality": func(_ *Printer, a goipp.Attribute) bool {
		return one(a, goipp.TagEnum) && intIn(a, 3, 5)
	},
	"print-rendering-intent": func(_ *Printer, a goipp.Attribute) bool {
		return syntaxOK(a, synKeyword, false) && a.Values[0].V.String() == "auto"
	},
	"print-scaling": func(_ *Printer, a goipp.Attribute) bool {
		return syntaxOK(a, synKeyword, false) && slices.Contains([]string{"auto", "auto-fit", "fill", "fit", "none"}, a.Values[0].V.String())
	},
	"printer-resolution": func(_ *Printer, a goipp.Attribute) bool {
		if !one(a, goipp.TagResolution) {
			return false
		}
		r := a.Values[0].V.(goipp.Resolution)
		return r.Xres == 300 && r.Yres == 300 && r.Units == goipp.UnitsDpi
	},
	"sides": func(p *Printer, a goipp.Attribute) bool {
		return syntaxOK(a, synKeyword, false) && slices.Contains(p.sides(), a.Values[0].V.String())
	},
	"overrides": func(_ *Printer, a goipp.Attribute) bool { return syntaxOK(a, synColl, true) },
	// Defaults the queues advertise that lp sends back as job attributes.
	"identify-actions": func(_ *Printer, a goipp.Attribute) bool { return syntaxOK(a, synKeyword, true) },
	"document-format": func(p *Printer, a goipp.Attribute) bool {
		return one(a, goipp.TagMimeType) && p.SupportsFormat(a.Values[0].V.String())
	},
	"job-account-id":              func(_ *Printer, a goipp.Attribute) bool { return syntaxOK(a, synName, false) },
	"job-accounting-user-id":      func(_ *Printer, a goipp.Attribute) bool { return syntaxOK(a, synName, false) },
	"job-password-encryption":     func(_ *Printer, a goipp.Attribute) bool { return true },
	"print-scaling-default":       nil,
	"job-cancel-after":            func(_ *Printer, a goipp.Attribute) bool { return one(a, goipp.TagInteger) && intIn(a, 1, 1<<31-1) },
	"job-error-action":            func(_ *Printer, a goipp.Attribute) bool { return syntaxOK(a, synKeyword, false) },
	"multiple-operation-time-out": nil,
}

func one(a goipp.Attribute, t goipp.Tag) bool { return len(a.Values) == 1 && a.Values[0].T == t }

func intIn(a goipp.Attribute, lo, hi int) bool {
	for _, v := range a.Values {
		n, ok := v.V.(goipp.Integer)
		if !ok || int(n) < lo || int(n) > hi {
			return false
		}
	}
	return true
}

func mediaColOK(p *Printer, c goipp.Collection) bool {
	for _, m := range c {
		switch m.Name {
		case "media-size":
			sz, ok := m.Values[0].V.(goipp.Collection)
			if !ok {
				return false
			}
			var x, y int
			for _, d := range sz {
				if n, ok := d.Values[0].V.(goipp.Integer); ok {
					switch d.Name {
					case "x-dimension":
						x = int(n)
					case "y-dimension":
						y = int(n)
					}
				}
			}
			found := false
			for _, med := range p.Media {
				if mx, my, _ := mediaSize(med); abs(mx-x) <= 100 && abs(my-y) <= 100 {
					found = true
				}
			}
			if !found {
				return false
			}
		case "media-size-name", "media-key":
			if !slices.Contains(p.Media, m.Values[0].V.String()) {
				return false
			}
		case "media-source":
			if !slices.Contains([]string{"auto", "main"}, m.Values[0].V.String()) {
				return false
			}
		case "media-type":
			if !slices.Contains([]string{"auto", "stationery"}, m.Values[0].V.String()) {
				return false
			}
		case "media-bottom-margin", "media-left-margin", "media-right-margin", "media-top-margin":
		default:
			return false
		}
	}
	return true
}

func abs(n int) int { return max(n, -n) }

// jobSpec validates a job creation request (Print-Job, Validate-Job,
// Create-Job) and builds what the spool stores.
func (h *Handler) jobSpec(r *request, resp *response) (spool.JobSpec, error) {
	p := r.printer
	fidelity := r.boolean("ipp-attribute-fidelity", false)
	if err := h.checkDocOps(r); err != nil {
		return spool.JobSpec{}, err
	}
	spec := spool.JobSpec{Printer: p.Name, User: r.user, Copies: 1}
	spec.Name = r.str("job-name")
	if spec.Name == "" {
		spec.Name = r.str("document-name")
	}
	if spec.Name == "" {
		spec.Name = "Untitled"
	}
	var keep goipp.Attributes
	var bad goipp.Attributes
	for _, a := range r.job {
		check, known := jobTemplate[a.Name]
		switch {
		case !known || check == nil:
			bad = append(bad, unsupportedAttr(a))
			continue
		case !check(p, a):
			bad = append(bad, a)
			continue
		}
		keep = append(keep, a)
		switch a.Name {
		case "copies":
			spec.Copies = int(a.Values[0].V.(goipp.Integer))
		case "job-hold-until":
			spec.Hold = a.Values[0].V.String() != "no-hold"
		}
	}
	if len(bad) > 0 {
		if fidelity {
			return spec, &Error{Status: goipp.StatusErrorAttributesOrValues, Msg: "unsupported job attributes", Unsupported: bad}
		}
		resp.unsupported = append(resp.unsupported, bad...)
	}
	if len(keep) > 0 {
		m := goipp.NewRequest(goipp.MakeVersion(2, 0), goipp.OpPrintJob, 1)
		m.Groups = goipp.Groups{{Tag: goipp.TagJobGroup, Attrs: keep}}
		b, err := m.EncodeBytes()
		if err != nil {
			return spec, fmt.Errorf("encode job attributes: %w", err)
		}
		spec.Attrs = b
	}
	return spec, nil
}

// checkDocOps checks the document operation attributes: format and
// compression.
func (h *Handler) checkDocOps(r *request) error {
	if f, ok := r.attrs["document-format"]; ok && !r.printer.SupportsFormat(f.Values[0].V.String()) {
		return &Error{Status: goipp.StatusErrorDocumentFormatNotSupported,
			Msg: "document-format " + f.Values[0].V.String() + " is not supported", Unsupported: goipp.Attributes{f}}
	}
	if c, ok := r.attrs["compression"]; ok {
		switch c.Values[0].V.String() {
		case "none", "gzip", "deflate":
		default:
			return &Error{Status: goipp.StatusErrorCompressionNotSupported,
				Msg: "compression " + c.Values[0].V.String() + " is not supported", Unsupported: goipp.Attributes{c}}
		}
	}
	return nil
}

// document returns the request's document data, decompressed.
func (r *request) document() (io.Reader, error) {
	switch r.str("compression") {
	case "gzip":
		zr, err := gzip.NewReader(r.Doc)
		if err != nil {
			return nil, fmt.Errorf("%w: gzip: %v", errCompression, err)
		}
		return &decompressReader{r: zr}, nil
	case "deflate":
		return &decompressReader{r: flate.NewReader(r.Doc)}, nil
	}
	return r.Doc, nil
}

// decompressReader marks decompression errors so they map to
// client-error-compression-error rather than a server error.
type decompressReader struct{ r io.Reader }

func (d *decompressReader) Read(p []byte) (int, error) {
	n, err := d.r.Read(p)
	if err != nil && err != io.EOF {
		err = fmt.Errorf("%w: %v", errCompression, err)
	}
	return n, err
}

func (r *request) format() string {
	if f := r.str("document-format"); f != "" {
		return strings.ToLower(f)
	}
	return "application/octet-stream"
}

func (h *Handler) printJob(ctx context.Context, r *request, resp *response) (goipp.Status, error) {
	spec, err := h.jobSpec(r, resp)
	if err != nil {
		return 0, err
	}
	doc, err := r.document()
	if err != nil {
		return 0, err
	}
	j, err := h.Spool.Submit(ctx, spec, doc, r.format())
	if err != nil {
		return 0, err
	}
	resp.add(goipp.TagJobGroup, h.jobSummary(j, r))
	return goipp.StatusOk, nil
}

func (h *Handler) validateJob(r *request, resp *response) (goipp.Status, error) {
	_, err := h.jobSpec(r, resp)
	return goipp.StatusOk, err
}

func (h *Handler) createJob(r *request, resp *response) (goipp.Status, error) {
	spec, err := h.jobSpec(r, resp)
	if err != nil {
		return 0, err
	}
	j, err := h.Spool.Create(spec)
	if err != nil {
		return 0, err
	}
	h.Open.touch(j.ID, h.now(), true)
	resp.add(goipp.TagJobGroup, h.jobSummary(j, r))
	return goipp.StatusOk, nil
}

// ownJob finds the job a request names and checks that the requester
// may change it: its owner or an operator.
func (h *Handler) ownJob(r *request) (spool.Job, error) {
	j, ok := h.Spool.Job(r.jobID)
	if !ok {
		return j, errorf(goipp.StatusErrorNotFound, "job %d does not exist", r.jobID)
	}
	if r.printer != nil && r.printer.Name != j.Printer && r.attrs["printer-uri"].Name != "" {
		if path, _ := uriPath(r.attrs["printer-uri"].Values[0].V.String()); path != "/ipp/print" {
			return j, errorf(goipp.StatusErrorNotFound, "job %d is not on printer %s", r.jobID, r.printer.Name)
		}
	}
	if j.User != r.user && !h.isOperator(r.user) {
		return j, errorf(goipp.StatusErrorNotAuthorized, "job %d belongs to %s, not %s", j.ID, j.User, r.user)
	}
	return j, nil
}

func (h *Handler) sendDocument(ctx context.Context, r *request, resp *response) (goipp.Status, error) {
	if _, ok := r.attrs["last-document"]; !ok {
		return 0, errorf(goipp.StatusErrorBadRequest, "last-document is missing")
	}
	j, err := h.ownJob(r)
	if err != nil {
		return 0, err
	}
	r.printer = h.printer(j.Printer)
	if r.printer == nil {
		return 0, errorf(goipp.StatusErrorNotFound, "the job's printer %s is gone", j.Printer)
	}
	if err := h.checkDocOps(r); err != nil {
		return 0, err
	}
	if j.State.Terminal() || j.Closed {
		return 0, errorf(goipp.StatusErrorNotPossible, "job %d takes no more documents", j.ID)
	}
	last := r.boolean("last-document", false)
	// Send-Document with no data and last-document true only closes the job.
	br := bufio.NewReader(r.Doc)
	if _, perr := br.Peek(1); perr == io.EOF && last {
		j, err = h.Spool.CloseJob(j.ID)
	} else {
		r.Doc = br
		var doc io.Reader
		if doc, err = r.document(); err == nil {
			j, err = h.Spool.AddDocument(ctx, j.ID, doc, r.format(), last)
		}
	}
	if err != nil {
		return 0, err
	}
	h.Open.touch(j.ID, h.now(), !j.Closed)
	resp.add(goipp.TagJobGroup, h.jobSummary(j, r))
	return goipp.StatusOk, nil
}

func (h *Handler) closeJob(r *request, resp *response) (goipp.Status, error) {
	j, err := h.ownJob(r)
	if err != nil {
		return 0, err
	}
	if j, err = h.Spool.CloseJob(j.ID); err != nil {
		return 0, err
	}
	h.Open.touch(j.ID, h.now(), false)
	resp.add(goipp.TagJobGroup, h.jobSummary(j, r))
	return goipp.StatusOk, nil
}

func (h *Handler) cancelJob(r *request, resp *response) (goipp.Status, error) {
	j, err := h.ownJob(r)
	if err != nil {
		return 0, err
	}
	if j.State.Terminal() {
		return 0, errorf(goipp.StatusErrorNotPossible, "job %d is already %s", j.ID, stateName(j.State))
	}
	_, err = h.Spool.Cancel(j.ID, "canceled-by-user")
	return goipp.StatusOk, err
}

func (h *Handler) holdRelease(r *request, resp *response) (goipp.Status, error) {
	j, err := h.ownJob(r)
	if err != nil {
		return 0, err
	}
	if r.op == goipp.OpHoldJob {
		j, err = h.Spool.Hold(j.ID)
	} else {
		j, err = h.Spool.Release(j.ID)
	}
	return goipp.StatusOk, err
}

// cancelJobs runs Cancel-Jobs (an operator's, every job) and
// Cancel-My-Jobs (the requester's own).
func (h *Handler) cancelJobs(r *request, resp *response) (goipp.Status, error) {
	mine := r.op == goipp.OpCancelMyJobs
	if !mine && !h.isOperator(r.user) {
		if r.User == "" && h.AuthBasic {
			return 0, errorf(goipp.StatusErrorNotAuthenticated, "Cancel-Jobs needs an operator")
		}
		return 0, errorf(goipp.StatusErrorNotAuthorized, "only an operator may cancel every job; %s is not one", r.user)
	}
	var ids map[int]bool
	if a, ok := r.attrs["job-ids"]; ok {
		ids = map[int]bool{}
		for _, v := range a.Values {
			ids[int(v.V.(goipp.Integer))] = true
		}
	}
	printer := ""
	if r.printer != nil {
		printer = r.printer.Name
	}
	jobs := h.Spool.Jobs(printer, func(j *spool.Job) bool {
		return !j.State.Terminal() && (ids == nil || ids[j.ID]) && (!mine || j.User == r.user)
	})
	for id := range ids {
		j, ok := h.Spool.Job(id)
		switch {
		case !ok:
			return 0, &Error{Status: goipp.StatusErrorNotFound, Msg: fmt.Sprintf("job %d does not exist", id), Unsupported: goipp.Attributes{r.attrs["job-ids"]}}
		case mine && j.User != r.user:
			return 0, errorf(goipp.StatusErrorNotAuthorized, "job %d is not yours", id)
		case j.State.Terminal():
			return 0, errorf(goipp.StatusErrorNotPossible, "job %d is already %s", id, stateName(j.State))
		}
	}
	for _, j := range jobs {
		if _, err := h.Spool.Cancel(j.ID, "canceled-by-user"); err != nil && !errors.Is(err, spool.ErrNotPossible) {
			return 0, err
		}
	}
	return goipp.StatusOk, nil
}

func (h *Handler) getJobAttributes(r *request, resp *response) (goipp.Status, error) {
	j, ok := h.Spool.Job(r.jobID)
	if !ok {
		return 0, errorf(goipp.StatusErrorNotFound, "job %d does not exist", r.jobID)
	}
	resp.add(goipp.TagJobGroup, h.jobAttrs(j, r, newJobSelector(r.keywords("requested-attributes"), []string{"all"})))
	return goipp.StatusOk, nil
}

func (h *Handler) getJobs(r *request, resp *response) (goipp.Status, error) {
	which := "not-completed"
	if a, ok := r.attrs["which-jobs"]; ok {
		which = a.Values[0].V.String()
		if whichJobs[which] == nil {
			return 0, &Error{Status: goipp.StatusErrorAttributesOrValues, Msg: "which-jobs " + which + " is not supported", Unsupported: goipp.Attributes{a}}
		}
	}
	limit := 0
	if a, ok := r.attrs["limit"]; ok {
		if n := int(a.Values[0].V.(goipp.Integer)); n > 0 {
			limit = n
		} else {
			return 0, &Error{Status: goipp.StatusErrorAttributesOrValues, Msg: "limit must be positive", Unsupported: goipp.Attributes{a}}
		}
	}
	mine := r.boolean("my-jobs", false)
	sel := whichJobs[which]
	printer := ""
	if r.printer != nil {
		printer = r.printer.Name
	}
	jobs := h.Spool.Jobs(printer, func(j *spool.Job) bool {
		return sel(j.State) && (!mine || j.User == r.user)
	})
	if limit > 0 && len(jobs) > limit {
		jobs = jobs[:limit]
	}
	want := newJobSelector(r.keywords("requested-attributes"), []string{"job-id", "job-uri"})
	for _, j := range jobs {
		resp.add(goipp.TagJobGroup, h.jobAttrs(j, r, want))
	}
	return goipp.StatusOk, nil
}

func (h *Handler) getPrinterAttributes(r *request, resp *response) (goipp.Status, error) {
	attrs, err := h.printerGroup(r.printer, r)
	if err != nil {
		return 0, err
	}
	resp.add(goipp.TagPrinterGroup, attrs)
	return goipp.StatusOk, nil
}

func (h *Handler) printerGroup(p *Printer, r *request) (goipp.Attributes, error) {
	st, err := h.Spool.Printer(p.Name)
	if err != nil {
		return nil, err
	}
	return h.selectPrinterAttrs(p, r, st, r.keywords("requested-attributes")), nil
}

func (h *Handler) pauseResume(r *request, resp *response) (goipp.Status, error) {
	if !h.isOperator(r.user) {
		if r.User == "" && h.AuthBasic {
			return 0, errorf(goipp.StatusErrorNotAuthenticated, "%s needs an operator", goipp.Op(r.op))
		}
		return 0, errorf(goipp.StatusErrorNotAuthorized, "only an operator may pause or resume a printer; %s is not one", r.user)
	}
	var err error
	if r.op == goipp.OpPausePrinter {
		err = h.Spool.Pause(r.printer.Name)
	} else {
		err = h.Spool.Resume(r.printer.Name)
	}
	return goipp.StatusOk, err
}

func (h *Handler) identify(r *request, resp *response) (goipp.Status, error) {
	if a, ok := r.attrs["identify-actions"]; ok {
		for _, v := range a.Values {
			if s := v.V.String(); s != "display" && s != "sound" {
				return 0, &Error{Status: goipp.StatusErrorAttributesOrValues, Msg: "identify-actions " + s + " is not supported", Unsupported: goipp.Attributes{a}}
			}
		}
	}
	h.Log.Info("identify printer", "printer", r.printer.Name, "user", r.user, "message", r.str("message"))
	return goipp.StatusOk, nil
}

func (h *Handler) cupsGetDefault(r *request, resp *response) (goipp.Status, error) {
	p := h.printer(h.Default)
	if p == nil {
		return 0, errorf(goipp.StatusErrorNotFound, "no default printer")
	}
	attrs, err := h.printerGroup(p, r)
	if err != nil {
		return 0, err
	}
	resp.add(goipp.TagPrinterGroup, attrs)
	return goipp.StatusOk, nil
}

func (h *Handler) cupsGetPrinters(r *request, resp *response) (goipp.Status, error) {
	limit, _ := r.integer("limit")
	first := r.str("first-printer-name")
	started := first == ""
	n := 0
	for i := range h.Printers {
		p := &h.Printers[i]
		if !started {
			if p.Name != first {
				continue
			}
			started = true
		}
		if limit > 0 && n >= limit {
			break
		}
		attrs, err := h.printerGroup(p, r)
		if err != nil {
			return 0, err
		}
		resp.add(goipp.TagPrinterGroup, attrs)
		n++
	}
	return goipp.StatusOk, nil
}

// jobSummary is what job creation and Send-Document return.
func (h *Handler) jobSummary(j spool.Job, r *request) goipp.Attributes {
	return h.jobAttrs(j, r, summarySelector)
}

// summarySelector picks jobSummary's attributes. Only read.
var summarySelector = newJobSelector([]string{"job-id", "job-uri", "job-state", "job-state-reasons", "job-state-message"}, nil)

var stateNames = map[spool.State]string{3: "pending", 4: "pending-held", 5: "processing", 6: "processing-stopped", 7: "canceled", 8: "aborted", 9: "completed"}

var stateMessages = map[spool.State]string{3: "Job pending.", 4: "Job held.", 5: "Job printing.", 6: "Job stopped.",
	7: "Job canceled.", 8: "Job aborted.", 9: "Job completed."}

func stateName(s spool.State) string {
	if n, ok := stateNames[s]; ok {
		return n
	}
	return strconv.Itoa(int(s))
}

// jobSelector says which job attributes a request asks for: names, or
// the groups all, job-template and job-description. jobAttrs builds only
// those, in the order of the full set.
type jobSelector struct {
	all, template, description bool
	want                       map[string]bool
	// stored: some job template attribute is wanted, so the ones stored
	// with the job are decoded.
	stored bool
}

func newJobSelector(requested, def []string) *jobSelector {
	if len(requested) == 0 {
		requested = def
	}
	s := &jobSelector{want: make(map[string]bool, len(requested))}
	for _, n := range requested {
		s.want[n] = true
		switch n {
		case "all":
			s.all = true
		case "job-template":
			s.template = true
		case "job-description":
			s.description = true
		default:
			if _, ok := jobTemplate[n]; ok {
				s.stored = true
			}
		}
	}
	s.stored = s.stored || s.all || s.template
	return s
}

// keep reports whether the attribute called name is wanted.
func (s *jobSelector) keep(name string) bool {
	if s.all || s.want[name] {
		return true
	}
	if !s.template && !s.description {
		return false
	}
	_, isTmpl := jobTemplate[name]
	return s.template && isTmpl || s.description && !isTmpl
}

// jobAttrs builds the attributes of a job that sel keeps.
func (h *Handler) jobAttrs(j spool.Job, r *request, sel *jobSelector) goipp.Attributes {
	n := len(sel.want)
	if sel.all || sel.template || sel.description {
		n = 48
	}
	a := make(goipp.Attributes, 0, n)
	if sel.keep("job-id") {
		a.Add(integer("job-id", j.ID))
	}
	if sel.keep("job-uri") {
		a.Add(uri("job-uri", r.uriBase()+"/jobs/"+strconv.Itoa(j.ID)))
	}
	if sel.keep("job-printer-uri") {
		a.Add(uri("job-printer-uri", r.uriBase()+"/printers/"+j.Printer))
	}
	if sel.keep("job-name") {
		a.Add(name("job-name", j.Name))
	}
	if sel.keep("job-originating-user-name") {
		a.Add(name("job-originating-user-name", j.User))
	}
	if sel.keep("job-state") {
		a.Add(enum("job-state", int(j.State)))
	}
	if sel.keep("job-state-reasons") {
		reasons := j.Reasons
		if len(reasons) == 0 {
			reasons = []string{"none"}
		}
		a.Add(kw("job-state-reasons", reasons...))
	}
	if sel.keep("job-state-message") {
		msg := j.Message
		if msg == "" {
			msg = stateMessages[j.State]
		}
		a.Add(text("job-state-message", msg))
	}
	if sel.keep("job-uuid") {
		a.Add(uri("job-uuid", uuid("job/"+strconv.Itoa(j.ID)+"/"+strconv.FormatInt(j.Created.UnixNano(), 10))))
	}
	if sel.keep("number-of-documents") {
		a.Add(integer("number-of-documents", j.Documents))
	}
	if sel.keep("number-of-intervening-jobs") { // a look at the queue: only when asked
		intervening := 0
		if !j.State.Terminal() {
			intervening, _ = slices.BinarySearch(h.queue(r, j.Printer), j.ID)
		}
		a.Add(integer("number-of-intervening-jobs", intervening))
	}
	if sel.keep("time-at-creation") {
		a.Add(integer("time-at-creation", unixTime(j.Created)))
	}
	if sel.keep("time-at-processing") {
		a.Add(timeOrNoValue("time-at-processing", j.Processing))
	}
	if sel.keep("time-at-completed") {
		a.Add(timeOrNoValue("time-at-completed", j.Completed))
	}
	if sel.keep("date-time-at-creation") {
		a.Add(dateTime("date-time-at-creation", j.Created))
	}
	if sel.keep("date-time-at-processing") {
		a.Add(dateTime("date-time-at-processing", j.Processing))
	}
	if sel.keep("date-time-at-completed") {
		a.Add(dateTime("date-time-at-completed", j.Completed))
	}
	if sel.keep("job-printer-up-time") {
		a.Add(integer("job-printer-up-time", unixTime(h.now())))
	}
	if sel.keep("job-k-octets") {
		a.Add(integer("job-k-octets", int((j.Bytes+1023)/1024)))
	}
	if sel.keep("job-impressions") {
		a.Add(integer("job-impressions", j.Impressions))
	}
	if sel.keep("job-impressions-completed") {
		a.Add(integer("job-impressions-completed", j.PagesCompleted))
	}
	if sel.keep("job-media-sheets-completed") {
		a.Add(integer("job-media-sheets-completed", j.PagesCompleted))
	}
	if len(j.Formats) > 0 && sel.keep("document-format-supplied") {
		a.Add(mime("document-format-supplied", j.Formats[0]))
	}
	if sel.keep("job-hold-until-specified") {
		a.Add(boolean("job-hold-until-specified", j.Held))
	}
	if !sel.stored {
		return a
	}
	// The template attributes stored with the job, then the defaults of
	// those the client did not give.
	var tmpl goipp.Attributes
	if len(j.Attrs) > 0 {
		var m goipp.Message
		if err := m.DecodeBytes(j.Attrs); err == nil {
			tmpl = m.Job
		}
	}
	has := map[string]bool{}
	for _, t := range tmpl {
		if t.Name == "document-format" || t.Name == "identify-actions" {
			continue
		}
		has[t.Name] = true
		if sel.keep(t.Name) {
			a.Add(t)
		}
	}
	for _, d := range jobDefaults {
		if has[d.Name] || !sel.keep(d.Name) {
			continue
		}
		switch {
		case d.Name == "copies":
			d = integer("copies", max(j.Copies, 1))
		case d.Name == "job-hold-until" && j.Held:
			d = kw("job-hold-until", "indefinite")
		}
		a.Add(d)
	}
	return a
}

// jobDefaults are the job template attributes a job shows when its
// client did not give them (copies: the spool's count). Shared: never
// modified.
var jobDefaults = []goipp.Attribute{
	integer("copies", 1), kw("job-hold-until", "no-hold"), integer("job-priority", 50),
	name("job-sheets", "none"), kw("sides", "one-sided"), kw("print-color-mode", "monochrome"),
	kw("multiple-document-handling", "separate-documents-collated-copies"),
	integer("number-up", 1), enum("orientation-requested", 3), enum("print-quality", 4),
	enum("finishings", 3),
}

// queue returns the ids of a printer's unfinished jobs in order, once
// per request: Get-Jobs asks for each job's place.
func (h *Handler) queue(r *request, printer string) []int {
	if ids, ok := r.queues[printer]; ok {
		return ids
	}
	var ids []int
	for _, o := range h.Spool.Jobs(printer, func(o *spool.Job) bool { return !o.State.Terminal() }) {
		ids = append(ids, o.ID)
	}
	slices.Sort(ids)
	if r.queues == nil {
		r.queues = map[string][]int{}
	}
	r.queues[printer] = ids
	return ids
}

func timeOrNoValue(n string, t time.Time) goipp.Attribute {
	if t.IsZero() {
		return goipp.MakeAttribute(n, goipp.TagNoValue, goipp.Void{})
	}
	return integer(n, unixTime(t))
}
