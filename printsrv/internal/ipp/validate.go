package ipp

import (
	"strings"

	"github.com/OpenPrinting/goipp"
)

// request is a validated request: its target and the operation
// attributes the operations read.
type request struct {
	*Request
	op      goipp.Op
	printer *Printer // the queue named by printer-uri; nil for the whole server
	jobID   int      // from job-uri or job-id; 0 if none
	user    string   // who asks: the authenticated user, else requesting-user-name
	attrs   map[string]goipp.Attribute
	job     goipp.Attributes // the job attributes group
	queues  map[string][]int // unfinished job ids by printer, see Handler.queue
	baseURI string           // see uriBase
}

// uriBase is Request.base, computed once per request.
func (r *request) uriBase() string {
	if r.baseURI == "" {
		r.baseURI = r.Request.base()
	}
	return r.baseURI
}

func (r *request) str(name string) string {
	if a, ok := r.attrs[name]; ok {
		if s, ok := a.Values[0].V.(goipp.String); ok {
			return string(s)
		}
		if s, ok := a.Values[0].V.(goipp.TextWithLang); ok {
			return s.Text
		}
	}
	return ""
}

func (r *request) boolean(name string, def bool) bool {
	if a, ok := r.attrs[name]; ok {
		if b, ok := a.Values[0].V.(goipp.Boolean); ok {
			return bool(b)
		}
	}
	return def
}

func (r *request) integer(name string) (int, bool) {
	if a, ok := r.attrs[name]; ok {
		if n, ok := a.Values[0].V.(goipp.Integer); ok {
			return int(n), true
		}
	}
	return 0, false
}

func (r *request) keywords(name string) []string {
	a, ok := r.attrs[name]
	if !ok {
		return nil
	}
	out := make([]string, 0, len(a.Values))
	for _, v := range a.Values {
		out = append(out, v.V.String())
	}
	return out
}

// Syntaxes, as sets of value tags.
var (
	synCharset  = []goipp.Tag{goipp.TagCharset}
	synLanguage = []goipp.Tag{goipp.TagLanguage}
	synURI      = []goipp.Tag{goipp.TagURI}
	synInteger  = []goipp.Tag{goipp.TagInteger}
	synBoolean  = []goipp.Tag{goipp.TagBoolean}
	synKeyword  = []goipp.Tag{goipp.TagKeyword}
	synMime     = []goipp.Tag{goipp.TagMimeType}
	synName     = []goipp.Tag{goipp.TagName, goipp.TagNameLang}
	synText     = []goipp.Tag{goipp.TagText, goipp.TagTextLang}
	synKwName   = []goipp.Tag{goipp.TagKeyword, goipp.TagName, goipp.TagNameLang}
	synEnum     = []goipp.Tag{goipp.TagEnum}
	synRange    = []goipp.Tag{goipp.TagRange}
	synColl     = []goipp.Tag{goipp.TagBeginCollection}
	synBinary   = []goipp.Tag{goipp.TagString}
)

// attrSyntax is the syntax of each operation attribute this server
// reads, and whether it may have several values.
var opSyntax = map[string]struct {
	tags  []goipp.Tag
	multi bool
}{
	"attributes-charset":            {synCharset, false},
	"attributes-natural-language":   {synLanguage, false},
	"printer-uri":                   {synURI, false},
	"job-uri":                       {synURI, false},
	"job-id":                        {synInteger, false},
	"job-ids":                       {synInteger, true},
	"requesting-user-name":          {synName, false},
	"requesting-user-uri":           {synURI, false},
	"requested-attributes":          {synKeyword, true},
	"document-format":               {synMime, false},
	"document-name":                 {synName, false},
	"document-natural-language":     {synLanguage, false},
	"document-charset":              {synCharset, false},
	"document-message":              {synText, false},
	"document-metadata":             {synBinary, true},
	"document-access":               {synColl, false},
	"job-name":                      {synName, false},
	"compression":                   {synKeyword, false},
	"ipp-attribute-fidelity":        {synBoolean, false},
	"last-document":                 {synBoolean, false},
	"which-jobs":                    {synKeyword, false},
	"my-jobs":                       {synBoolean, false},
	"limit":                         {synInteger, false},
	"first-index":                   {synInteger, false},
	"job-k-octets":                  {synInteger, false},
	"job-impressions":               {synInteger, false},
	"job-media-sheets":              {synInteger, false},
	"job-pages":                     {synInteger, false},
	"message":                       {synText, false},
	"identify-actions":              {synKeyword, true},
	"job-mandatory-attributes":      {synKeyword, true},
	"job-password":                  {synBinary, false},
	"job-password-encryption":       {synKwName, false},
	"printer-message-from-operator": {synText, false},
	"job-message-from-operator":     {synText, false},
	"job-hold-until":                {synKwName, false},
	"document-password":             {synBinary, false},
	"first-job-id":                  {synInteger, false},
	"first-printer-name":            {synName, false},
	"requesting-user-vcard":         {synText, true},
	"purge-job":                     {synBoolean, false},
	"printer-type":                  {synEnum, false},
	"printer-type-mask":             {synEnum, false},
	"printer-location":              {synText, false},
	"printer-id":                    {synInteger, false},
	"job-state":                     {synEnum, false},
	"document-number":               {synInteger, false},
	"preferred-attributes":          {synColl, false},
	"notify-subscription-id":        {synInteger, false},
	"exclude-schemes":               {synKeyword, true},
	"include-schemes":               {synKeyword, true},
}

// validate checks a request the way RFC 8011 section 4.1 asks and finds
// its target.
func (h *Handler) validate(req *Request, resp *response) (*request, error) {
	m := req.Msg
	if v := m.Version.Major(); v != 1 && v != 2 {
		return nil, errorf(goipp.StatusErrorVersionNotSupported, "IPP version %s is not supported", m.Version)
	}
	if m.RequestID == 0 {
		return nil, errorf(goipp.StatusErrorBadRequest, "request-id must not be 0")
	}
	if len(m.Groups) == 0 || m.Groups[0].Tag != goipp.TagOperationGroup {
		return nil, errorf(goipp.StatusErrorBadRequest, "the operation attributes group must come first")
	}
	r := &request{Request: req, op: goipp.Op(m.Code), attrs: map[string]goipp.Attribute{}}
	seen := map[goipp.Tag]bool{}
	last := goipp.TagZero
	for _, g := range m.Groups {
		if seen[g.Tag] {
			return nil, errorf(goipp.StatusErrorBadRequest, "group %s appears twice", g.Tag)
		}
		if g.Tag < last {
			return nil, errorf(goipp.StatusErrorBadRequest, "group %s out of order", g.Tag)
		}
		seen[g.Tag], last = true, g.Tag
		switch g.Tag {
		case goipp.TagOperationGroup, goipp.TagJobGroup, goipp.TagDocumentGroup:
		default:
			return nil, errorf(goipp.StatusErrorBadRequest, "unexpected group %s in a request", g.Tag)
		}
		names := map[string]bool{}
		for _, a := range g.Attrs {
			if a.Name == "" || len(a.Values) == 0 {
				return nil, errorf(goipp.StatusErrorBadRequest, "attribute without a name or value")
			}
			if names[a.Name] {
				return nil, errorf(goipp.StatusErrorBadRequest, "attribute %s appears twice", a.Name)
			}
			names[a.Name] = true
			if err := checkValues(a); err != nil {
				return nil, err
			}
		}
		if g.Tag == goipp.TagJobGroup {
			r.job = g.Attrs
		}
	}
	op := m.Groups[0].Attrs
	if len(op) < 2 || op[0].Name != "attributes-charset" || op[1].Name != "attributes-natural-language" {
		return nil, errorf(goipp.StatusErrorBadRequest, "attributes-charset and attributes-natural-language must be the first operation attributes")
	}
	for i, a := range op {
		syn, known := opSyntax[a.Name]
		if !known {
			// Template attributes may come in the operation group too.
			if _, ok := jobTemplate[a.Name]; ok {
				r.job = append(r.job, a)
				continue
			}
			resp.unsupported.Add(unsupportedAttr(a))
			continue
		}
		if !syntaxOK(a, syn.tags, syn.multi) {
			return nil, &Error{Status: goipp.StatusErrorBadRequest, Msg: "bad syntax for " + a.Name,
				Unsupported: goipp.Attributes{a}}
		}
		if i > 1 && (a.Name == "attributes-charset" || a.Name == "attributes-natural-language") {
			return nil, errorf(goipp.StatusErrorBadRequest, "%s appears twice", a.Name)
		}
		r.attrs[a.Name] = a
	}
	switch cs := strings.ToLower(r.str("attributes-charset")); cs {
	case "utf-8", "us-ascii":
	default:
		return nil, &Error{Status: goipp.StatusErrorCharset, Msg: "charset " + cs + " is not supported",
			Unsupported: goipp.Attributes{r.attrs["attributes-charset"]}}
	}
	r.user = req.User
	if r.user == "" {
		r.user = r.str("requesting-user-name")
	}
	if r.user == "" {
		r.user = "anonymous"
	}
	return r, h.target(r)
}

// checkValues checks what goipp does not: values of one attribute agree
// in kind, and nested collections are sane.
func checkValues(a goipp.Attribute) error {
	for _, v := range a.Values {
		switch v.T {
		case goipp.TagName, goipp.TagKeyword, goipp.TagURI, goipp.TagCharset, goipp.TagLanguage, goipp.TagMimeType, goipp.TagURIScheme:
			s := v.V.String()
			if len(s) == 0 && v.T != goipp.TagName {
				return &Error{Status: goipp.StatusErrorBadRequest, Msg: "empty value for " + a.Name, Unsupported: goipp.Attributes{a}}
			}
			if (v.T == goipp.TagKeyword || v.T == goipp.TagName) && len(s) > 255 || v.T == goipp.TagURI && len(s) > 1023 {
				return &Error{Status: goipp.StatusErrorRequestValue, Msg: "value too long for " + a.Name, Unsupported: goipp.Attributes{a}}
			}
		case goipp.TagText:
			if len(v.V.String()) > 1023 {
				return &Error{Status: goipp.StatusErrorRequestValue, Msg: "value too long for " + a.Name, Unsupported: goipp.Attributes{a}}
			}
		case goipp.TagBoolean, goipp.TagInteger, goipp.TagEnum, goipp.TagRange, goipp.TagResolution, goipp.TagDateTime,
			goipp.TagBeginCollection, goipp.TagTextLang, goipp.TagNameLang, goipp.TagString,
			goipp.TagNoValue, goipp.TagUnknown, goipp.TagUnsupportedValue, goipp.TagDefault, goipp.TagNotSettable, goipp.TagDeleteAttr, goipp.TagAdminDefine:
		default:
			return &Error{Status: goipp.StatusErrorBadRequest, Msg: "unknown value tag for " + a.Name, Unsupported: goipp.Attributes{a}}
		}
	}
	return nil
}

// syntaxOK reports whether every value of a has one of the tags.
func syntaxOK(a goipp.Attribute, tags []goipp.Tag, multi bool) bool {
	if len(a.Values) > 1 && !multi {
		return false
	}
	for _, v := range a.Values {
		ok := false
		for _, t := range tags {
			if v.T == t {
				ok = true
			}
		}
		if !ok {
			return false
		}
	}
	return true
}

func unsupportedAttr(a goipp.Attribute) goipp.Attribute {
	return goipp.MakeAttribute(a.Name, goipp.TagUnsupportedValue, goipp.Void{})
}

// Which operations act on a job, and which need a printer.
var (
	jobOps = map[goipp.Op]bool{
		goipp.OpSendDocument: true, goipp.OpCloseJob: true, goipp.OpCancelJob: true,
		goipp.OpGetJobAttributes: true, goipp.OpHoldJob: true, goipp.OpReleaseJob: true,
	}
	serverOps = map[goipp.Op]bool{OpCupsGetDefault: true, OpCupsGetPrinters: true, OpCupsGetClasses: true}
)

// target finds the printer and job a request names.
func (h *Handler) target(r *request) error {
	if serverOps[r.op] {
		return nil
	}
	pu, hasPrinter := r.attrs["printer-uri"]
	ju, hasJob := r.attrs["job-uri"]
	switch {
	case hasJob && jobOps[r.op]:
		id, ok := jobIDFromURI(ju.Values[0].V.String())
		if !ok {
			return &Error{Status: goipp.StatusErrorNotFound, Msg: "job-uri names no job", Unsupported: goipp.Attributes{ju}}
		}
		r.jobID = id
		return nil
	case hasPrinter:
		path, ok := uriPath(pu.Values[0].V.String())
		if !ok {
			return &Error{Status: goipp.StatusErrorBadRequest, Msg: "printer-uri is not an ipp or ipps URI", Unsupported: goipp.Attributes{pu}}
		}
		name, ok := h.PrinterFromPath(path)
		if !ok {
			return &Error{Status: goipp.StatusErrorNotFound, Msg: "no printer at " + path, Unsupported: goipp.Attributes{pu}}
		}
		if name != "" {
			r.printer = h.printer(name)
		}
	default:
		return errorf(goipp.StatusErrorBadRequest, "printer-uri or job-uri is missing")
	}
	if jobOps[r.op] {
		id, ok := r.integer("job-id")
		if !ok {
			return errorf(goipp.StatusErrorBadRequest, "job-id is missing")
		}
		if id <= 0 {
			return &Error{Status: goipp.StatusErrorNotFound, Msg: "no such job", Unsupported: goipp.Attributes{r.attrs["job-id"]}}
		}
		r.jobID = id
		return nil
	}
	switch r.op {
	case goipp.OpGetJobs, goipp.OpCancelJobs, goipp.OpCancelMyJobs:
		// nil printer: every queue
	default:
		if r.printer == nil {
			r.printer = h.printer(h.Default)
		}
	}
	return nil
}
