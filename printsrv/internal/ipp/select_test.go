package ipp

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/OpenPrinting/goipp"

	"example.com/appliance/printsrv/internal/spool"
)

// TestPrinterTable checks that the cached printer attributes, selected
// per request, are what building them all and filtering gives.
func TestPrinterTable(t *testing.T) {
	h, _ := newTestHandler()
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	h.Now = func() time.Time { return now }
	st := spool.PrinterStatus{State: 4, Reasons: []string{"media-low"}, ChangeTime: now.Add(-time.Minute), QueuedJobs: 3, Accepting: true}
	requests := [][]string{nil, {"all"}, {"job-template"}, {"printer-description"},
		{"printer-name", "media-col-database", "printer-uri-supported", "copies-supported", "printer-state"},
		{"job-template", "media-col-database", "media-col-database"}, {"nothing-known"}}
	for i := range h.Printers {
		p := &h.Printers[i]
		for _, tls := range []bool{false, true} {
			for _, uri := range []string{"ipp://h:631/ipp/print", "ipp://h/ipp/print/" + p.Name, "ipps://h/printers/" + p.Name} {
				for _, requested := range requests {
					r := &request{Request: &Request{Host: "example.net:8631", TLS: tls},
						attrs: map[string]goipp.Attribute{"printer-uri": goipp.MakeAttribute("printer-uri", goipp.TagURI, goipp.String(uri))}}
					all, template := h.printerAttrs(p, r, st)
					want := oldSelectAttrs(all, template, requested, func(n string) (goipp.Attribute, bool) {
						if n == "media-col-database" {
							return p.mediaColDatabase(), true
						}
						return goipp.Attribute{}, false
					})
					got := h.selectPrinterAttrs(p, r, st, requested)
					if fmt.Sprint(got) != fmt.Sprint(want) || len(got) != len(want) {
						t.Errorf("%s tls=%v %s %q:\n got %v\nwant %v", p.Name, tls, uri, requested, got, want)
					}
				}
			}
		}
	}
}

// oldSelectAttrs is the selection printsrv made before the printer table.
func oldSelectAttrs(attrs goipp.Attributes, template map[string]bool, requested []string, extra func(string) (goipp.Attribute, bool)) goipp.Attributes {
	if len(requested) == 0 {
		requested = []string{"all"}
	}
	want := map[string]bool{}
	for _, r := range requested {
		want[r] = true
	}
	var out goipp.Attributes
	for _, a := range attrs {
		switch {
		case want[a.Name], want["all"],
			want["job-template"] && template[a.Name],
			want["printer-description"] && !template[a.Name]:
			out = append(out, a)
		}
	}
	for _, r := range requested {
		if a, ok := extra(r); ok {
			out = append(out, a)
		}
	}
	return out
}

// TestJobSelector checks that building only the requested job attributes
// gives what building them all and filtering gives.
func TestJobSelector(t *testing.T) {
	h, _ := newTestHandler()
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	h.Now = func() time.Time { return now }
	m := goipp.NewRequest(goipp.MakeVersion(2, 0), goipp.OpPrintJob, 1)
	m.Groups = goipp.Groups{{Tag: goipp.TagJobGroup, Attrs: goipp.Attributes{integer("copies", 2), kw("sides", "two-sided-long-edge"),
		mime("document-format", "application/pdf"), kw("print-scaling", "fit")}}}
	stored, err := m.EncodeBytes()
	if err != nil {
		t.Fatal(err)
	}
	jobs := []spool.Job{
		{ID: 7, Printer: "office", Name: "a", User: "alice", State: spool.Pending, Attrs: stored, Copies: 2, Formats: []string{"application/pdf"},
			Documents: 1, Bytes: 4000, Created: now.Add(-time.Hour)},
		{ID: 8, Printer: "lab", Name: "b", User: "bob", State: spool.Completed, Held: true, Reasons: []string{"job-completed-successfully"},
			Created: now.Add(-time.Hour), Processing: now.Add(-time.Minute), Completed: now},
	}
	requests := [][]string{{"all"}, {"job-template"}, {"job-description"}, {"job-id", "job-uri"},
		{"job-id", "copies", "sides", "job-hold-until", "print-scaling", "number-of-intervening-jobs"},
		{"job-description", "copies"}, {"nothing-known"}}
	for _, j := range jobs {
		for _, requested := range requests {
			r := &request{Request: &Request{Host: "h"}}
			want := oldSelectJob(h.jobAttrs(j, r, newJobSelector([]string{"all"}, nil)), requested)
			got := h.jobAttrs(j, r, newJobSelector(requested, nil))
			if fmt.Sprint(got) != fmt.Sprint(want) || len(got) != len(want) {
				t.Errorf("job %d %q:\n got %v\nwant %v", j.ID, requested, got, want)
			}
		}
	}
}

// oldSelectJob is the selection printsrv made before jobSelector.
func oldSelectJob(all goipp.Attributes, requested []string) goipp.Attributes {
	if slices.Contains(requested, "all") {
		return all
	}
	want := map[string]bool{}
	for _, r := range requested {
		want[r] = true
	}
	var out goipp.Attributes
	for _, a := range all {
		_, isTmpl := jobTemplate[a.Name]
		if want[a.Name] || want["job-template"] && isTmpl || want["job-description"] && !isTmpl {
			out = append(out, a)
		}
	}
	return out
}
