package oncrpc

import (
	"bytes"
	"context"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"example.com/appliance/shared/netsrv"
)

// spliceHandler answers procedure 1 (args: offset, count) with the count
// read, then the data as an XDR opaque spliced from file, and says on
// spliced whether it was. Procedure 2 splices, then fails with
// GARBAGE_ARGS; procedure 3 splices, then panics.
type spliceHandler struct {
	file    *os.File
	spliced chan bool
}

func (h *spliceHandler) ServeRPC(ctx context.Context, c *Call, w *Writer) AcceptStat {
	r := NewReader(c.Args)
	off, n := r.Uint32(), r.Uint32()
	countAt := w.Len()
	w.Uint32(0)
	w.Uint32(0) // the opaque's length
	got, ok, err := w.SpliceFrom(h.file, int64(off), int(n))
	h.spliced <- ok
	if !ok {
		got, err = h.file.ReadAt(w.Extend(int(n)), int64(off))
		w.Truncate(countAt + 8 + got)
		w.Raw(make([]byte, pad(got)))
	}
	if err != nil && got == 0 {
		return SystemErr
	}
	b := w.Bytes()
	b[countAt+3], b[countAt+2], b[countAt+1] = byte(got), byte(got>>8), byte(got>>16)
	copy(b[countAt+4:], b[countAt:countAt+4])
	switch c.Proc {
	case 2:
		return GarbageArgs
	case 3:
		panic("after splicing")
	}
	return Success
}

// TestSpliceFrom reads a file through spliced replies over TCP: whatever
// the offset and length (unaligned, past the end, more than a pipe's
// pages), the reply holds the file's bytes and its padding and the
// connection stays in step; a reply that fails after splicing sends no
// data.
func TestSpliceFrom(t *testing.T) {
	const size = 3<<20 + 5
	data := make([]byte, size)
	rng := rand.NewChaCha8([32]byte{'s', 'p', 'l', 'i', 'c', 'e'})
	rng.Read(data)
	name := filepath.Join(t.TempDir(), "data")
	if err := os.WriteFile(name, data, 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := &spliceHandler{file: f, spliced: make(chan bool, 1)}
	s := &Server{}
	s.Register(testProg, 1, h)
	_, addr := serve(t, s, netsrv.Limits{})
	c := dial(t, addr)
	rr := NewRecordReader(c)
	tests := []struct {
		name      string
		proc      uint32
		off, n    uint32
		want      []byte // results; nil: only the status matters
		wantStat  AcceptStat
		mayBeLess bool // a pipe holds whole pages: an unaligned 1 MiB may come short
	}{
		{"first MiB", 1, 0, 1 << 20, nil, Success, false},
		{"unaligned", 1, 1, 1<<20 - 1, nil, Success, true},
		{"length not a multiple of 4", 1, 4095, 65536 + 3, nil, Success, false},
		{"across the end", 1, size - 100, 1 << 20, nil, Success, false},
		{"at the end", 1, size, 1 << 20, nil, Success, false},
		{"past the end", 1, size + 10, 65536, nil, Success, false},
		{"fails after splicing", 2, 0, 1 << 20, []byte{}, GarbageArgs, false},
		{"panics after splicing", 3, 0, 1 << 20, []byte{}, SystemErr, false},
		{"then one more", 1, 8, 70000, nil, Success, false},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			xid := uint32(100 + i)
			if _, err := c.Write(frag(true, call(xid, testProg, 1, tt.proc, OpaqueAuth{}, tt.off, tt.n))); err != nil {
				t.Fatal(err)
			}
			if ok := <-h.spliced; !ok && tt.off < size {
				t.Errorf("not spliced")
			}
			msg, err := rr.ReadRecord(nil, 2<<20)
			if err != nil {
				t.Fatal(err)
			}
			rep, err := ParseReply(msg)
			if err != nil || rep.XID != xid || rep.Stat != tt.wantStat {
				t.Fatalf("reply %+v, %v; want xid %d, status %v", rep, err, xid, tt.wantStat)
			}
			if tt.want != nil {
				if !bytes.Equal(rep.Results, tt.want) {
					t.Errorf("results %d bytes, want %d", len(rep.Results), len(tt.want))
				}
				return
			}
			r := NewReader(rep.Results)
			count := r.Uint32()
			got := r.Opaque(2 << 20)
			if r.Err() != nil || r.Len() != 0 || uint32(len(got)) != count {
				t.Fatalf("results: count %d, data %d bytes, %d left over, %v", count, len(got), r.Len(), r.Err())
			}
			end := min(uint64(tt.off)+uint64(tt.n), size)
			var want []byte
			if uint64(tt.off) < end {
				want = data[tt.off:end]
			}
			if tt.mayBeLess && len(got) > 0 && len(got) < len(want) {
				want = want[:len(got)]
			}
			if !bytes.Equal(got, want) {
				t.Errorf("read %d bytes at %d: got %d bytes, want %d (equal prefix: %v)",
					tt.n, tt.off, len(got), len(want), bytes.HasPrefix(want, got))
			}
		})
	}
}

// TestSpliceFromPipelined sends many spliced reads on one connection at
// once, so that their replies are written concurrently: each must come
// whole, its data right behind its own header.
func TestSpliceFromPipelined(t *testing.T) {
	const size, n, calls = 2 << 20, 100_003, 24
	data := make([]byte, size)
	rng := rand.NewChaCha8([32]byte{'p', 'i', 'p', 'e'})
	rng.Read(data)
	name := filepath.Join(t.TempDir(), "data")
	if err := os.WriteFile(name, data, 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := &spliceHandler{file: f, spliced: make(chan bool, calls)}
	s := &Server{}
	s.Register(testProg, 1, h)
	_, addr := serve(t, s, netsrv.Limits{})
	c := dial(t, addr)
	var out []byte
	for i := range calls {
		out = append(out, frag(true, call(uint32(i), testProg, 1, 1, OpaqueAuth{}, uint32(i*77_777), n))...)
	}
	if _, err := c.Write(out); err != nil {
		t.Fatal(err)
	}
	rr := NewRecordReader(c)
	seen := map[uint32]bool{}
	for range calls {
		msg, err := rr.ReadRecord(nil, 2<<20)
		if err != nil {
			t.Fatal(err)
		}
		rep, err := ParseReply(msg)
		if err != nil || rep.Stat != Success || rep.XID >= calls || seen[rep.XID] {
			t.Fatalf("reply %+v, %v", rep, err)
		}
		seen[rep.XID] = true
		r := NewReader(rep.Results)
		r.Uint32()
		got := r.Opaque(2 << 20)
		off := int(rep.XID) * 77_777
		if r.Err() != nil || r.Len() != 0 || !bytes.Equal(got, data[off:off+n]) {
			t.Fatalf("call %d: %d bytes, %d left over, %v; not the file's bytes at %d", rep.XID, len(got), r.Len(), r.Err(), off)
		}
	}
	for range calls {
		if !<-h.spliced {
			t.Error("a read was not spliced")
		}
	}
}
