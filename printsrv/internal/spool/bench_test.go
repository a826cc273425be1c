package spool

import (
	"bytes"
	"context"
	"os"
	"testing"

	"example.com/appliance/printsrv/internal/docformat/docformattest"
)

// BenchmarkSubmit measures accepted jobs per second: small PDFs, each
// acknowledged only when durable, from one submitter (each job pays the
// full latency of its commit) and from concurrent ones
// (b.SetParallelism(8): 16 on 2 cores, sharing commits). The printer is
// paused, so only the spool's side is measured. SPOOL_BENCH_DIR names a
// folder on the disk to measure; the default is a temporary one.
func BenchmarkSubmit(b *testing.B) {
	for _, bc := range []struct {
		name string
		par  int
	}{{"serial", 0}, {"parallel", 8}} {
		b.Run(bc.name, func(b *testing.B) {
			s := benchSpool(b)
			pdf := docformattest.PDF(2)
			submit := func() error {
				_, err := s.Submit(context.Background(), JobSpec{Printer: "p", User: "bench"}, bytes.NewReader(pdf), "application/octet-stream")
				return err
			}
			b.SetBytes(int64(len(pdf)))
			b.ResetTimer()
			if bc.par == 0 {
				for b.Loop() {
					if err := submit(); err != nil {
						b.Fatal(err)
					}
				}
			} else {
				b.SetParallelism(bc.par)
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						if err := submit(); err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "jobs/s")
		})
	}
}

// benchSpool opens a spool with one paused printer in SPOOL_BENCH_DIR or
// a temporary folder.
func benchSpool(b *testing.B) *Spool {
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
	b.Cleanup(func() { _ = s.Close() })
	if err := s.Pause("p"); err != nil {
		b.Fatal(err)
	}
	return s
}
