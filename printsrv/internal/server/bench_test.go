package server_test

import (
	"bytes"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/OpenPrinting/goipp"

	"example.com/appliance/printsrv/internal/server"
	"example.com/appliance/shared/nettest"
)

// benchService starts a Service as the appliance runs it (log level info)
// with its queues paused, so that a benchmark measures accepting jobs and
// answering queries, not printing them.
func benchService(b *testing.B) *testService {
	b.Helper()
	ts := startService(b, func(c *server.Config) { c.Log.Level = "info" })
	for _, p := range []string{"office", "lab"} {
		if err := ts.Spool().Pause(p); err != nil {
			b.Fatal(err)
		}
	}
	return ts
}

// cpuTime is the process's user and system time so far.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// benchIPP posts body to url b.N times (from par goroutines per
// GOMAXPROCS when par > 0) and checks each answer is successful-ok. It
// reports the process's CPU time per request (client included) as
// cpu-µs/op and the rate as req/s.
func benchIPP(b *testing.B, url string, body []byte, par int) {
	b.Helper()
	tr := &http.Transport{MaxIdleConnsPerHost: 64}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr}
	post := func() error {
		res, err := c.Post(url, "application/ipp", bytes.NewReader(body))
		if err != nil {
			return err
		}
		defer res.Body.Close()
		var resp goipp.Message
		if err := resp.Decode(res.Body); err != nil {
			return err
		}
		if st := goipp.Status(resp.Code); st != goipp.StatusOk {
			return &statusError{st}
		}
		_, err = io.Copy(io.Discard, res.Body)
		return err
	}
	b.ResetTimer()
	cpu0 := cpuTime(b)
	if par > 0 {
		b.SetParallelism(par)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if err := post(); err != nil {
					b.Error(err)
					return
				}
			}
		})
	} else {
		for b.Loop() {
			if err := post(); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.StopTimer()
	b.ReportMetric(float64((cpuTime(b)-cpu0).Microseconds())/float64(b.N), "cpu-µs/op")
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
}

type statusError struct{ st goipp.Status }

func (e *statusError) Error() string { return "IPP status " + e.st.String() }

// BenchmarkPrintJob measures one Print-Job of the 64 KB sample PDF, from
// the HTTP request to the acknowledgement (the job fsynced in the spool),
// from one submitter and from 8 concurrent ones per CPU.
func BenchmarkPrintJob(b *testing.B) {
	doc, err := os.ReadFile(filepath.Join(nettest.NeedShared(b, "ipptool"), "testfile.pdf"))
	if err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct {
		name string
		par  int
	}{{"serial", 0}, {"parallel", 8}} {
		b.Run(bc.name, func(b *testing.B) {
			ts := benchService(b)
			msg, _ := ippReq(goipp.OpPrintJob, ts.uri("/printers/office"), mimeAttr("application/pdf")).EncodeBytes()
			b.SetBytes(int64(len(doc)))
			benchIPP(b, "http://"+ts.Addr+"/printers/office", append(msg, doc...), bc.par)
		})
	}
}

// BenchmarkGetPrinterAttributes measures Get-Printer-Attributes as lp
// sends it (every attribute) and as lpstat and ipptool send it (a few).
func BenchmarkGetPrinterAttributes(b *testing.B) {
	ts := benchService(b)
	for _, bc := range []struct {
		name string
		req  []string
	}{
		{"all", nil},
		{"lpstat", []string{"printer-name", "printer-state", "printer-state-reasons", "printer-is-accepting-jobs",
			"printer-type", "printer-uri-supported", "printer-state-change-time", "printer-info", "printer-location",
			"printer-make-and-model", "document-format-supported"}},
		{"media-col-database", []string{"media-col-database"}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			var attrs []goipp.Attribute
			if bc.req != nil {
				a := goipp.Attribute{Name: "requested-attributes"}
				for _, r := range bc.req {
					a.Values.Add(goipp.TagKeyword, goipp.String(r))
				}
				attrs = append(attrs, a)
			}
			msg, _ := ippReq(goipp.OpGetPrinterAttributes, ts.uri("/printers/office"), attrs...).EncodeBytes()
			benchIPP(b, "http://"+ts.Addr+"/printers/office", msg, 0)
		})
	}
}

// BenchmarkGetJobs measures Get-Jobs of a queue holding 50 jobs, as
// lpstat -o asks it, and with every attribute.
func BenchmarkGetJobs(b *testing.B) {
	doc, err := os.ReadFile(filepath.Join(nettest.NeedShared(b, "ipptool"), "testfile.pdf"))
	if err != nil {
		b.Fatal(err)
	}
	ts := benchService(b)
	url := "http://" + ts.Addr + "/printers/office"
	for range 50 {
		ippDo(b, url, ippReq(goipp.OpPrintJob, ts.uri("/printers/office"), mimeAttr("application/pdf"),
			goipp.MakeAttribute("job-name", goipp.TagName, goipp.String("report.pdf"))), doc)
	}
	for _, bc := range []struct {
		name string
		req  []string
	}{
		{"lpstat", []string{"job-id", "job-k-octets", "job-name", "job-originating-user-name", "job-printer-uri",
			"job-priority", "job-state", "time-at-completed", "time-at-creation"}},
		{"all", []string{"all"}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			a := goipp.Attribute{Name: "requested-attributes"}
			for _, r := range bc.req {
				a.Values.Add(goipp.TagKeyword, goipp.String(r))
			}
			msg, _ := ippReq(goipp.OpGetJobs, ts.uri("/printers/office"), a,
				goipp.MakeAttribute("which-jobs", goipp.TagKeyword, goipp.String("all"))).EncodeBytes()
			benchIPP(b, url, msg, 0)
		})
	}
}
