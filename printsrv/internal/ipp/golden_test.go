package ipp

import (
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/OpenPrinting/goipp"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// TestGolden keeps the full responses to the requests clients make most
// in testdata, so that every change to what printsrv advertises shows in
// review. Run with -update to accept a change.
func TestGolden(t *testing.T) {
	tests := []struct {
		name string
		msg  *goipp.Message
	}{
		{"get-printer-attributes-office", req(goipp.OpGetPrinterAttributes, officeURI, kw("requested-attributes", "all", "media-col-database"))},
		{"get-printer-attributes-lab", req(goipp.OpGetPrinterAttributes, "ipp://localhost:631/ipp/print/lab")},
		{"cups-get-printers-lpstat", req(OpCupsGetPrinters, "", kw("requested-attributes", "printer-name", "printer-state", "printer-type", "printer-state-change-time", "printer-is-accepting-jobs", "printer-state-message", "printer-uri-supported"))},
		{"print-job-unsupported", func() *goipp.Message {
			m := req(goipp.OpPrintJob, officeURI, mime("document-format", "text/plain"))
			m.Groups = goipp.Groups{{Tag: goipp.TagOperationGroup, Attrs: m.Operation},
				{Tag: goipp.TagJobGroup, Attrs: goipp.Attributes{kw("sides", "two-sided-long-edge"), kw("media", "iso_a0_841x1189mm"), integer("copies", 3)}}}
			return m
		}()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, _ := newTestHandler()
			h.Now = func() time.Time { return time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC) }
			resp := serve(t, h, tt.msg, "a document\n")
			f := goipp.NewFormatter()
			f.FmtResponse(resp)
			got := f.String()
			path := filepath.Join("testdata", tt.name+".golden")
			if *update {
				if err := os.MkdirAll("testdata", 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if got != string(want) {
				t.Errorf("response differs from %s (go test -update accepts it):\n%s", path, got)
			}
		})
	}
}
