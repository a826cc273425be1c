package spool

import (
	"bytes"
	"context"
	"os"
	"testing"

	"example.com/appliance/printsrv/internal/docformat/docformattest"
)

// BenchmarkSubmitSerial is BenchmarkSubmit with a single submitter: each
// job pays the full latency of its durable commit.
func BenchmarkSubmitSerial(b *testing.B) {
	dir := os.Getenv("SPOOL_BENCH_DIR")
	if dir == "" {
		dir = b.TempDir()
	} else {
		var err error
		if dir, err = os.MkdirTemp(dir, "bench"); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = os.RemoveAll(dir) })
	}
	s, err := Open(Options{Dir: dir, Printers: []PrinterConfig{{Name: "p"}}})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	if err := s.Pause("p"); err != nil {
		b.Fatal(err)
	}
	pdf := docformattest.PDF(2)
	b.SetBytes(int64(len(pdf)))
	b.ResetTimer()
	for b.Loop() {
		if _, err := s.Submit(context.Background(), JobSpec{Printer: "p", User: "bench"}, bytes.NewReader(pdf), "application/octet-stream"); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "jobs/s")
}
