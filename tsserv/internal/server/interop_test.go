package server_test

// Interop: tsserv against clients nobody here wrote. The chapter's own
// Python clients (testdata/*.py), nc, socat, and tsclnt, each over every
// transport that client speaks.

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"example.com/appliance/shared/nettest"
	"example.com/appliance/tsserv/internal/client"
	"example.com/appliance/tsserv/internal/server"
)

// msgs are what the interop clients send: plain text, spaces, and UTF-8,
// as the chapter's Chinese readers would type.
var msgs = []string{"hello", "second message", "时间戳 timestamp", "x"}

func TestPythonClients(t *testing.T) {
	python := nettest.NeedTool(t, "python3")
	ts := startService(t)
	clientSock := filepath.Join(ts.Dir, "client.dgram")
	tests := []struct {
		name   string
		script string
		args   []string // before the messages
	}{
		{"tsTclnt/ipv4", "tsTclnt.py", []string{"127.0.0.1", port(t, ts.TCP4)}},
		{"tsTclnt/ipv6", "tsTclnt.py", []string{"::1", port(t, ts.TCP6)}},
		{"tsTclntSS/ipv4", "tsTclntSS.py", []string{"127.0.0.1", port(t, ts.TCP4)}},
		{"tsTclntSS/ipv6", "tsTclntSS.py", []string{"::1", port(t, ts.TCP6)}},
		{"tsUclnt/ipv4", "tsUclnt.py", []string{"127.0.0.1", port(t, ts.UDP4)}},
		{"tsUclnt/ipv6", "tsUclnt.py", []string{"::1", port(t, ts.UDP6)}},
		{"tsTclntUnix", "tsTclntUnix.py", []string{ts.Unix}},
		{"tsUclntUnix", "tsUclntUnix.py", []string{ts.Unixgram, clientSock}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			args := append([]string{filepath.Join("testdata", tt.script)}, tt.args...)
			out := run(t, "", python, append(args, msgs...)...)
			checkLines(t, "ctime", out, msgs)
		})
	}
	// The SocketServer client strips the reply; unstripped, each reply
	// must end with the CRLF its request ended with.
	t.Run("tsTclntSS/raw", func(t *testing.T) {
		t.Parallel()
		out := run(t, "", python, append([]string{filepath.Join("testdata", "tsTclntSS.py"), "-raw", "127.0.0.1", port(t, ts.TCP4)}, msgs...)...)
		replies := strings.SplitAfter(out, "\r\n")
		if len(replies) != len(msgs)+1 || replies[len(msgs)] != "" {
			t.Fatalf("raw output %q: want %d replies each ending in CRLF", out, len(msgs))
		}
		for i, msg := range msgs {
			checkReply(t, "ctime", strings.TrimSuffix(replies[i], "\r\n"), msg)
		}
	})
}

func TestNetcat(t *testing.T) {
	nc := nettest.NeedTool(t, "nc")
	ts := startService(t)
	tests := []struct {
		name  string
		args  []string
		stdin string
		want  string // the replies, with "R(msg)" standing for "[<ctime>] msg"
	}{
		// nc -q1 does not half-close: it sends, waits 1s after stdin's EOF and quits.
		{"tcp -q1", []string{"-q1", "127.0.0.1", port(t, ts.TCP4)}, "a\nb\n", "R(a)\nR(b)\n"},
		// nc -N half-closes at stdin's EOF: a last unterminated line is answered then.
		{"tcp -N", []string{"-N", "127.0.0.1", port(t, ts.TCP4)}, "a\nb\n", "R(a)\nR(b)\n"},
		{"tcp -N last line unterminated", []string{"-N", "127.0.0.1", port(t, ts.TCP4)}, "a\nb", "R(a)\nR(b)"},
		{"tcp CRLF", []string{"-N", "127.0.0.1", port(t, ts.TCP4)}, "a\r\nb\r\n", "R(a)\r\nR(b)\r\n"},
		{"tcp6", []string{"-N", "::1", port(t, ts.TCP6)}, "a\nb\n", "R(a)\nR(b)\n"},
		{"unix -q1", []string{"-q1", "-U", ts.Unix}, "a\nb\n", "R(a)\nR(b)\n"},
		{"unix -N", []string{"-N", "-U", ts.Unix}, "a\nb\nc\n", "R(a)\nR(b)\nR(c)\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			checkStream(t, run(t, tt.stdin, nc, tt.args...), tt.want)
		})
	}

	// One datagram each. "printf x | nc -u -q1 -w1" prints nothing with
	// netcat-openbsd: at stdin's EOF it shuts the socket down for reading
	// too, before the reply can arrive. So stdin stays open until the
	// reply is in, and -q0 then ends nc at once.
	dgrams := []struct {
		name string
		args []string
	}{
		{"udp", []string{"-u", "-q0", "-w5", "127.0.0.1", port(t, ts.UDP4)}},
		{"udp6", []string{"-u", "-q0", "-w5", "::1", port(t, ts.UDP6)}},
		{"unixgram", []string{"-u", "-U", "-q0", "-w5", ts.Unixgram}}, // nc binds a client socket of its own
	}
	for _, tt := range dgrams {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			checkReply(t, "ctime", exchange(t, "datagram", nc, tt.args...), "datagram")
		})
	}
}

func TestSocat(t *testing.T) {
	socat := nettest.NeedTool(t, "socat")
	ts := startService(t)
	// -t: after stdin's EOF, how long socat waits for the server to finish;
	// tsserv closes as soon as it has answered, so it never waits that long.
	tests := []struct {
		name  string
		addr  string
		stdin string
		want  string
	}{
		{"tcp", "TCP:127.0.0.1:" + port(t, ts.TCP4), "l1\nl2\nl3\n", "R(l1)\nR(l2)\nR(l3)\n"},
		{"tcp6", "TCP6:[::1]:" + port(t, ts.TCP6), "l1\nl2\n", "R(l1)\nR(l2)\n"},
		{"tcp crlf", "TCP:127.0.0.1:" + port(t, ts.TCP4) + ",crlf", "l1\nl2\n", "R(l1)\nR(l2)\n"},
		{"unix", "UNIX-CONNECT:" + ts.Unix, "u1\nu2\n", "R(u1)\nR(u2)\n"},
		{"tcp no newline at end", "TCP:127.0.0.1:" + port(t, ts.TCP4), "l1\nlast", "R(l1)\nR(last)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			checkStream(t, run(t, tt.stdin, socat, "-t10", "-", tt.addr), tt.want)
		})
	}
	dgrams := []struct {
		name string
		addr string
	}{
		{"udp", "UDP:127.0.0.1:" + port(t, ts.UDP4)},
		{"udp6", "UDP6:[::1]:" + port(t, ts.UDP6)},
		{"unixgram", "UNIX-SENDTO:" + ts.Unixgram + ",bind=" + filepath.Join(ts.Dir, "socat.dgram")},
	}
	for _, tt := range dgrams {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			checkReply(t, "ctime", exchange(t, "datagram", socat, "-t0", "-", tt.addr), "datagram")
		})
	}
}

// checkStream checks a line tool's output against want, in which R(msg)
// stands for one "[<ctime>] msg" reply and every terminator is literal.
func checkStream(t *testing.T, out, want string) {
	t.Helper()
	rest := out
	for w := want; w != ""; {
		if !strings.HasPrefix(w, "R(") {
			if !strings.HasPrefix(rest, w[:1]) {
				t.Fatalf("output %q, want %q", out, want)
			}
			w, rest = w[1:], rest[1:]
			continue
		}
		end := strings.Index(w, ")")
		msg := w[2:end]
		w = w[end+1:]
		// The reply runs to the next terminator, or to the end.
		n := strings.IndexAny(rest, "\r\n")
		if n < 0 {
			n = len(rest)
		}
		if err := replyError("ctime", rest[:n], msg); err != nil {
			t.Fatalf("output %q, want %q: %v", out, want, err)
		}
		rest = rest[n:]
	}
	if rest != "" {
		t.Fatalf("output %q, want %q: %q left over", out, want, rest)
	}
}

// TestTsclnt drives the project's own client, in process, against a real
// server: the interactive prompt and one-shot mode over every transport.
func TestTsclnt(t *testing.T) {
	ts := startService(t)
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp) // where a unixgram client binds its own socket
	p4, p6 := port(t, ts.TCP4), port(t, ts.TCP6)
	u4, u6 := port(t, ts.UDP4), port(t, ts.UDP6)
	tests := []struct {
		name  string
		args  []string
		stdin string
		want  []string // messages whose replies are printed, in order
	}{
		{"interactive empty line quits", []string{"-p", p4, "127.0.0.1"}, "hello\nworld\n\nnot sent\n", []string{"hello", "world"}},
		{"interactive EOF quits", []string{"-p", p4, "127.0.0.1"}, "one\ntwo words\n", []string{"one", "two words"}},
		{"interactive no newline at EOF", []string{"-p", p4, "127.0.0.1"}, "one\nlast", []string{"one", "last"}},
		{"interactive nothing", []string{"-p", p4, "127.0.0.1"}, "", nil},
		{"interactive udp", []string{"-u", "-p", u4, "127.0.0.1"}, "a\nb\n", []string{"a", "b"}},
		{"interactive unix", []string{"-unix", ts.Unix}, "a\nb\n", []string{"a", "b"}},
		{"interactive unixgram", []string{"-u", "-unix", ts.Unixgram}, "a\n时间\n", []string{"a", "时间"}},
		{"-m tcp", []string{"-p", p4, "-m", "hello there", "127.0.0.1"}, "", []string{"hello there"}},
		{"-m empty message", []string{"-p", p4, "-m", "", "127.0.0.1"}, "", []string{""}},
		{"-m -4 default host", []string{"-4", "-p", p4, "-m", "v4"}, "", []string{"v4"}},
		{"-m -u", []string{"-u", "-p", u4, "-m", "dgram", "127.0.0.1"}, "", []string{"dgram"}},
		{"-m -6", []string{"-6", "-p", p6, "-m", "v6"}, "", []string{"v6"}},
		{"-m -6 -u", []string{"-6", "-u", "-p", u6, "-m", "v6 dgram"}, "", []string{"v6 dgram"}},
		{"-m ipv6 host", []string{"-p", p6, "-m", "v6", "::1"}, "", []string{"v6"}},
		{"-m -unix", []string{"-unix", ts.Unix, "-m", "unix"}, "", []string{"unix"}},
		{"-m -u -unix", []string{"-u", "-unix", ts.Unixgram, "-m", "unixgram"}, "", []string{"unixgram"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := client.Main(tt.args, strings.NewReader(tt.stdin), &stdout, &stderr)
			if code != 0 {
				t.Fatalf("exit %d, stderr:\n%s", code, stderr.String())
			}
			if stderr.Len() > 0 {
				t.Errorf("stderr: %q", stderr.String())
			}
			out := stdout.String()
			if !slices.Contains(tt.args, "-m") {
				// Each reply follows a "> " prompt, and a last prompt met the end.
				if !strings.HasSuffix(out, "> ") {
					t.Fatalf("output %q does not end with the prompt", out)
				}
				out = strings.TrimSuffix(out, "> ")
				var replies []string
				for _, l := range lines(out) {
					r, ok := strings.CutPrefix(l, "> ")
					if !ok {
						t.Fatalf("output %q: line %q has no prompt", stdout.String(), l)
					}
					replies = append(replies, r)
				}
				out = strings.Join(replies, "\n")
			}
			checkLines(t, "ctime", out, tt.want)
			if ents, _ := os.ReadDir(tmp); len(ents) > 0 {
				t.Errorf("tsclnt left %s in its temporary directory", ents[0].Name())
			}
		})
	}
}

// TestTsclntServerDown checks what a user sees when tsserv is not there.
func TestTsclntServerDown(t *testing.T) {
	// A service that was running and has been stopped: its ports refuse.
	ts := startService(t)
	p4, u4, unixPath := port(t, ts.TCP4), port(t, ts.UDP4), ts.Unix
	if err := ts.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	// A UDP port that is open but where nothing answers.
	silent, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	tests := []struct {
		name string
		args []string
		want string // in stderr
	}{
		{"tcp", []string{"-p", p4, "-m", "x", "127.0.0.1"}, "connection refused"},
		{"tcp interactive", []string{"-p", p4, "127.0.0.1"}, "connection refused"},
		{"unix", []string{"-unix", unixPath, "-m", "x"}, "no such file or directory"},
		{"udp refused", []string{"-u", "-timeout", "5s", "-p", u4, "-m", "x", "127.0.0.1"}, "nothing is listening"},
		{"udp silent", []string{"-u", "-timeout", "200ms", "-p", port(t, silent.LocalAddr().String()), "-m", "x", "127.0.0.1"}, "no reply from 127.0.0.1:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := client.Main(tt.args, strings.NewReader("hello\n"), &stdout, &stderr)
			if code != 1 {
				t.Errorf("exit %d, want 1", code)
			}
			if !strings.Contains(stderr.String(), tt.want) || !strings.HasPrefix(stderr.String(), "tsclnt: ") {
				t.Errorf("stderr %q, want a tsclnt: message with %q", stderr.String(), tt.want)
			}
			if strings.Contains(stdout.String(), "[") {
				t.Errorf("stdout %q: a reply from nowhere", stdout.String())
			}
		})
	}
}

// TestFormats checks each reply format, set in the config, on each transport.
func TestFormats(t *testing.T) {
	for _, format := range []string{"ctime", "rfc3339", "unix"} {
		t.Run(format, func(t *testing.T) {
			ts := startService(t, func(c *server.Config) { c.Format = format })
			for _, tr := range ts.transports() {
				checkReply(t, format, tr.stamp(t, "msg"), "msg")
			}
		})
	}
}

// TestReloadChangesFormat changes the format at run time, as SIGHUP does,
// and checks the next reply on an open connection uses the new one.
func TestReloadChangesFormat(t *testing.T) {
	ts := startService(t)
	c := dial(t, "tcp", ts.TCP4)
	r := bufio.NewReader(c)
	stampLine := func(msg string) string {
		t.Helper()
		if _, err := io.WriteString(c, msg+"\n"); err != nil {
			t.Fatal(err)
		}
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSuffix(line, "\n")
	}
	checkReply(t, "ctime", stampLine("before"), "before")
	for _, format := range []string{"unix", "rfc3339", "ctime"} {
		ts.reloadWith(t, func(c *server.Config) { c.Format = format })
		checkReply(t, format, stampLine("after "+format), "after "+format)
		for _, tr := range ts.transports() {
			checkReply(t, format, tr.stamp(t, tr.name), tr.name)
		}
	}
}

type transport struct {
	name          string
	network, addr string
}

// transports lists the service's sockets, for one exchange each.
func (ts *testService) transports() []transport {
	return []transport{
		{"tcp4", "tcp", ts.TCP4}, {"tcp6", "tcp", ts.TCP6}, {"unix", "unix", ts.Unix},
		{"udp4", "udp", ts.UDP4}, {"udp6", "udp", ts.UDP6}, {"unixgram", "unixgram", ts.Unixgram},
	}
}

// stamp sends msg on a new connection (a line on a stream) and returns
// the reply without its line end.
func (tr transport) stamp(t *testing.T, msg string) string {
	t.Helper()
	var c net.Conn
	var err error
	if tr.network == "unixgram" {
		local := &net.UnixAddr{Name: filepath.Join(filepath.Dir(tr.addr), "c.dgram"), Net: "unixgram"}
		c, err = net.DialUnix("unixgram", local, &net.UnixAddr{Name: tr.addr, Net: "unixgram"})
		defer os.Remove(local.Name)
	} else {
		c, err = net.Dial(tr.network, tr.addr)
	}
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(timeoutFromNow())
	if tr.network == "udp" || tr.network == "unixgram" {
		if _, err := io.WriteString(c, msg); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 1024)
		n, err := c.Read(buf)
		if err != nil {
			t.Fatalf("%s: %v", tr.name, err)
		}
		return string(buf[:n])
	}
	if _, err := io.WriteString(c, msg+"\n"); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		t.Fatalf("%s: %v", tr.name, err)
	}
	return strings.TrimSuffix(line, "\n")
}
