package oncrpc

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"

	"example.com/appliance/shared/netsrv"
)

// gateHandler holds each call in ServeRPC until the gate of its XID is
// opened, and tells started when a call has come in.
type gateHandler struct {
	started chan uint32
	gates   map[uint32]chan struct{}
}

func (h *gateHandler) ServeRPC(ctx context.Context, c *Call, reply *Writer) AcceptStat {
	h.started <- c.XID
	select {
	case <-h.gates[c.XID]:
	case <-ctx.Done():
	}
	reply.Uint32(c.XID)
	return Success
}

// TestServeConnRepliesAsFinished sends several calls on one connection and
// lets them finish one at a time in a given order: each reply must come
// while the calls sent before it are still held in the handler. A server
// that served one call of a connection at a time, or that wrote replies
// in the order of the calls, would not answer the first call released.
// Calls sent apart (each once the one before is in the handler) test a
// call served alone: the connection is read on while it is held.
func TestServeConnRepliesAsFinished(t *testing.T) {
	tests := []struct {
		name    string
		release []uint32 // XIDs 1..n, in the order their calls may finish
		apart   bool
	}{
		{"second before first", []uint32{2, 1}, false},
		{"in order", []uint32{1, 2, 3}, false},
		{"reverse", []uint32{4, 3, 2, 1}, false},
		{"middle first", []uint32{2, 3, 1}, false},
		{"sent apart, second before first", []uint32{2, 1}, true},
		{"sent apart, reverse", []uint32{3, 2, 1}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := len(tt.release)
			h := &gateHandler{started: make(chan uint32, n), gates: make(map[uint32]chan struct{})}
			for xid := 1; xid <= n; xid++ {
				h.gates[uint32(xid)] = make(chan struct{})
			}
			released := map[uint32]bool{}
			release := func(xid uint32) {
				close(h.gates[xid])
				released[xid] = true
			}
			// On failure, open the gates left closed so no call stays held.
			t.Cleanup(func() {
				for xid := range h.gates {
					if !released[xid] {
						release(xid)
					}
				}
			})
			s := &Server{}
			s.Register(testProg, 1, h)
			_, addr := serve(t, s, netsrv.Limits{})
			c := dial(t, addr)

			var out []byte
			for xid := 1; xid <= n; xid++ {
				out = append(out, frag(true, call(uint32(xid), testProg, 1, 1, OpaqueAuth{}))...)
			}
			// All n calls of the connection are in the handler at once.
			// (The timer only bounds a server that never starts them all.)
			in := map[uint32]bool{}
			timeout := time.After(10 * time.Second)
			if !tt.apart {
				if _, err := c.Write(out); err != nil {
					t.Fatal(err)
				}
			}
			for i := range n {
				if tt.apart {
					if _, err := c.Write(out[i*len(out)/n : (i+1)*len(out)/n]); err != nil {
						t.Fatal(err)
					}
				}
				select {
				case xid := <-h.started:
					in[xid] = true
				case <-timeout:
					t.Fatalf("after 10s only calls %v are in the handler, of XIDs 1 to %d", in, n)
				}
			}
			if len(in) != n {
				t.Fatalf("calls started: %v, want XIDs 1 to %d", in, n)
			}

			rr := NewRecordReader(c)
			for i, xid := range tt.release {
				release(xid)
				msg, err := rr.ReadRecord(nil, 1<<20)
				if err != nil {
					t.Fatalf("reply %d: %v", i+1, err)
				}
				rep, err := ParseReply(msg)
				if err != nil {
					t.Fatal(err)
				}
				want := fmt.Sprintf("xid %d, success, results %x", xid, words(xid))
				if got := fmt.Sprintf("xid %d, %s, results %x", rep.XID, statusNames[rep.Stat], rep.Results); got != want {
					t.Fatalf("reply %d after releasing call %d (calls %v still held): %s, want %s",
						i+1, xid, tt.release[i+1:], got, want)
				}
			}
		})
	}
}

// quickGate is a gateHandler whose procedure 2 is quick.
type quickGate struct {
	*gateHandler
}

func (h *quickGate) Quick(proc uint32) bool { return proc == 2 }

func (h *quickGate) ServeRPC(ctx context.Context, c *Call, reply *Writer) AcceptStat {
	if c.Proc == 2 {
		reply.Uint32(c.XID)
		return Success
	}
	return h.gateHandler.ServeRPC(ctx, c, reply)
}

// TestQuickCalls checks that quick calls are answered, one after another
// and while a slow call of the connection is held.
func TestQuickCalls(t *testing.T) {
	h := &quickGate{gateHandler: &gateHandler{started: make(chan uint32, 1),
		gates: map[uint32]chan struct{}{1: make(chan struct{})}}}
	defer close(h.gates[1])
	s := &Server{}
	s.Register(testProg, 1, h)
	_, addr := serve(t, s, netsrv.Limits{})
	c := dial(t, addr)
	for xid := uint32(10); xid < 13; xid++ {
		if _, err := c.Write(frag(true, call(xid, testProg, 1, 2, OpaqueAuth{}))); err != nil {
			t.Fatal(err)
		}
		if rep := readReply(t, c); rep.XID != xid || rep.Stat != Success {
			t.Fatalf("quick call %d: %+v", xid, rep)
		}
	}
	if _, err := c.Write(frag(true, call(1, testProg, 1, 1, OpaqueAuth{}))); err != nil {
		t.Fatal(err)
	}
	select {
	case <-h.started:
	case <-time.After(10 * time.Second):
		t.Fatal("slow call never started")
	}
	if _, err := c.Write(frag(true, call(20, testProg, 1, 2, OpaqueAuth{}))); err != nil {
		t.Fatal(err)
	}
	if rep := readReply(t, c); rep.XID != 20 || rep.Stat != Success {
		t.Fatalf("quick call beside a held one: %+v", rep)
	}
}

// burstHandler holds each call until the gate of the current burst is
// opened, and tells started when a call has come in.
type burstHandler struct {
	started chan struct{}
	mu      sync.Mutex
	gate    chan struct{}
}

func (h *burstHandler) ServeRPC(ctx context.Context, c *Call, reply *Writer) AcceptStat {
	h.mu.Lock()
	gate := h.gate
	h.mu.Unlock()
	h.started <- struct{}{}
	select {
	case <-gate:
	case <-ctx.Done():
	}
	reply.Uint32(c.XID)
	return Success
}

// TestServeConnReusesGoroutines sends bursts of calls that each fill
// MaxInFlight: the goroutine that read a call serves it and another
// reads on, so a connection needs at most MaxInFlight+1 goroutines, and
// the idle ones serve the next burst instead of new ones starting.
func TestServeConnReusesGoroutines(t *testing.T) {
	const n = 3
	h := &burstHandler{started: make(chan struct{}, n)}
	s := &Server{MaxInFlight: n}
	s.Register(testProg, 1, h)
	_, addr := serve(t, s, netsrv.Limits{})
	c := dial(t, addr)
	rr := NewRecordReader(c)
	var base int
	for burst := range 4 {
		gate := make(chan struct{})
		h.mu.Lock()
		h.gate = gate
		h.mu.Unlock()
		var out []byte
		for i := range n {
			out = append(out, frag(true, call(uint32(burst*n+i), testProg, 1, 1, OpaqueAuth{}))...)
		}
		if _, err := c.Write(out); err != nil {
			t.Fatal(err)
		}
		for i := range n {
			select {
			case <-h.started:
			case <-time.After(10 * time.Second):
				t.Fatalf("burst %d: after 10s only %d of %d calls are in the handler", burst, i, n)
			}
		}
		// n serving and one waiting to read: after the first burst, the
		// same goroutines.
		if g := runtime.NumGoroutine(); burst == 0 {
			base = g
		} else if g > base {
			t.Errorf("burst %d: %d goroutines, %d in the first burst", burst, g, base)
		}
		close(gate)
		for i := range n {
			if _, err := rr.ReadRecord(nil, 1<<20); err != nil {
				t.Fatalf("burst %d, reply %d: %v", burst, i, err)
			}
		}
	}
}
