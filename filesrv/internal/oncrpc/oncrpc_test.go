package oncrpc

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"maps"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/goleak"

	"example.com/appliance/shared/netsrv"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// frag returns one fragment with its record mark.
func frag(last bool, p []byte) []byte {
	m := uint32(len(p))
	if last {
		m |= lastFragment
	}
	return append(binary.BigEndian.AppendUint32(nil, m), p...)
}

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

var recordTests = []struct {
	name string
	in   []byte
	max  int
	want [][]byte // records read before err
	err  error
}{
	{"one fragment", frag(true, []byte("abcd")), 0, [][]byte{[]byte("abcd")}, io.EOF},
	{"three fragments", cat(frag(false, []byte("ab")), frag(false, nil), frag(true, []byte("cdef"))), 0,
		[][]byte{[]byte("abcdef")}, io.EOF},
	{"two records", cat(frag(true, []byte("ab")), frag(true, []byte("cd"))), 0,
		[][]byte{[]byte("ab"), []byte("cd")}, io.EOF},
	{"empty record", frag(true, nil), 0, [][]byte{{}}, io.EOF},
	{"at the limit", frag(true, make([]byte, 8)), 8, [][]byte{make([]byte, 8)}, io.EOF},
	{"one fragment too large", frag(true, make([]byte, 9)), 8, nil, ErrRecordTooLarge},
	{"fragments add up too large", cat(frag(false, make([]byte, 5)), frag(true, make([]byte, 5))), 8, nil, ErrRecordTooLarge},
	{"huge mark", []byte{0xff, 0xff, 0xff, 0xff}, 1 << 20, nil, ErrRecordTooLarge},
	{"cut in the mark", []byte{0x80, 0}, 0, nil, io.ErrUnexpectedEOF},
	{"cut in the body", cat(frag(true, []byte("abcd")))[:6], 0, nil, io.ErrUnexpectedEOF},
	{"cut between fragments", frag(false, []byte("ab")), 0, nil, io.ErrUnexpectedEOF},
	{"nothing", nil, 0, nil, io.EOF},
}

func TestReadRecord(t *testing.T) {
	for _, tt := range recordTests {
		t.Run(tt.name, func(t *testing.T) {
			rr := NewRecordReader(bytes.NewReader(tt.in))
			started := 0
			rr.Started = func() { started++ }
			var got [][]byte
			var err error
			for {
				var rec []byte
				rec, err = rr.ReadRecord(nil, tt.max)
				if err != nil {
					break
				}
				got = append(got, rec)
			}
			if !errors.Is(err, tt.err) {
				t.Errorf("error %v, want %v", err, tt.err)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("%d records, want %d", len(got), len(tt.want))
			}
			for i := range got {
				if !bytes.Equal(got[i], tt.want[i]) {
					t.Errorf("record %d = %q, want %q", i, got[i], tt.want[i])
				}
			}
			if wantStarted := len(tt.want) + btoi(tt.err != io.EOF); started != wantStarted {
				t.Errorf("Started called %d times, want %d", started, wantStarted)
			}
		})
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

func FuzzRecord(f *testing.F) {
	for _, tt := range recordTests {
		f.Add(tt.in, tt.max)
	}
	f.Fuzz(func(t *testing.T, in []byte, max int) {
		if max > 1<<20 || max <= 0 {
			max = 1 << 20
		}
		rr := NewRecordReader(bytes.NewReader(in))
		total := 0
		for {
			rec, err := rr.ReadRecord(nil, max)
			if err != nil {
				return
			}
			if len(rec) > max {
				t.Fatalf("record of %d bytes over the limit %d", len(rec), max)
			}
			if total += len(rec); total > len(in) {
				t.Fatalf("read %d bytes of records from %d bytes", total, len(in))
			}
		}
	})
}

// Test programs: 7 v1 and v3; 9 v2.
const (
	testProg = 7
	procEcho = 1 // results: the args
	procCred = 2 // results: uid, gid, number of gids, or 0xffffffff for no AUTH_SYS
	procBad  = 3 // GARBAGE_ARGS
	procWait = 4 // waits until released
	procBoom = 5 // panics
	procCut  = 6 // truncates into the header
)

type testHandler struct {
	wait chan struct{} // procWait blocks until it is closed
	in   sync.WaitGroup
}

func (h *testHandler) ServeRPC(ctx context.Context, c *Call, reply *Writer) AcceptStat {
	switch c.Proc {
	case 0:
		return Success
	case procEcho:
		reply.Raw(c.Args)
		return Success
	case procCred:
		if c.Sys == nil {
			reply.Uint32(0xffffffff)
			return Success
		}
		reply.Uint32(c.Sys.UID)
		reply.Uint32(c.Sys.GID)
		reply.Uint32(uint32(len(c.Sys.GIDs)))
		return Success
	case procBad:
		reply.Uint32(1) // discarded
		return GarbageArgs
	case procWait:
		if h.wait == nil {
			return ProcUnavail
		}
		h.in.Done()
		select {
		case <-h.wait:
		case <-ctx.Done():
		}
		reply.Raw(c.Args)
		return Success
	case procBoom:
		panic("boom")
	case procCut:
		reply.Truncate(0)
		return Success
	}
	return ProcUnavail
}

func newTestServer(h Handler) *Server {
	s := &Server{}
	s.Register(testProg, 1, h)
	s.Register(testProg, 3, h)
	s.Register(9, 2, h)
	return s
}

var sysCred = SysCred(Cred{Stamp: 1, Machine: "laptop", UID: 1000, GID: 100, GIDs: []uint32{4, 24}})

func call(xid, prog, vers, proc uint32, cred OpaqueAuth, args ...uint32) []byte {
	w := NewWriter(nil)
	AppendCall(w, xid, prog, vers, proc, cred)
	for _, a := range args {
		w.Uint32(a)
	}
	return w.Bytes()
}

func words(v ...uint32) []byte {
	w := NewWriter(nil)
	for _, x := range v {
		w.Uint32(x)
	}
	return w.Bytes()
}

// accepted is the reply header of an accepted call, then rest.
func accepted(xid uint32, stat AcceptStat, rest ...uint32) []byte {
	return append(words(xid, 1, 0, 0, 0, uint32(stat)), words(rest...)...)
}

func denied(xid uint32, rest ...uint32) []byte {
	return append(words(xid, 1, 1), words(rest...)...)
}

// patch returns b with the word at index i replaced.
func patch(b []byte, i int, v uint32) []byte {
	b = bytes.Clone(b)
	binary.BigEndian.PutUint32(b[4*i:], v)
	return b
}

var badSys = func() OpaqueAuth {
	c := SysCred(Cred{Machine: "x", UID: 1})
	c.Body = append(c.Body, 0, 0, 0, 0) // trailing bytes
	return c
}()

var tooManyGIDs = SysCred(Cred{Machine: "x", GIDs: make([]uint32, 17)})

var dispatchTests = []struct {
	name string
	in   []byte
	want []byte // nil: no reply
}{
	{"null", call(1, testProg, 1, 0, OpaqueAuth{}), accepted(1, Success)},
	{"echo", call(2, testProg, 3, procEcho, OpaqueAuth{}, 5, 6), accepted(2, Success, 5, 6)},
	{"auth none", call(3, testProg, 1, procCred, OpaqueAuth{}), accepted(3, Success, 0xffffffff)},
	{"auth sys", call(4, testProg, 1, procCred, sysCred), accepted(4, Success, 1000, 100, 2)},
	{"rpc version 3", patch(call(5, testProg, 1, 0, OpaqueAuth{}), 2, 3), denied(5, 0, 2, 2)},
	{"rpc version 1", patch(call(5, testProg, 1, 0, OpaqueAuth{}), 2, 1), denied(5, 0, 2, 2)},
	{"bad auth sys", call(6, testProg, 1, 0, badSys), denied(6, 1, uint32(AuthBadCred))},
	{"17 gids", call(6, testProg, 1, 0, tooManyGIDs), denied(6, 1, uint32(AuthBadCred))},
	{"rpcsec_gss", call(7, testProg, 1, 0, OpaqueAuth{Flavor: 6, Body: []byte{0, 0, 0, 1}}), denied(7, 1, uint32(AuthTooWeak))},
	{"auth dh", call(7, testProg, 1, 0, OpaqueAuth{Flavor: 3}), denied(7, 1, uint32(AuthTooWeak))},
	{"credential too long", call(8, testProg, 1, 0, OpaqueAuth{Flavor: 1, Body: make([]byte, 404)}), denied(8, 1, uint32(AuthBadCred))},
	{"credential cut short", call(8, testProg, 1, 0, sysCred)[:30], denied(8, 1, uint32(AuthBadCred))},
	{"verifier not none", patch(call(9, testProg, 1, 0, OpaqueAuth{}), 8, 1), denied(9, 1, uint32(AuthBadVerf))},
	{"verifier cut short", call(9, testProg, 1, 0, OpaqueAuth{})[:36], denied(9, 1, uint32(AuthBadVerf))},
	{"unknown program", call(10, 8, 1, 0, OpaqueAuth{}), accepted(10, ProgUnavail)},
	{"unknown version", call(11, testProg, 2, 0, OpaqueAuth{}), accepted(11, ProgMismatch, 1, 3)},
	{"unknown version, one served", call(11, 9, 4, 0, OpaqueAuth{}), accepted(11, ProgMismatch, 2, 2)},
	{"unknown procedure", call(12, testProg, 1, 99, OpaqueAuth{}), accepted(12, ProcUnavail)},
	{"garbage args", call(13, testProg, 1, procBad, OpaqueAuth{}), accepted(13, GarbageArgs)},
	{"handler panics", call(14, testProg, 1, procBoom, OpaqueAuth{}), accepted(14, SystemErr)},
	{"handler cuts the header", call(15, testProg, 1, procCut, OpaqueAuth{}), accepted(15, SystemErr)},
	{"header cut after rpc version", call(16, testProg, 1, 0, OpaqueAuth{})[:16], accepted(16, GarbageArgs)},
	{"header cut before rpc version", call(16, testProg, 1, 0, OpaqueAuth{})[:8], accepted(16, GarbageArgs)},
	{"a reply", accepted(17, Success), nil},
	{"only an xid", words(18), nil},
	{"empty", nil, nil},
}

func TestDispatch(t *testing.T) {
	s := newTestServer(&testHandler{})
	for _, tt := range dispatchTests {
		t.Run(tt.name, func(t *testing.T) {
			w := NewWriter(nil)
			ok := s.Dispatch(context.Background(), tt.in, netip.AddrPort{}, w)
			if ok != (tt.want != nil) {
				t.Fatalf("Dispatch = %v, want %v", ok, tt.want != nil)
			}
			if ok && !bytes.Equal(w.Bytes(), tt.want) {
				t.Errorf("reply\n%x\nwant\n%x", w.Bytes(), tt.want)
			}
		})
	}
}

func TestParseCallSys(t *testing.T) {
	var c Call
	if err := ParseCall(call(1, 2, 3, 4, sysCred, 42), &c); err != nil {
		t.Fatal(err)
	}
	want := Cred{Stamp: 1, Machine: "laptop", UID: 1000, GID: 100, GIDs: []uint32{4, 24}}
	if c.Sys == nil || c.Sys.Machine != want.Machine || c.Sys.UID != want.UID || c.Sys.GID != want.GID ||
		len(c.Sys.GIDs) != 2 || c.Sys.GIDs[1] != 24 || c.Sys.Stamp != 1 {
		t.Errorf("Sys = %+v, want %+v", c.Sys, want)
	}
	if c.XID != 1 || c.Prog != 2 || c.Vers != 3 || c.Proc != 4 || !bytes.Equal(c.Args, words(42)) {
		t.Errorf("call = %+v", c)
	}
	if len(c.Record) != len(call(1, 2, 3, 4, sysCred, 42)) {
		t.Errorf("Record has %d bytes", len(c.Record))
	}
}

func FuzzCall(f *testing.F) {
	for _, tt := range dispatchTests {
		f.Add(tt.in)
	}
	s := newTestServer(&testHandler{})
	f.Fuzz(func(t *testing.T, in []byte) {
		w := NewWriter(nil)
		if !s.Dispatch(context.Background(), in, netip.AddrPort{}, w) {
			return
		}
		rep, err := ParseReply(w.Bytes())
		if err != nil {
			t.Fatalf("reply %x does not parse: %v", w.Bytes(), err)
		}
		if rep.XID != binary.BigEndian.Uint32(in) {
			t.Fatalf("reply xid %d, call xid %d", rep.XID, binary.BigEndian.Uint32(in))
		}
	})
}

// serve runs s on a loopback TCP listener with limits and returns its address.
func serve(t *testing.T, s *Server, lim netsrv.Limits) (*netsrv.Server, string) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ns := &netsrv.Server{Handler: s}
	ns.SetLimits(lim)
	done := make(chan error, 1)
	go func() { done <- ns.Serve(l) }()
	t.Cleanup(func() {
		ns.Close()
		if err := <-done; !errors.Is(err, netsrv.ErrServerClosed) {
			t.Errorf("Serve: %v", err)
		}
	})
	return ns, l.Addr().String()
}

func dial(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	t.Cleanup(func() { c.Close() })
	return c
}

// readReply reads one reply; only for a connection that has no more
// replies coming right after it (the reader buffers).
func readReply(t *testing.T, c net.Conn) Reply {
	t.Helper()
	msg, err := NewRecordReader(c).ReadRecord(nil, 1<<20)
	if err != nil {
		t.Fatalf("read reply: %v", err)
	}
	rep, err := ParseReply(msg)
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

// TestServeConnConcurrent sends calls that each wait for the others: they
// finish only if the connection serves them at the same time.
func TestServeConnConcurrent(t *testing.T) {
	const n = 8
	h := &testHandler{wait: make(chan struct{})}
	h.in.Add(n)
	_, addr := serve(t, newTestServer(h), netsrv.Limits{})
	c := dial(t, addr)
	var out []byte
	for i := range n {
		out = append(out, frag(true, call(uint32(100+i), testProg, 1, procWait, OpaqueAuth{}, uint32(i)))...)
	}
	if _, err := c.Write(out); err != nil {
		t.Fatal(err)
	}
	h.in.Wait() // all n are in the handler at once
	close(h.wait)
	rr := NewRecordReader(c)
	seen := map[uint32]bool{}
	for range n {
		msg, err := rr.ReadRecord(nil, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		rep, err := ParseReply(msg)
		if err != nil || rep.Stat != Success || !bytes.Equal(rep.Results, words(rep.XID-100)) {
			t.Fatalf("reply %+v, %v", rep, err)
		}
		seen[rep.XID] = true
	}
	if len(seen) != n {
		t.Errorf("%d distinct replies, want %d", len(seen), n)
	}
}

func TestServeConnBounded(t *testing.T) {
	h := &testHandler{wait: make(chan struct{})}
	s := newTestServer(h)
	s.MaxInFlight = 2
	h.in.Add(2)
	_, addr := serve(t, s, netsrv.Limits{})
	c := dial(t, addr)
	for i := range 3 {
		if _, err := c.Write(frag(true, call(uint32(i), testProg, 1, procWait, OpaqueAuth{}))); err != nil {
			t.Fatal(err)
		}
	}
	h.in.Wait()
	// The third call is not read while two run; once released, all three answer.
	h.in.Add(1)
	close(h.wait)
	rr := NewRecordReader(c)
	for range 3 {
		msg, err := rr.ReadRecord(nil, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		if rep, err := ParseReply(msg); err != nil || rep.Stat != Success {
			t.Fatalf("reply %+v, %v", rep, err)
		}
	}
}

func TestServeConnFragmented(t *testing.T) {
	_, addr := serve(t, newTestServer(&testHandler{}), netsrv.Limits{})
	c := dial(t, addr)
	msg := call(7, testProg, 1, procEcho, OpaqueAuth{}, 1, 2, 3)
	if _, err := c.Write(cat(frag(false, msg[:5]), frag(false, msg[5:20]), frag(true, msg[20:]))); err != nil {
		t.Fatal(err)
	}
	rep := readReply(t, c)
	if rep.XID != 7 || rep.Stat != Success || !bytes.Equal(rep.Results, words(1, 2, 3)) {
		t.Errorf("reply %+v", rep)
	}
}

// TestServeConnCloses checks that input the server cannot answer ends the
// connection cleanly, after the replies to the calls before it.
func TestServeConnCloses(t *testing.T) {
	tests := []struct {
		name string
		in   []byte
	}{
		{"oversized fragment", frag(true, make([]byte, 2000))},
		{"oversized record", cat(frag(false, make([]byte, 600)), frag(false, make([]byte, 600)))},
		{"huge record mark", []byte{0x7f, 0xff, 0xff, 0xff}},
		{"not a call", frag(true, accepted(1, Success))},
		{"too short for an xid", frag(true, []byte{1, 2})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, addr := serve(t, newTestServer(&testHandler{}), netsrv.Limits{MaxMessageBytes: 1024})
			c := dial(t, addr)
			if _, err := c.Write(cat(frag(true, call(1, testProg, 1, 0, OpaqueAuth{})), tt.in)); err != nil {
				t.Fatal(err)
			}
			if rep := readReply(t, c); rep.XID != 1 || rep.Stat != Success {
				t.Errorf("reply to the call before: %+v", rep)
			}
			if n, err := c.Read(make([]byte, 10)); err == nil {
				t.Errorf("read %d bytes, want the connection closed", n)
			} else if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) && !isReset(err) {
				t.Errorf("read: %v, want EOF or reset", err)
			}
		})
	}
}

func isReset(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && !op.Timeout()
}

func TestServePacket(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ns := &netsrv.Server{PacketHandler: newTestServer(&testHandler{})}
	done := make(chan error, 1)
	go func() { done <- ns.ServePacket(pc) }()
	defer func() {
		ns.Close()
		<-done
	}()
	c, err := net.Dial("udp", pc.LocalAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	for _, tt := range dispatchTests {
		if tt.want == nil || tt.name == "handler panics" {
			continue
		}
		t.Run(tt.name, func(t *testing.T) {
			if _, err := c.Write(tt.in); err != nil {
				t.Fatal(err)
			}
			buf := make([]byte, 65536)
			n, err := c.Read(buf)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(buf[:n], tt.want) {
				t.Errorf("reply\n%x\nwant\n%x", buf[:n], tt.want)
			}
		})
	}
}

// TestShutdownWaitsForCalls checks that a drain lets a call in flight
// answer before the connection closes.
func TestShutdownWaitsForCalls(t *testing.T) {
	h := &testHandler{wait: make(chan struct{})}
	h.in.Add(1)
	ns, addr := serve(t, newTestServer(h), netsrv.Limits{})
	c := dial(t, addr)
	if _, err := c.Write(frag(true, call(5, testProg, 1, procWait, OpaqueAuth{}, 9))); err != nil {
		t.Fatal(err)
	}
	h.in.Wait()
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		done <- ns.Shutdown(ctx)
	}()
	close(h.wait)
	if rep := readReply(t, c); rep.XID != 5 || !bytes.Equal(rep.Results, words(9)) {
		t.Errorf("reply %+v", rep)
	}
	if err := <-done; err != nil {
		t.Errorf("Shutdown: %v", err)
	}
}

func TestMetrics(t *testing.T) {
	s := newTestServer(&testHandler{})
	reg := prometheus.NewRegistry()
	s.Metrics = NewMetrics(reg, "test")
	for _, tt := range dispatchTests {
		s.Dispatch(context.Background(), tt.in, netip.AddrPort{}, NewWriter(nil))
	}
	for _, tt := range []struct {
		labels []string
		want   float64
	}{
		{[]string{"7", "1", "0", "success"}, 1},
		{[]string{"7", "1", "2", "success"}, 2},
		{[]string{"7", "1", "other", "proc_unavail"}, 1},
		{[]string{"7", "1", "5", "system_err"}, 1},
		{[]string{"other", "other", "other", "prog_unavail"}, 1},
		{[]string{"other", "other", "other", "prog_mismatch"}, 2},
		{[]string{"other", "other", "other", "denied"}, 10},
	} {
		if got := testutil.ToFloat64(s.Metrics.calls.WithLabelValues(tt.labels...)); got != tt.want {
			t.Errorf("rpc_calls_total%q = %v, want %v", tt.labels, got, tt.want)
		}
	}
	// Each call of a procedure served is timed once, whatever its
	// status; calls counted as procedure "other" are not.
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	timed, want := map[string]uint64{}, map[string]uint64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			var labels []string
			other := false
			for _, l := range m.GetLabel() {
				if l.GetName() == "status" {
					continue
				}
				labels = append(labels, l.GetName()+"="+l.GetValue())
				other = other || l.GetName() == "procedure" && l.GetValue() == "other"
			}
			key := strings.Join(labels, ",")
			switch mf.GetName() {
			case "test_rpc_call_duration_seconds":
				timed[key] = m.GetHistogram().GetSampleCount()
			case "test_rpc_calls_total":
				if !other {
					want[key] += uint64(m.GetCounter().GetValue())
				}
			}
		}
	}
	if len(want) < 3 || !maps.Equal(timed, want) {
		t.Errorf("rpc_call_duration_seconds sample counts %v, want %v", timed, want)
	}
}
