package ipp

import (
	"crypto/sha256"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/OpenPrinting/goipp"

	"example.com/appliance/printsrv/internal/spool"
)

// Attribute constructors.
func kw(name string, vals ...string) goipp.Attribute   { return strs(name, goipp.TagKeyword, vals) }
func name(n string, vals ...string) goipp.Attribute    { return strs(n, goipp.TagName, vals) }
func text(name string, vals ...string) goipp.Attribute { return strs(name, goipp.TagText, vals) }
func uri(name string, vals ...string) goipp.Attribute  { return strs(name, goipp.TagURI, vals) }
func mime(name string, vals ...string) goipp.Attribute { return strs(name, goipp.TagMimeType, vals) }

func strs(name string, tag goipp.Tag, vals []string) goipp.Attribute {
	a := goipp.Attribute{Name: name}
	for _, v := range vals {
		a.Values.Add(tag, goipp.String(v))
	}
	return a
}

func integer(name string, vals ...int) goipp.Attribute { return ints(name, goipp.TagInteger, vals) }
func enum(name string, vals ...int) goipp.Attribute    { return ints(name, goipp.TagEnum, vals) }

func ints(name string, tag goipp.Tag, vals []int) goipp.Attribute {
	a := goipp.Attribute{Name: name}
	for _, v := range vals {
		a.Values.Add(tag, goipp.Integer(int32(min(v, 1<<31-1))))
	}
	return a
}

func boolean(name string, v bool) goipp.Attribute {
	return goipp.MakeAttribute(name, goipp.TagBoolean, goipp.Boolean(v))
}

func rng(name string, lo, hi int) goipp.Attribute {
	return goipp.MakeAttribute(name, goipp.TagRange, goipp.Range{Lower: lo, Upper: hi})
}

func res(name string, dpi int) goipp.Attribute {
	return goipp.MakeAttribute(name, goipp.TagResolution, goipp.Resolution{Xres: dpi, Yres: dpi, Units: goipp.UnitsDpi})
}

func dateTime(name string, t time.Time) goipp.Attribute {
	if t.IsZero() {
		return goipp.MakeAttribute(name, goipp.TagNoValue, goipp.Void{})
	}
	return goipp.MakeAttribute(name, goipp.TagDateTime, goipp.Time{Time: t.UTC().Truncate(time.Second)})
}

func unixTime(t time.Time) int {
	if t.IsZero() {
		return 0
	}
	return int(t.Unix())
}

func colls(name string, cs ...goipp.Collection) goipp.Attribute {
	a := goipp.Attribute{Name: name}
	for _, c := range cs {
		a.Values.Add(goipp.TagBeginCollection, c)
	}
	return a
}

// mediaSize reads the dimensions, in hundredths of millimetres, from a
// PWG 5101.1 self-describing media name such as iso_a4_210x297mm.
func mediaSize(media string) (x, y int, ok bool) {
	i := strings.LastIndexByte(media, '_')
	if i < 0 {
		return 0, 0, false
	}
	dim := media[i+1:]
	scale := 100.0
	switch {
	case strings.HasSuffix(dim, "mm"):
		dim = strings.TrimSuffix(dim, "mm")
	case strings.HasSuffix(dim, "in"):
		dim, scale = strings.TrimSuffix(dim, "in"), 2540
	default:
		return 0, 0, false
	}
	ws, hs, found := strings.Cut(dim, "x")
	if !found {
		return 0, 0, false
	}
	w, err1 := strconv.ParseFloat(ws, 64)
	h, err2 := strconv.ParseFloat(hs, 64)
	if err1 != nil || err2 != nil || w <= 0 || h <= 0 || w > 10000 || h > 10000 {
		return 0, 0, false
	}
	return int(w*scale + 0.5), int(h*scale + 0.5), true
}

// ValidMedia reports whether s is a PWG self-describing media name.
func ValidMedia(s string) bool {
	_, _, ok := mediaSize(s)
	return ok && strings.Count(s, "_") >= 2
}

const margin = 423 // hundredths of mm, 1/6 inch, on every side

func mediaSizeColl(media string) goipp.Collection {
	x, y, _ := mediaSize(media)
	return goipp.Collection{
		goipp.MakeAttribute("x-dimension", goipp.TagInteger, goipp.Integer(x)),
		goipp.MakeAttribute("y-dimension", goipp.TagInteger, goipp.Integer(y)),
	}
}

func mediaColl(media string, ready bool) goipp.Collection {
	c := goipp.Collection{
		goipp.MakeAttribute("media-key", goipp.TagKeyword, goipp.String(media)),
		goipp.MakeAttribute("media-size", goipp.TagBeginCollection, mediaSizeColl(media)),
		goipp.MakeAttribute("media-size-name", goipp.TagKeyword, goipp.String(media)),
		goipp.MakeAttribute("media-bottom-margin", goipp.TagInteger, goipp.Integer(margin)),
		goipp.MakeAttribute("media-left-margin", goipp.TagInteger, goipp.Integer(margin)),
		goipp.MakeAttribute("media-right-margin", goipp.TagInteger, goipp.Integer(margin)),
		goipp.MakeAttribute("media-top-margin", goipp.TagInteger, goipp.Integer(margin)),
	}
	if ready {
		c = append(c,
			goipp.MakeAttribute("media-source", goipp.TagKeyword, goipp.String("main")),
			goipp.MakeAttribute("media-type", goipp.TagKeyword, goipp.String("stationery")))
	}
	return c
}

// The operations every queue supports, in operations-supported.
var operations = []goipp.Op{
	goipp.OpPrintJob, goipp.OpValidateJob, goipp.OpCreateJob, goipp.OpSendDocument,
	goipp.OpCancelJob, goipp.OpGetJobAttributes, goipp.OpGetJobs, goipp.OpGetPrinterAttributes,
	goipp.OpHoldJob, goipp.OpReleaseJob, goipp.OpPausePrinter, goipp.OpResumePrinter,
	goipp.OpCancelJobs, goipp.OpCancelMyJobs, goipp.OpCloseJob, goipp.OpIdentifyPrinter,
	OpCupsGetDefault, OpCupsGetPrinters, OpCupsGetClasses,
}

// Supported reports whether op is one of the operations printsrv runs.
func Supported(op goipp.Op) bool { return slices.Contains(operations, op) }

// whichJobs are the values of which-jobs, with the states each selects.
var whichJobs = map[string]func(spool.State) bool{
	"completed":          func(s spool.State) bool { return s.Terminal() },
	"not-completed":      func(s spool.State) bool { return !s.Terminal() },
	"all":                func(spool.State) bool { return true },
	"aborted":            func(s spool.State) bool { return s == spool.Aborted },
	"canceled":           func(s spool.State) bool { return s == spool.Canceled },
	"pending":            func(s spool.State) bool { return s == spool.Pending },
	"pending-held":       func(s spool.State) bool { return s == spool.PendingHeld },
	"processing":         func(s spool.State) bool { return s == spool.Processing },
	"processing-stopped": func(s spool.State) bool { return s == spool.ProcessingStopped },
}

var whichJobsOrder = []string{"completed", "not-completed", "all", "aborted", "canceled", "pending", "pending-held", "processing", "processing-stopped"}

// Formats returns document-format-supported for a queue.
func (p *Printer) formats() []string {
	out := []string{"application/octet-stream"}
	for _, f := range p.Formats {
		if !slices.Contains(out, f) {
			out = append(out, f)
		}
	}
	return out
}

// SupportsFormat reports whether a document-format is accepted.
func (p *Printer) SupportsFormat(f string) bool {
	return slices.ContainsFunc(p.formats(), func(s string) bool { return strings.EqualFold(s, f) })
}

func (p *Printer) colorModes() []string {
	if p.Color {
		return []string{"auto", "color", "monochrome"}
	}
	return []string{"monochrome"}
}

func (p *Printer) sides() []string {
	if p.Duplex {
		return []string{"one-sided", "two-sided-long-edge", "two-sided-short-edge"}
	}
	return []string{"one-sided"}
}

// uuid makes a stable RFC 4122 name-based UUID for a queue.
func uuid(s string) string {
	h := sha256.Sum256([]byte("printsrv:" + s))
	h[6] = h[6]&0x0f | 0x50
	h[8] = h[8]&0x3f | 0x80
	return fmt.Sprintf("urn:uuid:%x-%x-%x-%x-%x", h[0:4], h[4:6], h[6:8], h[8:10], h[10:16])
}

// deviceID is the IEEE 1284 device id.
func (p *Printer) deviceID() string {
	mfg, mdl, _ := strings.Cut(p.MakeAndModel, " ")
	if mdl == "" {
		mdl = mfg
	}
	var cmd []string
	for _, f := range p.Formats {
		switch f {
		case "application/pdf":
			cmd = append(cmd, "PDF")
		case "image/pwg-raster":
			cmd = append(cmd, "PWG")
		case "image/jpeg":
			cmd = append(cmd, "JPEG")
		case "text/plain":
			cmd = append(cmd, "TXT")
		case "application/postscript":
			cmd = append(cmd, "POSTSCRIPT")
		case "image/urf":
			cmd = append(cmd, "URF")
		}
	}
	clean := func(s string) string { return strings.NewReplacer(";", " ", ":", " ").Replace(s) }
	return "MFG:" + clean(mfg) + ";MDL:" + clean(mdl) + ";CMD:" + strings.Join(cmd, ",") + ";"
}

// jobTemplateNames lists the job template attributes a job may carry,
// in job-creation-attributes-supported.
var jobTemplateNames = []string{
	"copies", "finishings", "job-hold-until", "job-priority", "job-sheets", "media", "media-col",
	"multiple-document-handling", "number-up", "orientation-requested", "output-bin", "page-ranges",
	"print-color-mode", "print-content-optimize", "print-quality", "print-rendering-intent",
	"print-scaling", "printer-resolution", "sides", "overrides",
	"job-name", "document-name", "document-format", "ipp-attribute-fidelity", "compression",
}

// printerAttrs builds every attribute of a queue. The job-template ones
// are marked so requested-attributes=job-template can pick them.
//
// The attributes that depend on the request or on the queue's state come
// from dynamicAttr; printerAttrs calls it for them, and the cache of
// printerTable calls it again per request.
func (h *Handler) printerAttrs(p *Printer, r *request, st spool.PrinterStatus) (attrs goipp.Attributes, template map[string]bool) {
	template = map[string]bool{}
	t := func(a goipp.Attribute) { attrs = append(attrs, a); template[a.Name] = true }
	d := func(a goipp.Attribute) { attrs = append(attrs, a) }

	// Job template attributes (RFC 8011 5.2, PWG 5100.7, 5100.13).
	t(integer("copies-default", 1))
	t(rng("copies-supported", 1, 999))
	t(enum("finishings-default", 3))
	t(enum("finishings-supported", 3))
	t(enum("finishings-ready", 3))
	t(kw("job-hold-until-default", "no-hold"))
	t(kw("job-hold-until-supported", "no-hold", "indefinite"))
	t(integer("job-priority-default", 50))
	t(integer("job-priority-supported", 100))
	t(name("job-sheets-default", "none"))
	t(name("job-sheets-supported", "none"))
	t(kw("media-default", p.MediaDefault))
	t(kw("media-supported", p.Media...))
	t(kw("media-ready", p.MediaDefault))
	t(colls("media-col-default", mediaColl(p.MediaDefault, true)))
	t(colls("media-col-ready", mediaColl(p.MediaDefault, true)))
	t(kw("media-col-supported", "media-bottom-margin", "media-left-margin", "media-right-margin",
		"media-size", "media-size-name", "media-source", "media-top-margin", "media-type"))
	var sizes []goipp.Collection
	for _, m := range p.Media {
		sizes = append(sizes, mediaSizeColl(m))
	}
	t(colls("media-size-supported", sizes...))
	t(integer("media-bottom-margin-supported", margin))
	t(integer("media-left-margin-supported", margin))
	t(integer("media-right-margin-supported", margin))
	t(integer("media-top-margin-supported", margin))
	t(kw("media-source-supported", "auto", "main"))
	t(kw("media-type-supported", "auto", "stationery"))
	t(kw("multiple-document-handling-default", "separate-documents-collated-copies"))
	t(kw("multiple-document-handling-supported", "separate-documents-uncollated-copies", "separate-documents-collated-copies"))
	t(integer("number-up-default", 1))
	t(integer("number-up-supported", 1))
	t(enum("orientation-requested-default", 3))
	t(enum("orientation-requested-supported", 3, 4, 5, 6))
	t(kw("output-bin-default", "face-down"))
	t(kw("output-bin-supported", "face-down"))
	t(boolean("page-ranges-supported", true))
	t(kw("print-color-mode-default", p.colorModes()[0]))
	t(kw("print-color-mode-supported", p.colorModes()...))
	t(kw("print-content-optimize-default", "auto"))
	t(kw("print-content-optimize-supported", "auto"))
	t(enum("print-quality-default", 4))
	t(enum("print-quality-supported", 3, 4, 5))
	t(kw("print-rendering-intent-default", "auto"))
	t(kw("print-rendering-intent-supported", "auto"))
	t(kw("print-scaling-default", "auto"))
	t(kw("print-scaling-supported", "auto", "auto-fit", "fill", "fit", "none"))
	t(res("printer-resolution-default", 300))
	t(res("printer-resolution-supported", 300))
	t(kw("sides-default", "one-sided"))
	t(kw("sides-supported", p.sides()...))
	t(kw("overrides-supported", "document-number", "pages"))

	// Printer description attributes.
	d(kw("charset-configured", "utf-8"))
	d(kw("charset-supported", "us-ascii", "utf-8"))
	attrs[len(attrs)-2].Values[0].T = goipp.TagCharset
	for i := range attrs[len(attrs)-1].Values {
		attrs[len(attrs)-1].Values[i].T = goipp.TagCharset
	}
	d(boolean("color-supported", p.Color))
	d(kw("compression-supported", "deflate", "gzip", "none"))
	d(mime("document-format-default", "application/octet-stream"))
	d(mime("document-format-supported", p.formats()...))
	d(strs("generated-natural-language-supported", goipp.TagLanguage, []string{"en"}))
	d(kw("identify-actions-default", "display"))
	d(kw("identify-actions-supported", "display", "sound"))
	d(kw("ipp-features-supported", "ipp-everywhere"))
	d(kw("ipp-versions-supported", "1.1", "2.0"))
	d(kw("job-creation-attributes-supported", jobTemplateNames...))
	d(boolean("job-ids-supported", true))
	d(rng("job-k-octets-supported", 0, 1<<31-1))
	d(kw("job-password-encryption-supported", "none"))
	d(boolean("multiple-document-jobs-supported", true))
	d(integer("multiple-operation-time-out", int(OperationTimeout/time.Second)))
	d(kw("multiple-operation-time-out-action", "process-job"))
	d(strs("natural-language-configured", goipp.TagLanguage, []string{"en"}))
	ops := make([]int, len(operations))
	for i, op := range operations {
		ops[i] = int(op)
	}
	d(enum("operations-supported", ops...))
	ppm := p.PagesPerMinute
	if ppm == 0 {
		ppm = 1000 // instant: report a fast printer
	}
	d(integer("pages-per-minute", ppm))
	if p.Color {
		d(integer("pages-per-minute-color", ppm))
	}
	d(kw("pdl-override-supported", "attempted"))
	d(boolean("preferred-attributes-supported", false))
	d(dateTime("printer-config-change-date-time", h.Started))
	d(integer("printer-config-change-time", unixTime(h.Started)))
	dyn := func(name string) { d(h.dynamicAttr(name, p, r, st)) }
	dyn("printer-current-time")
	d(text("printer-device-id", p.deviceID()))
	d(goipp.MakeAttribute("printer-geo-location", goipp.TagUnknown, goipp.Void{}))
	d(kw("printer-get-attributes-supported", "document-format"))
	dyn("printer-icons")
	d(text("printer-info", p.Info))
	dyn("printer-is-accepting-jobs")
	d(boolean("printer-is-shared", true))
	d(text("printer-location", p.Location))
	d(text("printer-make-and-model", p.MakeAndModel))
	dyn("printer-more-info")
	d(name("printer-name", p.Name))
	d(text("printer-organization", ""))
	d(text("printer-organizational-unit", ""))
	dyn("printer-state")
	dyn("printer-state-change-date-time")
	dyn("printer-state-change-time")
	dyn("printer-state-message")
	dyn("printer-state-reasons")
	supply := goipp.Attribute{Name: "printer-supply"}
	supply.Values.Add(goipp.TagString, goipp.Binary("index=1;class=supplyThatIsConsumed;type=toner;unit=percent;maxcapacity=100;level=100;colorantname=black;"))
	d(supply)
	d(text("printer-supply-description", "Black Toner"))
	dyn("printer-supply-info-uri")
	// CUPS's printer-type bits: a local printer (0), black/white or color (4),
	// duplex (0x10), copies (0x40), collate (0x80); lpstat reads them.
	ptype := 0x40 | 0x80
	if p.Color {
		ptype |= 0x4
	}
	if p.Duplex {
		ptype |= 0x10
	}
	if p.Name == h.Default {
		ptype |= 0x20000
	}
	d(enum("printer-type", ptype))
	dyn("printer-up-time")
	dyn("printer-uri-supported")
	auth := "requesting-user-name"
	if h.AuthBasic {
		auth = "basic"
	}
	d(kw("uri-authentication-supported", auth))
	dyn("uri-security-supported")
	d(uri("printer-uuid", uuid(p.Name)))
	types := []string{"black_1", "sgray_8"}
	if p.Color {
		types = append(types, "srgb_8")
	}
	pwgRes := goipp.Attribute{Name: "pwg-raster-document-resolution-supported"}
	for _, dpi := range []int{150, 300, 600} {
		pwgRes.Values.Add(goipp.TagResolution, goipp.Resolution{Xres: dpi, Yres: dpi, Units: goipp.UnitsDpi})
	}
	d(pwgRes)
	d(kw("pwg-raster-document-sheet-back", "normal"))
	d(kw("pwg-raster-document-type-supported", types...))
	dyn("queued-job-count")
	d(strs("reference-uri-schemes-supported", goipp.TagURIScheme, []string{"ipp"}))
	d(kw("urf-supported", "V1.4", "CP1", "DM1", "RS300", "W8"))
	d(kw("which-jobs-supported", whichJobsOrder...))
	return attrs, template
}

// dynamicAttrs are the printer attributes that depend on the request
// or on the queue's state: dynamicAttr builds them.
var dynamicAttrs = map[string]bool{
	"printer-current-time": true, "printer-icons": true, "printer-is-accepting-jobs": true,
	"printer-more-info": true, "printer-state": true, "printer-state-change-date-time": true,
	"printer-state-change-time": true, "printer-state-message": true, "printer-state-reasons": true,
	"printer-supply-info-uri": true, "printer-up-time": true, "printer-uri-supported": true,
	"uri-security-supported": true, "queued-job-count": true,
}

// dynamicAttr builds one of dynamicAttrs for a request.
func (h *Handler) dynamicAttr(name string, p *Printer, r *request, st spool.PrinterStatus) goipp.Attribute {
	switch name {
	case "printer-current-time":
		return dateTime(name, h.now())
	case "printer-icons":
		return uri(name, r.httpBase()+"/icon.png")
	case "printer-is-accepting-jobs":
		return boolean(name, st.Accepting)
	case "printer-more-info", "printer-supply-info-uri":
		return uri(name, r.httpBase()+"/printers/"+p.Name)
	case "printer-state":
		return enum(name, max(st.State, 3))
	case "printer-state-change-date-time":
		return dateTime(name, st.ChangeTime)
	case "printer-state-change-time":
		return integer(name, unixTime(st.ChangeTime))
	case "printer-state-message":
		msg := st.Message
		if msg == "" {
			msg = stateMessage[st.State]
		}
		return text(name, msg)
	case "printer-state-reasons":
		reasons := st.Reasons
		if len(reasons) == 0 {
			reasons = []string{"none"}
		}
		return kw(name, reasons...)
	case "printer-up-time":
		return integer(name, max(1, unixTime(h.now())))
	case "printer-uri-supported":
		return uri(name, r.uriBase()+h.printerPath(p, r))
	case "uri-security-supported":
		if r.TLS {
			return kw(name, "tls")
		}
		return kw(name, "none")
	case "queued-job-count":
		return integer(name, st.QueuedJobs)
	}
	panic("ipp: no dynamic printer attribute " + name)
}

var stateMessage = map[int]string{3: "Idle.", 4: "Printing.", 5: "Paused."}

// httpBase is the http:// or https:// twin of uriBase, for web pages.
func (r *request) httpBase() string {
	base := r.uriBase()
	if r.TLS {
		return "https" + strings.TrimPrefix(base, "ipps")
	}
	return "http" + strings.TrimPrefix(strings.TrimPrefix(base, "ipps"), "ipp")
}

// printerPath is the one printer-uri-supported path of a queue: the
// form the request used, so that lp's next request goes where it came.
func (h *Handler) printerPath(p *Printer, r *request) string {
	if pu, ok := r.attrs["printer-uri"]; ok {
		if path, ok := uriPath(pu.Values[0].V.String()); ok {
			path = strings.TrimSuffix(path, "/")
			if path == "/ipp/print" && p.Name == h.Default {
				return path
			}
			if strings.HasPrefix(path, "/ipp/print/") {
				return "/ipp/print/" + p.Name
			}
		}
	}
	return "/printers/" + p.Name
}

// mediaColDatabase lists every supported medium as a media-col.
func (p *Printer) mediaColDatabase() goipp.Attribute {
	var cs []goipp.Collection
	for _, m := range p.Media {
		cs = append(cs, mediaColl(m, false))
	}
	return colls("media-col-database", cs...)
}

// printerTable is a queue's attributes built once: the constant ones
// ready to send, the others (dynamicAttrs) to build per request. The
// attributes are shared by every response: never modified.
type printerTable struct {
	attrs            []printerEntry // in printerAttrs's order
	mediaColDatabase goipp.Attribute
}

type printerEntry struct {
	goipp.Attribute
	template bool // a job template attribute, for requested-attributes job-template
	dynamic  bool // built per request by dynamicAttr
}

func (h *Handler) newPrinterTable(p *Printer) *printerTable {
	// The request and status only fill the dynamic attributes, which
	// each request replaces.
	attrs, template := h.printerAttrs(p, &request{Request: &Request{}}, spool.PrinterStatus{})
	t := &printerTable{attrs: make([]printerEntry, len(attrs)), mediaColDatabase: p.mediaColDatabase()}
	for i, a := range attrs {
		t.attrs[i] = printerEntry{Attribute: a, template: template[a.Name], dynamic: dynamicAttrs[a.Name]}
	}
	return t
}

// printerTable returns the table of a queue, built at the first request
// (the Handler's fields do not change after it).
func (h *Handler) printerTable(p *Printer) *printerTable {
	h.tablesOnce.Do(func() {
		h.tables = make([]*printerTable, len(h.Printers))
		for i := range h.Printers {
			h.tables[i] = h.newPrinterTable(&h.Printers[i])
		}
	})
	for i := range h.Printers {
		if &h.Printers[i] == p {
			return h.tables[i]
		}
	}
	return h.newPrinterTable(p)
}

// selectPrinterAttrs builds the attributes requested-attributes asks for:
// names, or the groups all, job-template and printer-description. Only an
// explicit request brings media-col-database.
func (h *Handler) selectPrinterAttrs(p *Printer, r *request, st spool.PrinterStatus, requested []string) goipp.Attributes {
	t := h.printerTable(p)
	if len(requested) == 0 {
		requested = []string{"all"}
	}
	want := make(map[string]bool, len(requested))
	for _, n := range requested {
		want[n] = true
	}
	all, tmpl, desc := want["all"], want["job-template"], want["printer-description"]
	n := len(requested)
	if all || tmpl || desc {
		n = len(t.attrs)
	}
	out := make(goipp.Attributes, 0, n)
	for _, e := range t.attrs {
		if !(all || want[e.Name] || tmpl && e.template || desc && !e.template) {
			continue
		}
		if e.dynamic {
			out = append(out, h.dynamicAttr(e.Name, p, r, st))
		} else {
			out = append(out, e.Attribute)
		}
	}
	for _, n := range requested {
		if n == "media-col-database" {
			out = append(out, t.mediaColDatabase)
		}
	}
	return out
}
