package listen

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// longPath is an absolute path of n bytes.
func longPath(n int) string {
	return "/" + strings.Repeat("x", n-1)
}

var parseTests = []struct {
	in      string
	want    Addr
	wantErr string // substring of the error; "" for success
}{
	{in: "tcp/:21567", want: Addr{"tcp", ":21567"}},
	{in: "tcp/[::]:21567", want: Addr{"tcp", "[::]:21567"}},
	{in: "tcp/127.0.0.1:0", want: Addr{"tcp", "127.0.0.1:0"}},
	{in: "tcp/[::1]:631", want: Addr{"tcp", "[::1]:631"}},
	{in: "tcp/localhost:8080", want: Addr{"tcp", "localhost:8080"}},
	{in: "tcp/[fe80::1%eth0]:9", want: Addr{"tcp", "[fe80::1%eth0]:9"}},
	{in: "tcp/:65535", want: Addr{"tcp", ":65535"}},
	{in: "udp/[::1]:0", want: Addr{"udp", "[::1]:0"}},
	{in: "udp/[::]:21567", want: Addr{"udp", "[::]:21567"}},
	{in: "udp/0.0.0.0:53", want: Addr{"udp", "0.0.0.0:53"}},
	{in: "unix//tmp/x.sock", want: Addr{"unix", "/tmp/x.sock"}},
	{in: "unixgram//x", want: Addr{"unixgram", "/x"}},
	{in: "unix/" + longPath(107), want: Addr{"unix", longPath(107)}},

	{in: "", wantErr: "want network/address"},
	{in: "tcp:21567", wantErr: "want network/address"},
	{in: ":21567", wantErr: "want network/address"},
	{in: "sctp/:21567", wantErr: `unknown network "sctp"`},
	{in: "TCP/:21567", wantErr: `unknown network "TCP"`},
	{in: "/:21567", wantErr: `unknown network ""`},
	{in: "tcp4/:21567", wantErr: `unknown network "tcp4"`},
	{in: "tcp/:70000", wantErr: `bad port "70000"`},
	{in: "udp/:70000", wantErr: `bad port "70000"`},
	{in: "tcp/:-1", wantErr: `bad port "-1"`},
	{in: "tcp/:http", wantErr: `bad port "http"`},
	{in: "tcp/:", wantErr: `bad port ""`},
	{in: "tcp/:00", wantErr: `bad port "00"`},
	{in: "tcp/:+80", wantErr: `bad port "+80"`},
	{in: "tcp/21567", wantErr: "missing port"},
	{in: "tcp/::1:80", wantErr: "too many colons"},
	{in: "tcp/bad_host:80", wantErr: `bad host "bad_host"`},
	{in: "tcp/a..b:80", wantErr: `bad host "a..b"`},
	{in: "tcp/" + strings.Repeat("a", 64) + ":80", wantErr: "bad host"},
	{in: "unix/tmp/x.sock", wantErr: "want an absolute path"},
	{in: "unix/x.sock", wantErr: "want an absolute path"},
	{in: "unixgram/./x", wantErr: "want an absolute path"},
	{in: "unix/", wantErr: "want an absolute path"},
	{in: "unix//", wantErr: "want an absolute path"},
	{in: "unix/" + longPath(108), wantErr: "longer than 107 bytes"},
	{in: "unixgram/" + longPath(200), wantErr: "longer than 107 bytes"},
	{in: "unix//tmp/x\x00.sock", wantErr: "contains NUL"},
	{in: "unixgram//\x00", wantErr: "contains NUL"},
}

func TestParse(t *testing.T) {
	for _, tt := range parseTests {
		name := tt.in
		if len(name) > 40 {
			name = name[:40] + "..."
		}
		t.Run(name, func(t *testing.T) {
			got, err := Parse(tt.in)
			if tt.wantErr != "" {
				if err == nil {
					t.Fatalf("Parse(%q) = %+v, want an error containing %q", tt.in, got, tt.wantErr)
				}
				if !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("Parse(%q) error %q, want it to contain %q", tt.in, err, tt.wantErr)
				}
				if !strings.HasPrefix(err.Error(), "listen address ") {
					t.Errorf("Parse(%q) error %q does not start with \"listen address \"", tt.in, err)
				}
				if got != (Addr{}) {
					t.Errorf("Parse(%q) returned %+v with its error, want the zero Addr", tt.in, got)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse(%q): %v", tt.in, err)
			}
			if got != tt.want {
				t.Errorf("Parse(%q) = %+v, want %+v", tt.in, got, tt.want)
			}
			if got.String() != tt.in {
				t.Errorf("Parse(%q).String() = %q", tt.in, got.String())
			}
		})
	}
}

func FuzzParse(f *testing.F) {
	for _, tt := range parseTests {
		f.Add(tt.in)
	}
	f.Fuzz(func(t *testing.T, s string) {
		a, err := Parse(s)
		if err != nil {
			if a != (Addr{}) {
				t.Errorf("Parse(%q) returned %+v with error %v", s, a, err)
			}
			return
		}
		switch a.Network {
		case "tcp", "udp", "unix", "unixgram":
		default:
			t.Fatalf("Parse(%q) accepted network %q", s, a.Network)
		}
		b, err := Parse(a.String())
		if err != nil {
			t.Fatalf("Parse(%q) = %+v, but Parse(%q): %v", s, a, a.String(), err)
		}
		if b != a {
			t.Fatalf("Parse(%q) = %+v, but Parse(%q) = %+v", s, a, a.String(), b)
		}
		if a.Stream() != (a.Network == "tcp" || a.Network == "unix") {
			t.Errorf("%+v.Stream() = %v", a, a.Stream())
		}
	})
}

func TestStream(t *testing.T) {
	for _, tt := range []struct {
		network string
		want    bool
	}{
		{"tcp", true},
		{"unix", true},
		{"udp", false},
		{"unixgram", false},
	} {
		t.Run(tt.network, func(t *testing.T) {
			if got := (Addr{Network: tt.network}).Stream(); got != tt.want {
				t.Errorf("Stream() = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestNetwork(t *testing.T) {
	for _, tt := range []struct {
		addr net.Addr
		want string
	}{
		{nil, "unknown"},
		{&net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)}, "tcp"},
		{&net.TCPAddr{IP: net.IPv6loopback}, "tcp"},
		{&net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)}, "udp"},
		{&net.UnixAddr{Name: "/x", Net: "unix"}, "unix"},
		{&net.UnixAddr{Name: "/x", Net: "unixgram"}, "unixgram"},
		{&net.UnixAddr{Name: "/x", Net: "unixpacket"}, "unixpacket"},
		{fakeAddr{"tcp4"}, "tcp"},
		{fakeAddr{"tcp6"}, "tcp"},
		{fakeAddr{"udp4"}, "udp"},
		{fakeAddr{"udp6"}, "udp"},
		{fakeAddr{"ip"}, "ip"},
	} {
		name := "nil"
		if tt.addr != nil {
			name = tt.addr.Network()
		}
		t.Run(name, func(t *testing.T) {
			if got := Network(tt.addr); got != tt.want {
				t.Errorf("Network(%v) = %q, want %q", tt.addr, got, tt.want)
			}
		})
	}
}

type fakeAddr struct{ network string }

func (a fakeAddr) Network() string { return a.network }
func (a fakeAddr) String() string  { return "fake" }

// listenTests are one socket of each kind; addresses with a %s are paths
// in a temporary directory.
var listenTests = []struct {
	name, addr string
	stream     bool
}{
	{"tcp4", "tcp/127.0.0.1:0", true},
	{"tcp6", "tcp/[::1]:0", true},
	{"udp4", "udp/127.0.0.1:0", false},
	{"udp6", "udp/[::1]:0", false},
	{"unix", "unix/%s/s.sock", true},
	{"unixgram", "unixgram/%s/s.dgram", false},
}

func TestListen(t *testing.T) {
	for _, tt := range listenTests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			a, err := Parse(strings.ReplaceAll(tt.addr, "%s", dir))
			if err != nil {
				t.Fatal(err)
			}
			s, err := Listen(a)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if s.Inherited {
				t.Error("a socket that was opened says it was inherited")
			}
			if s.Addr != a {
				t.Errorf("Addr = %+v, want %+v", s.Addr, a)
			}
			if (s.Listener != nil) != tt.stream || (s.PacketConn != nil) == tt.stream {
				t.Fatalf("Listener %v, PacketConn %v: want exactly the %s one", s.Listener, s.PacketConn, map[bool]string{true: "stream", false: "packet"}[tt.stream])
			}
			checkLocal(t, s)
			if tt.stream {
				streamRoundTrip(t, s.Listener)
			} else {
				packetRoundTrip(t, s.PacketConn, dir)
			}
			if err := s.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
			if a.Network == "unix" || a.Network == "unixgram" {
				if _, err := os.Lstat(a.Address); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("socket file after Close: %v, want it removed", err)
				}
			}
		})
	}
}

// checkLocal checks that s.Local is the bound address in written form.
func checkLocal(t *testing.T, s Socket) {
	t.Helper()
	local := s.Local()
	a, err := Parse(local)
	if err != nil {
		t.Fatalf("Local() = %q, which does not parse: %v", local, err)
	}
	if a.Network != s.Addr.Network {
		t.Errorf("Local() = %q, want network %s", local, s.Addr.Network)
	}
	switch a.Network {
	case "tcp", "udp":
		host, port, _ := net.SplitHostPort(a.Address)
		wantHost, wantPort, _ := net.SplitHostPort(s.Addr.Address)
		if wantHost != "" && host != wantHost {
			t.Errorf("Local() = %q, want host %s", local, wantHost)
		}
		if port == "0" || (wantPort != "0" && port != wantPort) {
			t.Errorf("Local() = %q, want the bound port (configured %s)", local, wantPort)
		}
	default:
		if a.Address != s.Addr.Address {
			t.Errorf("Local() = %q, want the path %s", local, s.Addr.Address)
		}
	}
}

func streamRoundTrip(t *testing.T, l net.Listener) {
	t.Helper()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			accepted <- nil
			return
		}
		accepted <- c
	}()
	c, err := net.Dial(l.Addr().Network(), l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	sc := <-accepted
	if sc == nil {
		t.Fatal("Accept failed")
	}
	defer sc.Close()
	deadline := time.Now().Add(10 * time.Second)
	c.SetDeadline(deadline)
	sc.SetDeadline(deadline)
	if _, err := c.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 10)
	n, err := sc.Read(buf)
	if err != nil || string(buf[:n]) != "ping" {
		t.Fatalf("server read %q, %v", buf[:n], err)
	}
}

func packetRoundTrip(t *testing.T, pc net.PacketConn, dir string) {
	t.Helper()
	var c net.Conn
	var err error
	if ua, ok := pc.LocalAddr().(*net.UnixAddr); ok {
		local := &net.UnixAddr{Name: filepath.Join(dir, "client.dgram"), Net: "unixgram"}
		c, err = net.DialUnix("unixgram", local, ua)
	} else {
		c, err = net.Dial(pc.LocalAddr().Network(), pc.LocalAddr().String())
	}
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	deadline := time.Now().Add(10 * time.Second)
	c.SetDeadline(deadline)
	pc.SetDeadline(deadline)
	if _, err := c.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 10)
	n, from, err := pc.ReadFrom(buf)
	if err != nil || string(buf[:n]) != "ping" {
		t.Fatalf("server read %q, %v", buf[:n], err)
	}
	if _, err := pc.WriteTo([]byte("pong"), from); err != nil {
		t.Fatal(err)
	}
	n, err = c.Read(buf)
	if err != nil || string(buf[:n]) != "pong" {
		t.Fatalf("client read %q, %v", buf[:n], err)
	}
	pc.SetDeadline(time.Time{})
}

// staleSocket leaves a socket file at path with nothing bound to it, as a
// crashed daemon would.
func staleSocket(t *testing.T, network, path string) {
	t.Helper()
	switch network {
	case "unix":
		l, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
		if err != nil {
			t.Fatal(err)
		}
		l.SetUnlinkOnClose(false)
		l.Close()
	case "unixgram":
		c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
		if err != nil {
			t.Fatal(err)
		}
		c.Close()
	}
	fi, err := os.Lstat(path)
	if err != nil || fi.Mode()&os.ModeSocket == 0 {
		t.Fatalf("no stale socket at %s: %v %v", path, fi, err)
	}
}

func TestListenRemovesStaleSocket(t *testing.T) {
	for _, network := range []string{"unix", "unixgram"} {
		t.Run(network, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "s.sock")
			staleSocket(t, network, path)
			s, err := Listen(Addr{Network: network, Address: path})
			if err != nil {
				t.Fatalf("Listen over a stale socket: %v", err)
			}
			defer s.Close()
			if s.Listener != nil {
				streamRoundTrip(t, s.Listener)
			} else {
				packetRoundTrip(t, s.PacketConn, dir)
			}
		})
	}
}

func TestListenRefusesOtherFiles(t *testing.T) {
	for _, network := range []string{"unix", "unixgram"} {
		for _, kind := range []string{"file", "dir", "symlink"} {
			t.Run(network+"/"+kind, func(t *testing.T) {
				dir := t.TempDir()
				path := filepath.Join(dir, "s.sock")
				var err error
				switch kind {
				case "file":
					err = os.WriteFile(path, []byte("precious"), 0o600)
				case "dir":
					err = os.Mkdir(path, 0o700)
				case "symlink":
					target := filepath.Join(dir, "target.sock")
					staleSocket(t, network, target)
					err = os.Symlink(target, path)
				}
				if err != nil {
					t.Fatal(err)
				}
				before, err := os.Lstat(path)
				if err != nil {
					t.Fatal(err)
				}
				s, err := Listen(Addr{Network: network, Address: path})
				if err == nil {
					s.Close()
					t.Fatalf("Listen over a %s succeeded", kind)
				}
				if !strings.Contains(err.Error(), "exists and is not a socket") || !strings.Contains(err.Error(), path) {
					t.Errorf("error %q, want it to name the path and say it is not a socket", err)
				}
				after, err := os.Lstat(path)
				if err != nil {
					t.Fatalf("the %s was removed: %v", kind, err)
				}
				if !os.SameFile(before, after) {
					t.Errorf("the %s was replaced", kind)
				}
				if kind == "file" {
					if b, _ := os.ReadFile(path); string(b) != "precious" {
						t.Errorf("file now holds %q", b)
					}
				}
			})
		}
	}
}

func TestListenErrors(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	busyUDP, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busyUDP.Close()
	dir := t.TempDir()
	for _, tt := range []struct {
		name    string
		addr    Addr
		wantErr string
	}{
		{"tcp in use", Addr{"tcp", busy.Addr().String()}, "listen on tcp/" + busy.Addr().String()},
		{"udp in use", Addr{"udp", busyUDP.LocalAddr().String()}, "listen on udp/" + busyUDP.LocalAddr().String()},
		{"unix in missing dir", Addr{"unix", filepath.Join(dir, "nope", "s.sock")}, "listen on unix/"},
		{"unixgram in missing dir", Addr{"unixgram", filepath.Join(dir, "nope", "s.dgram")}, "listen on unixgram/"},
		{"unknown network", Addr{"sctp", ":1"}, `unknown network "sctp"`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s, err := Listen(tt.addr)
			if err == nil {
				s.Close()
				t.Fatalf("Listen(%v) succeeded", tt.addr)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("Listen(%v) error %q, want it to contain %q", tt.addr, err, tt.wantErr)
			}
		})
	}
}

func TestUnixgramCloseRemovesOnlyItsOwnFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.dgram")
	a := Addr{Network: "unixgram", Address: path}
	old, err := Listen(a)
	if err != nil {
		t.Fatal(err)
	}
	if err := old.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("socket file after Close: %v", err)
	}
	// A new socket takes the path; closing the old one again must not
	// take the new one's file away.
	s, err := Listen(a)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	old.Close()
	if _, err := os.Lstat(path); err != nil {
		t.Errorf("second Close of the old socket removed the new socket's file: %v", err)
	}
}

func TestOpen(t *testing.T) {
	dir := t.TempDir()
	var addrs []string
	for _, tt := range listenTests {
		addrs = append(addrs, strings.ReplaceAll(tt.addr, "%s", dir))
	}
	socks, err := Open(addrs)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		for _, s := range socks {
			s.Close()
		}
	}()
	if len(socks) != len(addrs) {
		t.Fatalf("Open(%d addresses) gave %d sockets", len(addrs), len(socks))
	}
	for i, s := range socks {
		if s.Addr.String() != addrs[i] {
			t.Errorf("socket %d is %v, want %s (in order)", i, s.Addr, addrs[i])
		}
		if s.Inherited {
			t.Errorf("socket %d is inherited", i)
		}
		if (s.Listener != nil) != listenTests[i].stream {
			t.Errorf("socket %d (%s): Listener %v", i, s.Addr, s.Listener)
		}
		checkLocal(t, s)
	}

	none, err := Open(nil)
	if err != nil || len(none) != 0 {
		t.Errorf("Open(nil) = %v, %v", none, err)
	}
}

// openFDs counts this process's open descriptors.
func openFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatalf("cannot count descriptors: %v", err)
	}
	return len(ents)
}

func TestOpenClosesEverythingOnError(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	for _, tt := range []struct {
		name, last, wantErr string
	}{
		{"parse error", "tcp/:70000", `bad port "70000"`},
		{"address in use", "tcp/" + busy.Addr().String(), "listen on tcp/" + busy.Addr().String()},
		{"file at unix path", "unix/%s/file", "exists and is not a socket"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, "file"), nil, 0o600); err != nil {
				t.Fatal(err)
			}
			addrs := []string{
				"tcp/127.0.0.1:0",
				"udp/[::1]:0",
				"unix/" + dir + "/a.sock",
				"unixgram/" + dir + "/b.dgram",
				strings.ReplaceAll(tt.last, "%s", dir),
			}
			before := openFDs(t)
			socks, err := Open(addrs)
			if err == nil {
				for _, s := range socks {
					s.Close()
				}
				t.Fatal("Open succeeded")
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("Open error %q, want it to contain %q", err, tt.wantErr)
			}
			if socks != nil {
				t.Errorf("Open returned %v with its error", socks)
			}
			if after := openFDs(t); after != before {
				t.Errorf("%d descriptors open before Open, %d after its error", before, after)
			}
			for _, name := range []string{"a.sock", "b.dgram"} {
				if _, err := os.Lstat(filepath.Join(dir, name)); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("%s after the failed Open: %v, want it closed and removed", name, err)
				}
			}
		})
	}
}

func TestSocketLocal(t *testing.T) {
	dir := t.TempDir()
	for _, tt := range []struct {
		addr      string
		wantRegex string // the bound port is the only part not known in advance
	}{
		{"tcp/127.0.0.1:0", `^tcp/127\.0\.0\.1:[1-9][0-9]*$`},
		{"tcp/[::1]:0", `^tcp/\[::1\]:[1-9][0-9]*$`},
		{"udp/127.0.0.1:0", `^udp/127\.0\.0\.1:[1-9][0-9]*$`},
		{"udp/[::1]:0", `^udp/\[::1\]:[1-9][0-9]*$`},
		{"unix/" + dir + "/l.sock", "^unix/" + regexp.QuoteMeta(dir+"/l.sock") + "$"},
		{"unixgram/" + dir + "/l.dgram", "^unixgram/" + regexp.QuoteMeta(dir+"/l.dgram") + "$"},
	} {
		t.Run(tt.addr, func(t *testing.T) {
			a, err := Parse(tt.addr)
			if err != nil {
				t.Fatal(err)
			}
			s, err := Listen(a)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			got := s.Local()
			if !regexp.MustCompile(tt.wantRegex).MatchString(got) {
				t.Errorf("Local() = %q, want %s", got, tt.wantRegex)
			}
		})
	}
	t.Run("port kept", func(t *testing.T) {
		s, err := Listen(Addr{"tcp", "127.0.0.1:0"})
		if err != nil {
			t.Fatal(err)
		}
		_, port, _ := net.SplitHostPort(s.Listener.Addr().String())
		if want := "tcp/127.0.0.1:" + port; s.Local() != want {
			t.Errorf("Local() = %q, want %q", s.Local(), want)
		}
		if p, _ := strconv.Atoi(port); p == 0 {
			t.Errorf("bound port %q", port)
		}
		s.Close()
	})
}
