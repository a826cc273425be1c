package server_test

import (
	"bytes"
	"testing"
)

// TestAttrsAgree checks that every procedure reports the same attributes
// for the export root, whether nfs3 serves it or go-nfs does behind it: a
// different fsid makes the Linux client answer ESTALE for its mount, a
// different ctime throws its caches away.
func TestAttrsAgree(t *testing.T) {
	ts := startService(t)
	rc := dialRPC(t, ts.NFS)
	root := rc.mount("/export")
	attrs := func(name string, proc uint32, extra []byte) []byte {
		t.Helper()
		w := newWriter()
		w.Opaque(root)
		w.Raw(extra)
		rep := rc.call(100003, 3, proc, w.Bytes())
		r := rep.Results
		off := 8 // status, attributes_follow
		if proc == 1 {
			off = 4 // GETATTR: status, fattr3
		}
		if rep.Stat != 0 || len(r) < off+84 || be32(r) != 0 || (off == 8 && be32(r[4:]) != 1) {
			t.Fatalf("%s: %+v", name, rep)
		}
		return r[off : off+84]
	}
	want := attrs("GETATTR", 1, nil)
	for _, p := range []struct {
		name  string
		proc  uint32
		extra []byte
	}{
		{"ACCESS", 4, words(0x3f)},
		{"FSSTAT", 18, nil},
		{"FSINFO", 19, nil},
		{"PATHCONF", 20, nil},
		{"READDIRPLUS", 17, words(0, 0, 0, 0, 4096, 32768)},
	} {
		if got := attrs(p.name, p.proc, p.extra); !bytes.Equal(got, want) {
			t.Errorf("%s attributes\n%x\nGETATTR's\n%x", p.name, got, want)
		}
	}
}
