package server_test

import (
	"bufio"
	"bytes"
	"compress/flate"
	"compress/gzip"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/OpenPrinting/goipp"
	"golang.org/x/crypto/bcrypt"

	"example.com/appliance/printsrv/internal/server"
	"example.com/appliance/printsrv/internal/spool"
	"example.com/appliance/shared/nettest"
)

func kw(name string, v ...string) goipp.Attribute {
	a := goipp.Attribute{Name: name}
	for _, s := range v {
		a.Values.Add(goipp.TagKeyword, goipp.String(s))
	}
	return a
}

func mimeAttr(v string) goipp.Attribute {
	return goipp.MakeAttribute("document-format", goipp.TagMimeType, goipp.String(v))
}

// TestHTTPErrors: requests that are not IPP get a clean HTTP error.
func TestHTTPErrors(t *testing.T) {
	ts := startService(t, func(c *server.Config) { c.Limits.MaxMessageBytes = 4096 })
	good, _ := ippReq(goipp.OpGetPrinterAttributes, ts.uri("/printers/office")).EncodeBytes()
	big := ippReq(goipp.OpGetPrinterAttributes, ts.uri("/printers/office"))
	for i := range 100 {
		big.Operation.Add(kw(fmt.Sprintf("x-filler-%d", i), strings.Repeat("x", 100)))
	}
	bigBytes, _ := big.EncodeBytes()
	tests := []struct {
		name        string
		method      string
		contentType string
		body        []byte
		want        int
	}{
		{"garbage", "POST", "application/ipp", []byte("GET / HTTP/1.0\r\n\r\n"), http.StatusBadRequest},
		{"truncated", "POST", "application/ipp", good[:len(good)-5], http.StatusBadRequest},
		{"empty", "POST", "application/ipp", nil, http.StatusBadRequest},
		{"too large", "POST", "application/ipp", bigBytes, http.StatusRequestEntityTooLarge},
		{"wrong content type", "POST", "text/plain", good, http.StatusBadRequest},
		{"put", "PUT", "application/ipp", good, http.StatusMethodNotAllowed},
		{"ppd", "GET", "", nil, http.StatusNotFound},
		{"good", "POST", "application/ipp", good, http.StatusOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := "/printers/office"
			if tt.name == "ppd" {
				path += ".ppd"
			}
			r, _ := http.NewRequest(tt.method, "http://"+ts.Addr+path, bytes.NewReader(tt.body))
			if tt.contentType != "" {
				r.Header.Set("Content-Type", tt.contentType)
			}
			res, err := http.DefaultClient.Do(r)
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, res.Body)
			res.Body.Close()
			if res.StatusCode != tt.want {
				t.Errorf("HTTP %d, want %d", res.StatusCode, tt.want)
			}
		})
	}
	http.DefaultClient.CloseIdleConnections()
}

// TestChunkedExpectContinue sends Print-Job the way lp sends
// Send-Document: Expect: 100-continue, then a chunked body.
func TestChunkedExpectContinue(t *testing.T) {
	ts := startService(t)
	msg, _ := ippReq(goipp.OpPrintJob, ts.uri("/ipp/print/lab"), mimeAttr("text/plain")).EncodeBytes()
	c := nettest.Dial(t, "tcp", ts.Addr)
	fmt.Fprintf(c, "POST /ipp/print/lab HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/ipp\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n")
	br := bufio.NewReader(c)
	line, err := br.ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "HTTP/1.1 100") {
		t.Fatalf("want 100 Continue, got %q, %v", line, err)
	}
	br.ReadString('\n') // the blank line after 100 Continue
	doc := strings.Repeat("a line of text\n", 1000)
	body := append(msg, doc...)
	for len(body) > 0 {
		n := min(len(body), 777)
		fmt.Fprintf(c, "%x\r\n%s\r\n", n, body[:n])
		body = body[n:]
	}
	fmt.Fprintf(c, "0\r\n\r\n")
	res, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var resp goipp.Message
	if err := resp.Decode(res.Body); err != nil {
		t.Fatal(err)
	}
	if goipp.Status(resp.Code) != goipp.StatusOk {
		t.Fatalf("status %s", goipp.Status(resp.Code))
	}
	j := ts.waitJob(t, jobID(t, &resp), "the chunked job to print", func(j spool.Job) bool { return j.State == spool.Completed })
	if j.Bytes != int64(len(doc)) {
		t.Errorf("job has %d bytes, sent %d", j.Bytes, len(doc))
	}
}

func TestCompression(t *testing.T) {
	ts := startService(t)
	doc := strings.Repeat("compressible text\n", 5000)
	var gz, fl bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write([]byte(doc))
	zw.Close()
	fw, _ := flate.NewWriter(&fl, flate.BestSpeed)
	fw.Write([]byte(doc))
	fw.Close()
	tests := []struct {
		name, compression string
		data              []byte
		status            goipp.Status
	}{
		{"gzip", "gzip", gz.Bytes(), goipp.StatusOk},
		{"deflate", "deflate", fl.Bytes(), goipp.StatusOk},
		{"none", "none", []byte(doc), goipp.StatusOk},
		{"corrupt gzip", "gzip", []byte("this is not gzip"), goipp.StatusErrorCompressionError},
		{"unknown", "compress", []byte(doc), goipp.StatusErrorCompressionNotSupported},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := ippDo(t, "http://"+ts.Addr+"/printers/office",
				ippReq(goipp.OpPrintJob, ts.uri("/printers/office"), kw("compression", tt.compression), mimeAttr("text/plain")), tt.data)
			if got := goipp.Status(resp.Code); got != tt.status {
				t.Fatalf("status %s, want %s", got, tt.status)
			}
			if tt.status != goipp.StatusOk {
				return
			}
			j := ts.waitJob(t, jobID(t, resp), "the job to print", func(j spool.Job) bool { return j.State == spool.Completed })
			if j.Bytes != int64(len(doc)) {
				t.Errorf("job has %d bytes, want %d uncompressed", j.Bytes, len(doc))
			}
		})
	}
}

func TestMaxJobBytes(t *testing.T) {
	ts := startService(t, func(c *server.Config) { c.MaxJobBytes = 10000 })
	resp := ippDo(t, "http://"+ts.Addr+"/printers/office",
		ippReq(goipp.OpPrintJob, ts.uri("/printers/office"), mimeAttr("text/plain")), bytes.Repeat([]byte("x"), 20000))
	if got := goipp.Status(resp.Code); got != goipp.StatusErrorRequestEntity {
		t.Fatalf("status %s, want client-error-request-entity-too-large", got)
	}
	resp = ippDo(t, "http://"+ts.Addr+"/printers/office",
		ippReq(goipp.OpPrintJob, ts.uri("/printers/office"), mimeAttr("text/plain")), bytes.Repeat([]byte("x"), 5000))
	if got := goipp.Status(resp.Code); got != goipp.StatusOk {
		t.Fatalf("status %s for a job under the limit", got)
	}
}

func TestBasicAuth(t *testing.T) {
	hash, err := bcrypt.GenerateFromPassword([]byte("s3cret"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	ts := startService(t, func(c *server.Config) {
		c.Auth.Users = []string{"carol:" + string(hash)}
	})
	msg, _ := ippReq(goipp.OpPrintJob, ts.uri("/printers/office"), mimeAttr("text/plain")).EncodeBytes()
	query, _ := ippReq(goipp.OpGetPrinterAttributes, ts.uri("/printers/office")).EncodeBytes()
	tests := []struct {
		name       string
		body       []byte
		user, pass string
		want       int
	}{
		{"print without auth", msg, "", "", http.StatusUnauthorized},
		{"print bad password", msg, "carol", "wrong", http.StatusUnauthorized},
		{"print bcrypt user", msg, "carol", "s3cret", http.StatusOK},
		{"print unknown user", msg, "dave", "plain", http.StatusUnauthorized},
		{"query without auth", query, "", "", http.StatusOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, _ := http.NewRequest("POST", "http://"+ts.Addr+"/printers/office", bytes.NewReader(append(tt.body, "doc\n"...)))
			r.Header.Set("Content-Type", "application/ipp")
			if tt.user != "" {
				r.SetBasicAuth(tt.user, tt.pass)
			}
			res, err := http.DefaultClient.Do(r)
			if err != nil {
				t.Fatal(err)
			}
			defer res.Body.Close()
			if res.StatusCode != tt.want {
				t.Fatalf("HTTP %d, want %d", res.StatusCode, tt.want)
			}
			if tt.want == http.StatusUnauthorized && !strings.HasPrefix(res.Header.Get("WWW-Authenticate"), "Basic") {
				t.Errorf("no Basic challenge")
			}
			if res.StatusCode != http.StatusOK || tt.body[3] != byte(goipp.OpPrintJob) {
				return
			}
			var resp goipp.Message
			if err := resp.Decode(res.Body); err != nil {
				t.Fatal(err)
			}
			// The job belongs to the authenticated user, whatever
			// requesting-user-name says (alice).
			j, _ := ts.Spool().Job(jobID(t, &resp))
			if j.User != tt.user {
				t.Errorf("job owner %q, want the authenticated %q", j.User, tt.user)
			}
		})
	}
	http.DefaultClient.CloseIdleConnections()
}

func TestTLSSelfSigned(t *testing.T) {
	ts := startService(t, func(c *server.Config) { c.TLS.Listen = []string{"tcp/127.0.0.1:0"} })
	if _, err := os.Stat(filepath.Join(ts.State, "tls", "cert.pem")); err != nil {
		t.Fatalf("no self-signed certificate in the state dir: %v", err)
	}
	addr := strings.TrimPrefix(ts.TLSAddrs()[0], "tcp/")
	tr := &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}
	defer tr.CloseIdleConnections()
	msg, _ := ippReq(goipp.OpGetPrinterAttributes, "ipps://"+addr+"/printers/lab", kw("requested-attributes", "printer-uri-supported", "uri-security-supported")).EncodeBytes()
	res, err := (&http.Client{Transport: tr}).Post("https://"+addr+"/printers/lab", "application/ipp", bytes.NewReader(msg))
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var resp goipp.Message
	if err := resp.Decode(res.Body); err != nil {
		t.Fatal(err)
	}
	u, _ := findAttr(&resp, goipp.TagPrinterGroup, "printer-uri-supported")
	s, _ := findAttr(&resp, goipp.TagPrinterGroup, "uri-security-supported")
	if len(u.Values) != 1 || !strings.HasPrefix(u.Values[0].V.String(), "ipps://") || len(s.Values) != 1 || s.Values[0].V.String() != "tls" {
		t.Errorf("over TLS: printer-uri-supported %v, uri-security-supported %v", u.Values, s.Values)
	}
}

// TestPauseResume: operators pause and resume queues; jobs wait meanwhile.
func TestPauseResume(t *testing.T) {
	ts := startService(t, func(c *server.Config) { c.Operators = []string{"alice"} })
	url := "http://" + ts.Addr + "/printers/lab"
	do := func(op goipp.Op, user string, attrs ...goipp.Attribute) *goipp.Message {
		m := ippReq(op, ts.uri("/printers/lab"), attrs...)
		m.Operation[3].Values[0].V = goipp.String(user)
		return ippDo(t, url, m, nil)
	}
	if st := goipp.Status(do(goipp.OpPausePrinter, "bob").Code); st != goipp.StatusErrorNotAuthorized {
		t.Fatalf("Pause-Printer by bob: %s", st)
	}
	if st := goipp.Status(do(goipp.OpPausePrinter, "alice").Code); st != goipp.StatusOk {
		t.Fatalf("Pause-Printer by alice: %s", st)
	}
	resp := do(goipp.OpGetPrinterAttributes, "bob", kw("requested-attributes", "printer-state"))
	if a, _ := findAttr(resp, goipp.TagPrinterGroup, "printer-state"); len(a.Values) != 1 || a.Values[0].V.String() != "5" {
		t.Errorf("printer-state after pause %v, want 5", a.Values)
	}
	id := jobID(t, ippDo(t, url, ippReq(goipp.OpPrintJob, ts.uri("/printers/lab"), mimeAttr("text/plain")), []byte("waits\n")))
	if st := goipp.Status(do(goipp.OpResumePrinter, "alice").Code); st != goipp.StatusOk {
		t.Fatalf("Resume-Printer: %s", st)
	}
	ts.waitJob(t, id, "the job to print after resume", func(j spool.Job) bool { return j.State == spool.Completed })
	if n := ts.metricOps(t, "Pause-Printer", "client-error-not-authorized"); n != 1 {
		t.Errorf("ipp_requests_total{Pause-Printer,not-authorized} = %v, want 1", n)
	}
}

// TestReload: SIGHUP's Reload applies new operators and users at once.
func TestReload(t *testing.T) {
	ts := startService(t, func(c *server.Config) { c.Operators = []string{"root"} })
	url := "http://" + ts.Addr + "/printers/office"
	pause := func() goipp.Status {
		return goipp.Status(ippDo(t, url, ippReq(goipp.OpPausePrinter, ts.uri("/printers/office")), nil).Code)
	}
	if st := pause(); st != goipp.StatusErrorNotAuthorized {
		t.Fatalf("Pause-Printer by alice before reload: %s", st)
	}
	ts.reloadWith(t, func(c *server.Config) { c.Operators = []string{"alice"}; c.Log.Level = "warn" })
	if st := pause(); st != goipp.StatusOk {
		t.Fatalf("Pause-Printer by alice after reload: %s", st)
	}
	if ts.Base.Level.Level().String() != "WARN" {
		t.Errorf("log level %s after reload, want WARN", ts.Base.Level.Level())
	}
	http.DefaultClient.CloseIdleConnections()
}
