package ipp

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/OpenPrinting/goipp"
	"go.uber.org/goleak"

	"example.com/appliance/shared/nettest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// testPrinters are the queues of the protocol tests.
func testPrinters() []Printer {
	return []Printer{
		{Name: "office", MakeAndModel: "Test Office", Location: "here", Info: "office",
			Formats: []string{"application/pdf", "image/jpeg", "image/pwg-raster", "text/plain", "application/postscript"},
			Duplex:  true, Media: []string{"iso_a4_210x297mm", "na_letter_8.5x11in"}, MediaDefault: "iso_a4_210x297mm"},
		{Name: "lab", MakeAndModel: "Test Lab", Formats: []string{"application/pdf"}, Color: true,
			Media: []string{"iso_a4_210x297mm"}, MediaDefault: "iso_a4_210x297mm"},
	}
}

func newTestHandler() (*Handler, *fakeSpool) {
	fs := newFakeSpool("office", "lab")
	return &Handler{Spool: fs, Printers: testPrinters(), Default: "office", Operators: []string{"admin"},
		Log: slog.New(slog.DiscardHandler), Started: time.Unix(1700000000, 0)}, fs
}

// httpHandler is the smallest HTTP front end for the protocol tests.
func httpHandler(h *Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var m goipp.Message
		if err := m.Decode(r.Body); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		resp := h.Serve(r.Context(), &Request{Msg: &m, Doc: r.Body, Host: r.Host})
		b, err := resp.EncodeBytes()
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/ipp")
		w.Write(b)
	})
}

// req builds a request with the usual operation attributes.
func req(op goipp.Op, uri string, attrs ...goipp.Attribute) *goipp.Message {
	m := goipp.NewRequest(goipp.MakeVersion(2, 0), op, 1)
	m.Operation.Add(goipp.MakeAttribute("attributes-charset", goipp.TagCharset, goipp.String("utf-8")))
	m.Operation.Add(goipp.MakeAttribute("attributes-natural-language", goipp.TagLanguage, goipp.String("en")))
	if uri != "" {
		m.Operation.Add(goipp.MakeAttribute("printer-uri", goipp.TagURI, goipp.String(uri)))
	}
	m.Operation.Add(goipp.MakeAttribute("requesting-user-name", goipp.TagName, goipp.String("alice")))
	for _, a := range attrs {
		m.Operation.Add(a)
	}
	return m
}

// serve runs a request through the handler and round-trips the response
// through the codec, failing on any difference: goipp can truncate a
// message silently when an attribute does not encode.
func serve(t *testing.T, h *Handler, m *goipp.Message, doc string) *goipp.Message {
	t.Helper()
	b, err := m.EncodeBytes()
	if err != nil {
		t.Fatal(err)
	}
	var in goipp.Message
	if err := in.DecodeBytes(b); err != nil {
		t.Fatal(err)
	}
	resp := h.Serve(context.Background(), &Request{Msg: &in, Doc: strings.NewReader(doc), Host: "localhost:631"})
	return roundTrip(t, resp)
}

func roundTrip(t testing.TB, resp *goipp.Message) *goipp.Message {
	t.Helper()
	b, err := resp.EncodeBytes()
	if err != nil {
		t.Fatalf("encode response: %v", err)
	}
	var back goipp.Message
	if err := back.DecodeBytes(b); err != nil {
		t.Fatalf("decode response: %v", err)
	}
	if !back.Similar(*resp) {
		var w1, w2 bytes.Buffer
		resp.Print(&w1, false)
		back.Print(&w2, false)
		t.Fatalf("response does not survive a round trip:\n%s\nbecame\n%s", w1.String(), w2.String())
	}
	return &back
}

func attr(m *goipp.Message, group goipp.Tag, name string) (goipp.Attribute, bool) {
	for _, g := range m.Groups {
		if g.Tag != group {
			continue
		}
		for _, a := range g.Attrs {
			if a.Name == name {
				return a, true
			}
		}
	}
	return goipp.Attribute{}, false
}

// needIpptoolFiles returns the conformance files' sample documents
// (../shared/ipptool).
func needIpptoolFiles(t *testing.T) string {
	t.Helper()
	return nettest.NeedShared(t, "ipptool")
}

// ipptoolWorkDir makes a working directory for ipptool holding links to
// the sample documents and the PWG raster samples ipp-everywhere.test prints.
func ipptoolWorkDir(t *testing.T) string {
	t.Helper()
	samples := needIpptoolFiles(t)
	work := t.TempDir()
	ents, err := os.ReadDir(samples)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if err := os.Symlink(filepath.Join(samples, e.Name()), filepath.Join(work, e.Name())); err != nil {
			t.Fatal(err)
		}
	}
	out, err := exec.Command("/bin/sh", filepath.Join(samples, "make-pwg-samples.sh"), work).CombinedOutput()
	if err != nil {
		t.Fatalf("make-pwg-samples.sh: %v\n%s", err, out)
	}
	return work
}

var passFail = regexp.MustCompile(`(?m)^\s+(.*?)\s+\[(PASS|FAIL|SKIP)\]$`)

// runIpptool runs one conformance file and returns the names of the tests
// that failed, and how many passed.
func runIpptool(t *testing.T, work, uri, file string, extra ...string) (failed []string, passed int, out string) {
	t.Helper()
	ipptool := nettest.NeedTool(t, "ipptool")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	args := append([]string{"-I", "-t", "-T", "30", "-d", "filetype=application/pdf"}, extra...)
	args = append(args, uri, "/usr/share/cups/ipptool/"+file)
	cmd := exec.CommandContext(ctx, ipptool, args...)
	cmd.Dir = work
	cmd.Env = append(os.Environ(), "HOME="+t.TempDir(), "CUPS_SERVER=127.0.0.1:1")
	b, _ := cmd.CombinedOutput() // ipptool exits 1 when a test fails; the report says which
	out = string(b)
	for _, m := range passFail.FindAllStringSubmatch(out, -1) {
		switch m[2] {
		case "FAIL":
			failed = append(failed, m[1])
		case "PASS":
			passed++
		}
	}
	if passed == 0 && len(failed) == 0 {
		t.Fatalf("ipptool %s ran no tests:\n%s", file, out)
	}
	return failed, passed, out
}

// knownBad lists tests that fail against every server: test-file bugs.
var knownBad = map[string]map[int]bool{
	"get-printer-attributes-suite.test": {5: true},
}

// TestIpptoolConformance runs the CUPS conformance files against the
// protocol layer with a fake spool.
func TestIpptoolConformance(t *testing.T) {
	nettest.NeedTool(t, "ipptool")
	work := ipptoolWorkDir(t)
	h, _ := newTestHandler()
	srv := httptest.NewServer(httpHandler(h))
	defer srv.Close()
	uri := "ipp://" + strings.TrimPrefix(srv.URL, "http://") + "/ipp/print"
	for _, file := range []string{"ipp-1.1.test", "ipp-2.0.test", "ipp-everywhere.test", "get-printer-attributes-suite.test"} {
		t.Run(file, func(t *testing.T) {
			checkIpptool(t, work, uri, file)
		})
	}
}

// checkIpptool runs a conformance file and fails on every failed test
// that is not a known test-file bug.
func checkIpptool(t *testing.T, work, uri, file string) {
	failed, passed, out := runIpptool(t, work, uri, file)
	var unexpected []string
	for _, f := range failed {
		n := testNumber(out, f)
		if !knownBad[file][n] {
			unexpected = append(unexpected, f)
		}
	}
	t.Logf("%s: %d passed, %d failed (%d expected)", file, passed, len(failed), len(failed)-len(unexpected))
	if len(unexpected) > 0 {
		t.Errorf("%s: %d tests failed: %q\n%s", file, len(unexpected), unexpected, lastLines(out, 200))
	}
}

// testNumber finds the 1-based position of a test in ipptool's report.
func testNumber(out, name string) int {
	for i, m := range passFail.FindAllStringSubmatch(out, -1) {
		if m[1] == name {
			return i + 1
		}
	}
	return 0
}

func lastLines(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = append([]string{"[... " + strconv.Itoa(len(lines)-n) + " lines]"}, lines[len(lines)-n:]...)
	}
	return strings.Join(lines, "\n")
}
