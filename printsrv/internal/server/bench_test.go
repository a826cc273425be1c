package server_test

import (
	"bytes"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/OpenPrinting/goipp"

	"example.com/appliance/shared/nettest"
)

// BenchmarkPrintJob measures one Print-Job of the 64 KB sample PDF, from
// the HTTP request to the acknowledgement (the job fsynced in the spool).
func BenchmarkPrintJob(b *testing.B) {
	doc, err := os.ReadFile(filepath.Join(nettest.NeedShared(b, "ipptool"), "testfile.pdf"))
	if err != nil {
		b.Fatal(err)
	}
	ts := startService(b)
	msg, _ := ippReq(goipp.OpPrintJob, ts.uri("/printers/office"), mimeAttr("application/pdf")).EncodeBytes()
	body := append(msg, doc...)
	url := "http://" + ts.Addr + "/printers/office"
	c := &http.Client{}
	defer c.CloseIdleConnections()
	b.SetBytes(int64(len(doc)))
	b.ResetTimer()
	for b.Loop() {
		res, err := c.Post(url, "application/ipp", bytes.NewReader(body))
		if err != nil {
			b.Fatal(err)
		}
		var resp goipp.Message
		if err := resp.Decode(res.Body); err != nil || goipp.Status(resp.Code) != goipp.StatusOk {
			b.Fatalf("Print-Job: %v %v", err, goipp.Status(resp.Code))
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
	}
}
