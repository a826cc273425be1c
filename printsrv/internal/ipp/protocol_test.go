package ipp

import (
	"bytes"
	"compress/gzip"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/OpenPrinting/goipp"

	"example.com/appliance/printsrv/internal/spool"
)

const officeURI = "ipp://localhost:631/printers/office"

func kwAttr(n string, v ...string) goipp.Attribute { return kw(n, v...) }

// requestCases are requests and the status each must get; they also seed
// FuzzRequest.
var requestCases = []struct {
	name   string
	msg    func() *goipp.Message
	doc    string
	status goipp.Status
	unsup  string // an attribute expected in the unsupported group
}{
	{"get-printer-attributes", func() *goipp.Message { return req(goipp.OpGetPrinterAttributes, officeURI) }, "", goipp.StatusOk, ""},
	{"request-id 0", func() *goipp.Message {
		m := req(goipp.OpGetPrinterAttributes, officeURI)
		m.RequestID = 0
		return m
	}, "", goipp.StatusErrorBadRequest, ""},
	{"version 0.0", func() *goipp.Message {
		m := req(goipp.OpGetPrinterAttributes, officeURI)
		m.Version = 0
		return m
	}, "", goipp.StatusErrorVersionNotSupported, ""},
	{"version 1.0", func() *goipp.Message {
		m := req(goipp.OpGetPrinterAttributes, officeURI)
		m.Version = goipp.MakeVersion(1, 0)
		return m
	}, "", goipp.StatusOk, ""},
	{"no charset", func() *goipp.Message {
		m := req(goipp.OpGetPrinterAttributes, officeURI)
		m.Operation = m.Operation[1:]
		return m
	}, "", goipp.StatusErrorBadRequest, ""},
	{"language before charset", func() *goipp.Message {
		m := req(goipp.OpGetPrinterAttributes, officeURI)
		m.Operation[0], m.Operation[1] = m.Operation[1], m.Operation[0]
		return m
	}, "", goipp.StatusErrorBadRequest, ""},
	{"charset latin1", func() *goipp.Message {
		m := req(goipp.OpGetPrinterAttributes, officeURI)
		m.Operation[0].Values[0].V = goipp.String("iso-8859-1")
		return m
	}, "", goipp.StatusErrorCharset, "attributes-charset"},
	{"charset as keyword", func() *goipp.Message {
		m := req(goipp.OpGetPrinterAttributes, officeURI)
		m.Operation[0].Values[0].T = goipp.TagKeyword
		return m
	}, "", goipp.StatusErrorBadRequest, ""},
	{"no printer-uri", func() *goipp.Message { return req(goipp.OpGetPrinterAttributes, "") }, "", goipp.StatusErrorBadRequest, ""},
	{"unknown printer", func() *goipp.Message { return req(goipp.OpGetPrinterAttributes, "ipp://h/printers/nope") }, "", goipp.StatusErrorNotFound, "printer-uri"},
	{"any host and port", func() *goipp.Message {
		return req(goipp.OpGetPrinterAttributes, "ipp://example.net:1234/ipp/print/lab")
	}, "", goipp.StatusOk, ""},
	{"job group before operation group", func() *goipp.Message {
		m := req(goipp.OpPrintJob, officeURI)
		m.Groups = goipp.Groups{{Tag: goipp.TagJobGroup, Attrs: goipp.Attributes{integer("copies", 1)}}, {Tag: goipp.TagOperationGroup, Attrs: m.Operation}}
		return m
	}, "x", goipp.StatusErrorBadRequest, ""},
	{"unsupported operation", func() *goipp.Message { return req(goipp.OpPrintURI, officeURI) }, "", goipp.StatusErrorOperationNotSupported, ""},
	{"print-job", func() *goipp.Message {
		return req(goipp.OpPrintJob, officeURI, mime("document-format", "text/plain"))
	}, "hello\n", goipp.StatusOk, ""},
	{"print-job bad format", func() *goipp.Message {
		return req(goipp.OpPrintJob, officeURI, mime("document-format", "application/x-nope"))
	}, "hello\n", goipp.StatusErrorDocumentFormatNotSupported, "document-format"},
	{"print-job bad compression", func() *goipp.Message {
		return req(goipp.OpPrintJob, officeURI, kwAttr("compression", "compress"))
	}, "hello\n", goipp.StatusErrorCompressionNotSupported, "compression"},
	{"print-job gzip", func() *goipp.Message {
		return req(goipp.OpPrintJob, officeURI, kwAttr("compression", "gzip"))
	}, gzipped("hello\n"), goipp.StatusOk, ""},
	{"print-job corrupt gzip", func() *goipp.Message {
		return req(goipp.OpPrintJob, officeURI, kwAttr("compression", "gzip"))
	}, "not gzip at all", goipp.StatusErrorCompressionError, ""},
	{"validate-job unsupported sides, fidelity false", func() *goipp.Message {
		m := req(goipp.OpValidateJob, "ipp://localhost/printers/lab")
		m.Groups = goipp.Groups{{Tag: goipp.TagOperationGroup, Attrs: m.Operation},
			{Tag: goipp.TagJobGroup, Attrs: goipp.Attributes{kw("sides", "two-sided-long-edge")}}}
		return m
	}, "", goipp.StatusOkIgnoredOrSubstituted, "sides"},
	{"validate-job unsupported sides, fidelity true", func() *goipp.Message {
		m := req(goipp.OpValidateJob, "ipp://localhost/printers/lab", boolean("ipp-attribute-fidelity", true))
		m.Groups = goipp.Groups{{Tag: goipp.TagOperationGroup, Attrs: m.Operation},
			{Tag: goipp.TagJobGroup, Attrs: goipp.Attributes{kw("sides", "two-sided-long-edge")}}}
		return m
	}, "", goipp.StatusErrorAttributesOrValues, "sides"},
	{"validate-job copies wrong syntax", func() *goipp.Message {
		m := req(goipp.OpValidateJob, officeURI)
		m.Groups = goipp.Groups{{Tag: goipp.TagOperationGroup, Attrs: m.Operation},
			{Tag: goipp.TagJobGroup, Attrs: goipp.Attributes{kw("copies", "two")}}}
		return m
	}, "", goipp.StatusOkIgnoredOrSubstituted, "copies"},
	{"get-jobs bad which-jobs", func() *goipp.Message {
		return req(goipp.OpGetJobs, officeURI, kwAttr("which-jobs", "yesterday"))
	}, "", goipp.StatusErrorAttributesOrValues, "which-jobs"},
	{"get-jobs all queues", func() *goipp.Message {
		return req(goipp.OpGetJobs, "ipp://localhost/", kwAttr("which-jobs", "all"), kwAttr("requested-attributes", "all"))
	}, "", goipp.StatusOk, ""},
	{"get-job-attributes missing job-id", func() *goipp.Message { return req(goipp.OpGetJobAttributes, officeURI) }, "", goipp.StatusErrorBadRequest, ""},
	{"get-job-attributes no such job", func() *goipp.Message {
		return req(goipp.OpGetJobAttributes, officeURI, integer("job-id", 999))
	}, "", goipp.StatusErrorNotFound, ""},
	{"send-document without last-document", func() *goipp.Message {
		return req(goipp.OpSendDocument, officeURI, integer("job-id", 1))
	}, "", goipp.StatusErrorBadRequest, ""},
	{"pause-printer not an operator", func() *goipp.Message { return req(goipp.OpPausePrinter, officeURI) }, "", goipp.StatusErrorNotAuthorized, ""},
	{"cancel-jobs not an operator", func() *goipp.Message { return req(goipp.OpCancelJobs, officeURI) }, "", goipp.StatusErrorNotAuthorized, ""},
	{"cancel-my-jobs", func() *goipp.Message { return req(goipp.OpCancelMyJobs, officeURI) }, "", goipp.StatusOk, ""},
	{"identify-printer", func() *goipp.Message { return req(goipp.OpIdentifyPrinter, officeURI) }, "", goipp.StatusOk, ""},
	{"cups-get-default", func() *goipp.Message { return req(OpCupsGetDefault, "") }, "", goipp.StatusOk, ""},
	{"cups-get-printers", func() *goipp.Message { return req(OpCupsGetPrinters, "") }, "", goipp.StatusOk, ""},
	{"cups-get-classes", func() *goipp.Message { return req(OpCupsGetClasses, "") }, "", goipp.StatusOk, ""},
	{"unknown operation attribute", func() *goipp.Message {
		return req(goipp.OpGetPrinterAttributes, officeURI, kwAttr("x-frobnicate", "yes"))
	}, "", goipp.StatusOkIgnoredOrSubstituted, "x-frobnicate"},
	{"value too long", func() *goipp.Message {
		return req(goipp.OpGetPrinterAttributes, officeURI, kwAttr("requested-attributes", strings.Repeat("a", 300)))
	}, "", goipp.StatusErrorRequestValue, "requested-attributes"},
}

func gzipped(s string) string {
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	zw.Write([]byte(s))
	zw.Close()
	return b.String()
}

func TestRequests(t *testing.T) {
	for _, tt := range requestCases {
		t.Run(tt.name, func(t *testing.T) {
			h, _ := newTestHandler()
			resp := serve(t, h, tt.msg(), tt.doc)
			if got := goipp.Status(resp.Code); got != tt.status {
				msg, _ := attr(resp, goipp.TagOperationGroup, "status-message")
				t.Fatalf("status %s (%v), want %s", got, msg.Values, tt.status)
			}
			if resp.RequestID != tt.msg().RequestID {
				t.Errorf("request-id %d, want %d", resp.RequestID, tt.msg().RequestID)
			}
			if len(resp.Groups) == 0 || resp.Groups[0].Tag != goipp.TagOperationGroup ||
				resp.Groups[0].Attrs[0].Name != "attributes-charset" || resp.Groups[0].Attrs[1].Name != "attributes-natural-language" {
				t.Errorf("response does not start with charset and language: %v", resp.Groups)
			}
			if tt.unsup != "" {
				if _, ok := attr(resp, goipp.TagUnsupportedGroup, tt.unsup); !ok {
					t.Errorf("%s not in the unsupported group", tt.unsup)
				}
			}
		})
	}
}

// TestJobLifecycle walks a job through every job operation, round-tripping
// each response.
func TestJobLifecycle(t *testing.T) {
	h, fs := newTestHandler()
	create := req(goipp.OpCreateJob, officeURI, name("job-name", "report"))
	create.Groups = goipp.Groups{{Tag: goipp.TagOperationGroup, Attrs: create.Operation},
		{Tag: goipp.TagJobGroup, Attrs: goipp.Attributes{integer("copies", 2), kw("sides", "two-sided-long-edge"),
			kw("job-hold-until", "indefinite"), kw("media", "iso_a4_210x297mm")}}}
	resp := serve(t, h, create, "")
	if goipp.Status(resp.Code) != goipp.StatusOk {
		t.Fatalf("Create-Job: %s", goipp.Status(resp.Code))
	}
	idAttr, _ := attr(resp, goipp.TagJobGroup, "job-id")
	id := int(idAttr.Values[0].V.(goipp.Integer))
	if j, _ := fs.Job(id); j.State != spool.PendingHeld || j.Copies != 2 {
		t.Fatalf("job after Create-Job: %+v", j)
	}

	steps := []struct {
		name   string
		msg    *goipp.Message
		doc    string
		status goipp.Status
		state  spool.State
	}{
		{"send-document by someone else", withUser(req(goipp.OpSendDocument, officeURI, integer("job-id", id), boolean("last-document", true)), "mallory"), "x", goipp.StatusErrorNotAuthorized, spool.PendingHeld},
		{"send-document", req(goipp.OpSendDocument, officeURI, integer("job-id", id), boolean("last-document", false), mime("document-format", "text/plain")), "page\n", goipp.StatusOk, spool.PendingHeld},
		{"close-job", req(goipp.OpCloseJob, officeURI, integer("job-id", id)), "", goipp.StatusOk, spool.PendingHeld},
		{"send-document after close", req(goipp.OpSendDocument, officeURI, integer("job-id", id), boolean("last-document", true)), "more", goipp.StatusErrorNotPossible, spool.PendingHeld},
		{"get-job-attributes", req(goipp.OpGetJobAttributes, officeURI, integer("job-id", id)), "", goipp.StatusOk, spool.PendingHeld},
		{"get-jobs", req(goipp.OpGetJobs, officeURI, kwAttr("requested-attributes", "all"), boolean("my-jobs", true)), "", goipp.StatusOk, spool.PendingHeld},
		{"release-job", req(goipp.OpReleaseJob, officeURI, integer("job-id", id)), "", goipp.StatusOk, spool.Completed},
		{"cancel-job completed", req(goipp.OpCancelJob, "", uri("job-uri", "ipp://localhost/jobs/"+itoa(id))), "", goipp.StatusErrorNotPossible, spool.Completed},
	}
	for _, s := range steps {
		resp := serve(t, h, s.msg, s.doc)
		if got := goipp.Status(resp.Code); got != s.status {
			t.Fatalf("%s: status %s, want %s", s.name, got, s.status)
		}
		if j, _ := fs.Job(id); j.State != s.state {
			t.Fatalf("%s: job state %d, want %d", s.name, j.State, s.state)
		}
	}
	resp = serve(t, h, req(goipp.OpGetJobAttributes, officeURI, integer("job-id", id)), "")
	for n, want := range map[string]string{"copies": "2", "sides": "two-sided-long-edge", "job-printer-uri": "ipp://localhost:631/printers/office", "job-name": "report"} {
		a, ok := attr(resp, goipp.TagJobGroup, n)
		if !ok || a.Values[0].V.String() != want {
			t.Errorf("%s = %v, want %s", n, a.Values, want)
		}
	}
}

func withUser(m *goipp.Message, user string) *goipp.Message {
	for i, a := range m.Operation {
		if a.Name == "requesting-user-name" {
			m.Operation[i].Values[0].V = goipp.String(user)
		}
	}
	return m
}

func itoa(n int) string { return goipp.Integer(n).String() }

// TestPrinterAttributeGroups checks requested-attributes groups.
func TestPrinterAttributeGroups(t *testing.T) {
	h, _ := newTestHandler()
	tests := []struct {
		requested []string
		want      []string
		notWant   []string
	}{
		{nil, []string{"printer-name", "copies-default", "printer-uri-supported"}, []string{"media-col-database"}},
		{[]string{"all"}, []string{"printer-name", "sides-supported"}, []string{"media-col-database"}},
		{[]string{"job-template"}, []string{"copies-default", "media-col-ready"}, []string{"printer-name"}},
		{[]string{"printer-description"}, []string{"printer-name", "printer-state"}, []string{"copies-supported"}},
		{[]string{"all", "media-col-database"}, []string{"media-col-database", "printer-name"}, nil},
		{[]string{"printer-uri-supported"}, []string{"printer-uri-supported"}, []string{"printer-name"}},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.requested, ","), func(t *testing.T) {
			var extra []goipp.Attribute
			if tt.requested != nil {
				extra = append(extra, kw("requested-attributes", tt.requested...))
			}
			resp := serve(t, h, req(goipp.OpGetPrinterAttributes, officeURI, extra...), "")
			for _, n := range tt.want {
				if _, ok := attr(resp, goipp.TagPrinterGroup, n); !ok {
					t.Errorf("%s missing", n)
				}
			}
			for _, n := range tt.notWant {
				if _, ok := attr(resp, goipp.TagPrinterGroup, n); ok {
					t.Errorf("%s present", n)
				}
			}
			if a, ok := attr(resp, goipp.TagPrinterGroup, "printer-uri-supported"); ok && len(a.Values) != 1 {
				t.Errorf("printer-uri-supported has %d values; lp needs one", len(a.Values))
			}
		})
	}
}

// FuzzRequest feeds arbitrary bytes through decoding, validation and the
// operations: every input must get a response that encodes, or a decode
// error, never a panic.
func FuzzRequest(f *testing.F) {
	for _, tt := range requestCases {
		b, err := tt.msg().EncodeBytes()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(append(b, tt.doc...))
	}
	f.Add([]byte{})
	f.Add([]byte{2, 0, 0, 0xb, 0, 0, 0, 1, 1, 0x47, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, data []byte) {
		h, _ := newTestHandler()
		r := bytes.NewReader(data)
		var m goipp.Message
		if err := m.Decode(r); err != nil {
			return
		}
		resp := h.Serve(context.Background(), &Request{Msg: &m, Doc: r, Host: "localhost"})
		b, err := resp.EncodeBytes()
		if err != nil {
			t.Fatalf("response does not encode: %v", err)
		}
		var back goipp.Message
		if err := back.DecodeBytes(b); err != nil {
			t.Fatalf("response does not decode: %v", err)
		}
	})
}

// TestCloseStale: a job whose client stops sending documents is closed
// after the operation timeout and prints what it has.
func TestCloseStale(t *testing.T) {
	h, fs := newTestHandler()
	h.Open = new(OpenJobs)
	resp := serve(t, h, req(goipp.OpCreateJob, officeURI), "")
	idAttr, _ := attr(resp, goipp.TagJobGroup, "job-id")
	id := int(idAttr.Values[0].V.(goipp.Integer))
	serve(t, h, req(goipp.OpSendDocument, officeURI, integer("job-id", id), boolean("last-document", false)), "page one\n")
	if n := h.CloseStale(time.Now().Add(OperationTimeout / 2)); n != 0 {
		t.Fatalf("CloseStale before the timeout closed %d jobs", n)
	}
	if n := h.CloseStale(time.Now().Add(OperationTimeout + time.Second)); n != 1 {
		t.Fatalf("CloseStale after the timeout closed %d jobs, want 1", n)
	}
	if j, _ := fs.Job(id); !j.Closed || j.State != spool.Completed {
		t.Errorf("job after CloseStale: %+v", j)
	}
}
