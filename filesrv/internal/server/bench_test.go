package server_test

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"example.com/appliance/filesrv/internal/oncrpc"
	"example.com/appliance/filesrv/internal/server"
)

// benchFiles is how many files the small-file benchmarks cycle through.
const benchFiles = 1000

func quiet(cfg *server.Config) { cfg.Log.Level = "warn" }

// BenchmarkStat measures what a libnfs stat of dir/name costs: LOOKUP of
// the folder, LOOKUP of the file, GETATTR of the file.
func BenchmarkStat(b *testing.B) {
	ts := startService(b, quiet)
	dir := filepath.Join(ts.Export, "d")
	if err := os.Mkdir(dir, 0o755); err != nil {
		b.Fatal(err)
	}
	for i := range benchFiles {
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%05d", i)), []byte("x"), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	rc := dialRPC(b, ts.NFS)
	root := rc.mount("/export")
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		st, dh, _ := rc.lookup(root, "d")
		if st != 0 {
			b.Fatalf("LOOKUP d: %d", st)
		}
		st, fh, _ := rc.lookup(dh, fmt.Sprintf("f%05d", i%benchFiles))
		if st != 0 {
			b.Fatalf("LOOKUP f: %d", st)
		}
		w := oncrpc.NewWriter(nil)
		w.Opaque(fh)
		rep := rc.call(100003, 3, 1, w.Bytes())
		if rep.Stat != oncrpc.Success || oncrpc.NewReader(rep.Results).Uint32() != 0 {
			b.Fatalf("GETATTR: %+v", rep)
		}
	}
}

// BenchmarkCreate measures a libnfs small-file create: CREATE, WRITE of
// 4 KiB (unstable), COMMIT; then REMOVE outside the timer's interest.
func BenchmarkCreate(b *testing.B) {
	ts := startService(b, quiet)
	rc := dialRPC(b, ts.NFS)
	root := rc.mount("/export")
	data := make([]byte, 4096)
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		name := fmt.Sprintf("f%07d", i)
		w := oncrpc.NewWriter(nil)
		w.Opaque(root)
		w.String(name)
		w.Uint32(0) // UNCHECKED
		for range 6 {
			w.Uint32(0) // sattr3: nothing set
		}
		rep := rc.call(100003, 3, 8, w.Bytes())
		r := oncrpc.NewReader(rep.Results)
		if rep.Stat != oncrpc.Success || r.Uint32() != 0 || !r.Bool() {
			b.Fatalf("CREATE: %+v", rep)
		}
		fh := r.Opaque(64)
		w = oncrpc.NewWriter(nil)
		w.Opaque(fh)
		w.Uint64(0)
		w.Uint32(uint32(len(data)))
		w.Uint32(0) // UNSTABLE
		w.Opaque(data)
		rep = rc.call(100003, 3, 7, w.Bytes())
		if rep.Stat != oncrpc.Success || oncrpc.NewReader(rep.Results).Uint32() != 0 {
			b.Fatalf("WRITE: %+v", rep)
		}
		w = oncrpc.NewWriter(nil)
		w.Opaque(fh)
		w.Uint64(0)
		w.Uint32(0)
		rep = rc.call(100003, 3, 21, w.Bytes())
		if rep.Stat != oncrpc.Success || oncrpc.NewReader(rep.Results).Uint32() != 0 {
			b.Fatalf("COMMIT: %+v", rep)
		}
	}
}
