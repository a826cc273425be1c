package mountd

import (
	"context"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"example.com/appliance/filesrv/internal/export"
	"example.com/appliance/filesrv/internal/handles"
	"example.com/appliance/filesrv/internal/oncrpc"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

var (
	lan      = netip.MustParseAddrPort("192.168.1.20:700")
	lanPeer  = netip.MustParseAddrPort("192.168.1.21:701")
	mappedV6 = netip.MustParseAddrPort("[::ffff:192.168.1.20]:702")
	stranger = netip.MustParseAddrPort("10.9.9.9:703")
)

// fixture is a server with exports /exp (for 192.168.1.0/24 and ::1),
// /exp/inner (a nested export for 192.168.1.21 only) and /locked (nobody).
type fixture struct {
	srv   *Server
	store *handles.Store
	exp   *export.Export
	inner *export.Export
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	base := t.TempDir()
	dir := filepath.Join(base, "exp")
	for _, d := range []string{"sub/deeper", "inner/x", "real"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "file"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	for link, target := range map[string]string{
		"link":     "sub",
		"linklink": "link",
		"loop":     "loop",
		"up":       "../..",
		"abs":      "/",
		"tofile":   "file",
	} {
		if err := os.Symlink(target, filepath.Join(dir, link)); err != nil {
			t.Fatal(err)
		}
	}
	mk := func(p, d string, clients ...string) *export.Export {
		r, err := os.OpenRoot(d)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { r.Close() })
		e := &export.Export{Path: p, Dir: d, Root: r, ID: export.IDFor(p)}
		for _, c := range clients {
			e.Clients = append(e.Clients, netip.MustParsePrefix(c))
		}
		return e
	}
	exp := mk("/exp", dir, "192.168.1.0/24", "::1/128")
	inner := mk("/exp/inner", filepath.Join(dir, "inner"), "192.168.1.21/32")
	locked := mk("/locked", filepath.Join(dir, "real"))
	exps := []*export.Export{exp, inner, locked}
	store, err := handles.Open(t.TempDir(), exps, handles.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	srv := New(Config{Exports: exps, Handles: store, Logger: slog.New(slog.DiscardHandler)})
	return &fixture{srv: srv, store: store, exp: exp, inner: inner}
}

func pathArgs(p string) []byte {
	w := oncrpc.NewWriter(nil)
	w.String(p)
	return w.Bytes()
}

func (f *fixture) call(proc uint32, args []byte, remote netip.AddrPort) (oncrpc.AcceptStat, *oncrpc.Reader) {
	c := &oncrpc.Call{XID: 1, Prog: Program, Vers: Version, Proc: proc, Args: args, Remote: remote}
	w := oncrpc.NewWriter(nil)
	st := f.srv.ServeRPC(context.Background(), c, w)
	return st, oncrpc.NewReader(w.Bytes())
}

var mntTests = []struct {
	name    string
	args    []byte
	remote  netip.AddrPort
	want    Status
	export  string // export the handle belongs to
	resolve string // path the handle resolves to
}{
	{"export root", pathArgs("/exp"), lan, OK, "/exp", ""},
	{"double slash", pathArgs("//exp"), lan, OK, "/exp", ""},
	{"trailing slash", pathArgs("/exp/"), lan, OK, "/exp", ""},
	{"relative", pathArgs("exp"), lan, OK, "/exp", ""},
	{"subfolder", pathArgs("/exp/sub/deeper"), lan, OK, "/exp", "sub/deeper"},
	{"dot segments", pathArgs("/exp/./sub/../sub"), lan, OK, "/exp", "sub"},
	{"ipv4-mapped client", pathArgs("/exp/sub"), mappedV6, OK, "/exp", "sub"},
	{"symlink to folder", pathArgs("/exp/link"), lan, OK, "/exp", "sub"},
	{"symlink chain", pathArgs("/exp/linklink/deeper"), lan, OK, "/exp", "linklink/deeper"},
	{"symlink chain final", pathArgs("/exp/linklink"), lan, OK, "/exp", "sub"},
	{"nested export", pathArgs("/exp/inner/x"), lanPeer, OK, "/exp/inner", "x"},
	{"nested export refuses outer's client", pathArgs("/exp/inner"), lan, ErrAcces, "", ""},
	{"file", pathArgs("/exp/file"), lan, ErrNotDir, "", ""},
	{"symlink to file", pathArgs("/exp/tofile"), lan, ErrNotDir, "", ""},
	{"below a file", pathArgs("/exp/file/x"), lan, ErrNotDir, "", ""},
	{"missing", pathArgs("/exp/nope"), lan, ErrNoEnt, "", ""},
	{"unknown export", pathArgs("/other"), lan, ErrNoEnt, "", ""},
	{"prefix is not a parent", pathArgs("/expfoo"), lan, ErrNoEnt, "", ""},
	{"empty", pathArgs(""), lan, ErrNoEnt, "", ""},
	{"dotdot out of export", pathArgs("/exp/../etc"), lan, ErrNoEnt, "", ""},
	{"symlink loop", pathArgs("/exp/loop"), lan, ErrNoEnt, "", ""},
	{"escaping symlink", pathArgs("/exp/up"), lan, ErrNoEnt, "", ""},
	{"through escaping symlink", pathArgs("/exp/up/etc"), lan, ErrNoEnt, "", ""},
	{"absolute symlink", pathArgs("/exp/abs"), lan, ErrNoEnt, "", ""},
	{"stranger", pathArgs("/exp"), stranger, ErrAcces, "", ""},
	{"no address", pathArgs("/exp"), netip.AddrPort{}, ErrAcces, "", ""},
	{"export for nobody", pathArgs("/locked"), lan, ErrAcces, "", ""},
	{"path too long", pathArgs("/exp/" + strings.Repeat("a", MaxPathLen)), lan, ErrNameTooLong, "", ""},
}

func TestMnt(t *testing.T) {
	f := newFixture(t)
	for _, tt := range mntTests {
		t.Run(tt.name, func(t *testing.T) {
			st, r := f.call(ProcMnt, tt.args, tt.remote)
			if st != oncrpc.Success {
				t.Fatalf("accept stat %d", st)
			}
			if got := Status(r.Uint32()); got != tt.want {
				t.Fatalf("status %v; want %v", got, tt.want)
			}
			if tt.want != OK {
				if r.Len() != 0 {
					t.Errorf("%d bytes after an error status", r.Len())
				}
				return
			}
			h := r.Opaque(MaxFHSize)
			n := r.Uint32()
			var flavors []uint32
			for range min(n, 16) {
				flavors = append(flavors, r.Uint32())
			}
			if r.Err() != nil || r.Len() != 0 {
				t.Fatalf("reply does not decode: %v, %d left", r.Err(), r.Len())
			}
			if !slices.Equal(flavors, []uint32{oncrpc.AuthSys, oncrpc.AuthNone}) {
				t.Errorf("flavors %v", flavors)
			}
			e, p, err := f.store.Resolve(h)
			if err != nil || e.Path != tt.export || p != tt.resolve {
				t.Errorf("handle resolves to %v %q, %v; want %s %q", e, p, err, tt.export, tt.resolve)
			}
		})
	}
}

func TestGarbage(t *testing.T) {
	f := newFixture(t)
	truncated := pathArgs("/exp")[:6]
	tests := []struct {
		name string
		proc uint32
		args []byte
		want oncrpc.AcceptStat
	}{
		{"mnt no args", ProcMnt, nil, oncrpc.GarbageArgs},
		{"mnt short length", ProcMnt, []byte{0, 0}, oncrpc.GarbageArgs},
		{"mnt truncated path", ProcMnt, truncated, oncrpc.GarbageArgs},
		{"mnt huge length", ProcMnt, []byte{0xff, 0xff, 0xff, 0xff}, oncrpc.GarbageArgs},
		{"umnt truncated path", ProcUmnt, truncated, oncrpc.GarbageArgs},
		{"umnt too long", ProcUmnt, pathArgs(strings.Repeat("a", MaxPathLen+1)), oncrpc.GarbageArgs},
		{"unknown procedure", 6, nil, oncrpc.ProcUnavail},
		{"huge procedure", 1 << 31, nil, oncrpc.ProcUnavail},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st, r := f.call(tt.proc, tt.args, lan)
			if st != tt.want {
				t.Errorf("accept stat %d; want %d", st, tt.want)
			}
			if r.Len() != 0 {
				t.Errorf("%d reply bytes with accept stat %d", r.Len(), st)
			}
		})
	}
}

func TestNull(t *testing.T) {
	f := newFixture(t)
	if st, r := f.call(ProcNull, nil, stranger); st != oncrpc.Success || r.Len() != 0 {
		t.Errorf("NULL = %d, %d bytes", st, r.Len())
	}
}

func readMountList(t *testing.T, r *oncrpc.Reader) []Mount {
	t.Helper()
	var ms []Mount
	for r.Bool() {
		ms = append(ms, Mount{Host: r.String(MaxNameLen), Dir: r.String(MaxPathLen)})
	}
	if r.Err() != nil || r.Len() != 0 {
		t.Fatalf("mountlist does not decode: %v, %d left", r.Err(), r.Len())
	}
	return ms
}

func TestDumpUmnt(t *testing.T) {
	f := newFixture(t)
	steps := []struct {
		name   string
		proc   uint32
		path   string
		remote netip.AddrPort
		want   []Mount
	}{
		{"empty", ProcDump, "", lan, nil},
		{"mount", ProcMnt, "/exp", lan, []Mount{{"192.168.1.20", "/exp"}}},
		{"mount again", ProcMnt, "/exp", mappedV6, []Mount{{"192.168.1.20", "/exp"}}},
		{"refused mount not listed", ProcMnt, "/exp", stranger, []Mount{{"192.168.1.20", "/exp"}}},
		{"second mount", ProcMnt, "/exp/sub", lan, []Mount{{"192.168.1.20", "/exp"}, {"192.168.1.20", "/exp/sub"}}},
		{"other client", ProcMnt, "/exp", lanPeer, []Mount{{"192.168.1.20", "/exp"}, {"192.168.1.20", "/exp/sub"}, {"192.168.1.21", "/exp"}}},
		{"umnt", ProcUmnt, "/exp", lan, []Mount{{"192.168.1.20", "/exp/sub"}, {"192.168.1.21", "/exp"}}},
		{"umnt unknown", ProcUmnt, "/nope", lan, []Mount{{"192.168.1.20", "/exp/sub"}, {"192.168.1.21", "/exp"}}},
		{"umntall", ProcUmntAll, "", lanPeer, []Mount{{"192.168.1.20", "/exp/sub"}}},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			var args []byte
			if s.proc == ProcMnt || s.proc == ProcUmnt {
				args = pathArgs(s.path)
			}
			st, r := f.call(s.proc, args, s.remote)
			if st != oncrpc.Success {
				t.Fatalf("accept stat %d", st)
			}
			if s.proc == ProcUmnt || s.proc == ProcUmntAll {
				if r.Len() != 0 {
					t.Errorf("%d bytes in a void reply", r.Len())
				}
			}
			st, r = f.call(ProcDump, nil, s.remote)
			if st != oncrpc.Success {
				t.Fatalf("DUMP accept stat %d", st)
			}
			if got := readMountList(t, r); !slices.Equal(got, s.want) {
				t.Errorf("DUMP = %v; want %v", got, s.want)
			}
		})
	}
}

func TestExport(t *testing.T) {
	f := newFixture(t)
	st, r := f.call(ProcExport, nil, stranger)
	if st != oncrpc.Success {
		t.Fatalf("accept stat %d", st)
	}
	type node struct {
		dir    string
		groups []string
	}
	var got []node
	for r.Bool() {
		n := node{dir: r.String(MaxPathLen)}
		for r.Bool() {
			n.groups = append(n.groups, r.String(MaxNameLen))
		}
		got = append(got, n)
	}
	if r.Err() != nil || r.Len() != 0 {
		t.Fatalf("exports do not decode: %v, %d left", r.Err(), r.Len())
	}
	want := []node{
		{"/exp", []string{"192.168.1.0/24", "::1/128"}},
		{"/exp/inner", []string{"192.168.1.21/32"}},
		{"/locked", nil},
	}
	if !slices.EqualFunc(got, want, func(a, b node) bool { return a.dir == b.dir && slices.Equal(a.groups, b.groups) }) {
		t.Errorf("EXPORT = %v; want %v", got, want)
	}
}

func TestMountListBounded(t *testing.T) {
	f := newFixture(t)
	for i := range maxMounts + 10 {
		remote := netip.AddrPortFrom(netip.AddrFrom4([4]byte{192, 168, 1, byte(i % 250)}), 700)
		// Distinct (client, path) pairs: the client byte and the path vary.
		p := "/exp/sub/" + strings.Repeat("./", i/250) + "deeper"
		if st, r := f.call(ProcMnt, pathArgs(p), remote); st != oncrpc.Success || Status(r.Uint32()) != OK {
			t.Fatalf("mount %d failed", i)
		}
	}
	if n := len(f.srv.Mounts()); n > maxMounts {
		t.Errorf("%d mounts remembered; want at most %d", n, maxMounts)
	}
}

func FuzzMountArgs(f *testing.F) {
	for _, tt := range mntTests {
		f.Add(uint32(ProcMnt), tt.args)
		f.Add(uint32(ProcUmnt), tt.args)
	}
	f.Add(uint32(ProcDump), []byte(nil))
	f.Add(uint32(ProcExport), []byte{0, 0, 0, 0})
	f.Add(uint32(ProcUmntAll), []byte(nil))
	fx := newFixture(f)
	f.Fuzz(func(t *testing.T, proc uint32, args []byte) {
		proc %= 8
		st, r := fx.call(proc, args, lan)
		if st != oncrpc.Success {
			if r.Len() != 0 {
				t.Errorf("%d reply bytes with accept stat %d", r.Len(), st)
			}
			return
		}
		if proc == ProcMnt {
			if s := Status(r.Uint32()); s == OK {
				r.Opaque(MaxFHSize)
				n := r.Uint32()
				for range min(n, 8) {
					r.Uint32()
				}
			}
			if r.Err() != nil || r.Len() != 0 {
				t.Errorf("MNT reply does not decode: %v, %d left", r.Err(), r.Len())
			}
		}
	})
}
