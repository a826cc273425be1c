package portmap

import (
	"bytes"
	"context"
	"testing"

	"go.uber.org/goleak"

	"example.com/appliance/filesrv/internal/oncrpc"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func words(v ...uint32) []byte {
	w := oncrpc.NewWriter(nil)
	for _, x := range v {
		w.Uint32(x)
	}
	return w.Bytes()
}

// serveRPCTests are the table of TestServeRPC, also FuzzServeRPC's seeds.
var serveRPCTests = []struct {
	name string
	proc uint32
	args []byte
	stat oncrpc.AcceptStat
	want []byte
}{
	{"null", procNull, nil, oncrpc.Success, nil},
	{"getport nfs", procGetport, words(100003, 3, TCP, 0), oncrpc.Success, words(2049)},
	{"getport mount", procGetport, words(100005, 3, TCP, 0), oncrpc.Success, words(2049)},
	{"getport nfs over udp", procGetport, words(100003, 3, UDP, 0), oncrpc.Success, words(0)},
	{"getport nfs v4", procGetport, words(100003, 4, TCP, 0), oncrpc.Success, words(0)},
	{"getport self", procGetport, words(Program, Version, UDP, 0), oncrpc.Success, words(111)},
	{"getport short", procGetport, words(100003, 3), oncrpc.GarbageArgs, nil},
	{"set refused", procSet, words(100021, 4, TCP, 4045), oncrpc.Success, words(0)},
	{"unset refused", procUnset, words(100003, 3, TCP, 2049), oncrpc.Success, words(0)},
	{"set short", procSet, nil, oncrpc.GarbageArgs, nil},
	{"dump", procDump, nil, oncrpc.Success, words(1, 100003, 3, TCP, 2049, 1, 100005, 3, TCP, 2049, 1, Program, Version, UDP, 111, 0)},
	{"callit", procCallit, words(100003, 3, 0, 0), oncrpc.ProcUnavail, nil},
	{"unknown", 9, nil, oncrpc.ProcUnavail, nil},
}

func newTestServer() *Server {
	return New([]Mapping{{100003, 3, TCP, 2049}, {100005, 3, TCP, 2049}, {Program, Version, UDP, 111}})
}

func TestServeRPC(t *testing.T) {
	s := newTestServer()
	for _, tt := range serveRPCTests {
		t.Run(tt.name, func(t *testing.T) {
			w := oncrpc.NewWriter(nil)
			stat := s.ServeRPC(context.Background(), &oncrpc.Call{Prog: Program, Vers: Version, Proc: tt.proc, Args: tt.args}, w)
			if stat != tt.stat {
				t.Fatalf("stat %d, want %d", stat, tt.stat)
			}
			if stat == oncrpc.Success && !bytes.Equal(w.Bytes(), tt.want) {
				t.Errorf("results %x, want %x", w.Bytes(), tt.want)
			}
		})
	}
}

func TestSet(t *testing.T) {
	s := New(nil)
	if p := s.Port(100003, 3, TCP); p != 0 {
		t.Errorf("port %d before Set", p)
	}
	s.Set([]Mapping{{100003, 3, TCP, 12049}})
	if p := s.Port(100003, 3, TCP); p != 12049 {
		t.Errorf("port %d after Set, want 12049", p)
	}
}

// FuzzServeRPC sends arbitrary arguments to every procedure: the portmapper
// answers or reports GARBAGE_ARGS, and never panics.
func FuzzServeRPC(f *testing.F) {
	for _, tt := range serveRPCTests {
		f.Add(tt.proc, tt.args)
	}
	s := newTestServer()
	f.Fuzz(func(t *testing.T, proc uint32, args []byte) {
		w := oncrpc.NewWriter(nil)
		stat := s.ServeRPC(context.Background(), &oncrpc.Call{Prog: Program, Vers: Version, Proc: proc % 8, Args: args}, w)
		if stat != oncrpc.Success && w.Len() != 0 {
			t.Errorf("accept status %d with results %x", stat, w.Bytes())
		}
	})
}
