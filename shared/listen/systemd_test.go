package listen

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

var listenEnv = []string{"LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"}

// TestInheritedIgnored covers the cases where the LISTEN_* variables are
// not for this process: no descriptor may be touched (this test process's
// descriptor 3 and up are its own), and the variables are unset anyway.
func TestInheritedIgnored(t *testing.T) {
	self := strconv.Itoa(os.Getpid())
	other := strconv.Itoa(os.Getpid() + 1)
	for _, tt := range []struct {
		name string
		env  map[string]string
	}{
		{"other pid", map[string]string{"LISTEN_PID": other, "LISTEN_FDS": "2", "LISTEN_FDNAMES": "a:b"}},
		{"no pid", map[string]string{"LISTEN_FDS": "2"}},
		{"bad pid", map[string]string{"LISTEN_PID": "me", "LISTEN_FDS": "2"}},
		{"no fds", map[string]string{"LISTEN_PID": self}},
		{"zero fds", map[string]string{"LISTEN_PID": self, "LISTEN_FDS": "0"}},
		{"negative fds", map[string]string{"LISTEN_PID": self, "LISTEN_FDS": "-3"}},
		{"bad fds", map[string]string{"LISTEN_PID": self, "LISTEN_FDS": "two"}},
		{"nothing", nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			for _, k := range listenEnv {
				t.Setenv(k, "") // restored after the test
				os.Unsetenv(k)
			}
			for k, v := range tt.env {
				os.Setenv(k, v)
			}
			socks, err := Inherited()
			if err != nil || socks != nil {
				t.Errorf("Inherited() = %v, %v; want none", socks, err)
			}
			checkEnvUnset(t)
		})
	}
}

func TestOpenWithOtherPIDOpensConfigured(t *testing.T) {
	for _, k := range listenEnv {
		t.Setenv(k, "")
	}
	os.Setenv("LISTEN_PID", strconv.Itoa(os.Getpid()+1))
	os.Setenv("LISTEN_FDS", "2")
	socks, err := Open([]string{"tcp/127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	defer socks[0].Close()
	if len(socks) != 1 || socks[0].Inherited || socks[0].Listener == nil {
		t.Errorf("Open = %+v, want one tcp listener of its own", socks)
	}
	checkEnvUnset(t)
}

func checkEnvUnset(t *testing.T) {
	t.Helper()
	for _, k := range listenEnv {
		if v, ok := os.LookupEnv(k); ok {
			t.Errorf("%s=%q still set", k, v)
		}
	}
}

// TestHelperProcess is the child of the socket activation tests, not a
// test of its own. It opens HELPER_ADDRS with listen.Open as a daemon
// started by systemd would, and reports on standard output:
//
//	error <err>                      Open failed
//	socket <i> <local> <inherited>   one line per socket
//	env <name>=<value>               a LISTEN_ variable still set
//	ready                            then it serves, on the inherited sockets,
//	                                 one connection and one datagram
//	done
func TestHelperProcess(t *testing.T) {
	if os.Getenv("GO_WANT_HELPER") != "1" {
		t.Skip("the child of the socket activation tests")
	}
	// LISTEN_PID cannot be known before exec: systemd sets it between fork
	// and exec, and so does this.
	if os.Getenv("HELPER_SET_PID") == "1" {
		os.Setenv("LISTEN_PID", strconv.Itoa(os.Getpid()))
	}
	report := func(format string, args ...any) { fmt.Printf(format+"\n", args...) }
	socks, err := Open(strings.Fields(os.Getenv("HELPER_ADDRS")))
	if err != nil {
		report("error %v", err)
		return
	}
	defer func() {
		for _, s := range socks {
			s.Close()
		}
	}()
	for i, s := range socks {
		report("socket %d %s %t", i, s.Local(), s.Inherited)
	}
	for _, k := range listenEnv {
		if v, ok := os.LookupEnv(k); ok {
			report("env %s=%s", k, v)
		}
	}
	report("ready")
	deadline := time.Now().Add(30 * time.Second)
	for _, s := range socks {
		if !s.Inherited {
			continue
		}
		if s.Listener != nil {
			s.Listener.(interface{ SetDeadline(time.Time) error }).SetDeadline(deadline)
			c, err := s.Listener.Accept()
			if err != nil {
				t.Fatal(err)
			}
			c.SetDeadline(deadline)
			line, err := bufio.NewReader(c).ReadString('\n')
			if err != nil {
				t.Fatal(err)
			}
			io.WriteString(c, "child: "+line)
			c.Close()
		} else {
			s.PacketConn.SetDeadline(deadline)
			buf := make([]byte, 100)
			n, from, err := s.PacketConn.ReadFrom(buf)
			if err != nil {
				t.Fatal(err)
			}
			s.PacketConn.WriteTo(append([]byte("child: "), buf[:n]...), from)
		}
	}
	report("done")
}

// child is a run of TestHelperProcess.
type child struct {
	t      *testing.T
	cmd    *exec.Cmd
	out    *bufio.Scanner
	stderr bytes.Buffer
	lines  []string
}

func startChild(t *testing.T, files []*os.File, env ...string) *child {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestHelperProcess$", "-test.count=1")
	cmd.Env = append(slices.DeleteFunc(os.Environ(), func(kv string) bool {
		return strings.HasPrefix(kv, "LISTEN_")
	}), append([]string{
		"GO_WANT_HELPER=1",
		// Under -race the child would otherwise wait a second before exiting.
		"GORACE=" + strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0"),
	}, env...)...)
	cmd.ExtraFiles = files // descriptors 3, 4, ... in the child
	c := &child{t: t, cmd: cmd}
	cmd.Stderr = &c.stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c.out = bufio.NewScanner(stdout)
	return c
}

// until reads the child's report up to a line starting with one of the
// prefixes, which it returns ("" at the end of the output).
func (c *child) until(prefixes ...string) string {
	for c.out.Scan() {
		line := c.out.Text()
		c.lines = append(c.lines, line)
		for _, p := range prefixes {
			if strings.HasPrefix(line, p) {
				return line
			}
		}
	}
	return ""
}

// wait reads the rest of the report and waits for the child to exit.
func (c *child) wait() {
	c.until()
	if err := c.cmd.Wait(); err != nil {
		c.t.Errorf("child: %v\nstdout:\n%s\nstderr:\n%s", err, strings.Join(c.lines, "\n"), c.stderr.String())
	}
}

func (c *child) sockets() []string {
	var out []string
	for _, l := range c.lines {
		if s, ok := strings.CutPrefix(l, "socket "); ok {
			out = append(out, s)
		}
	}
	return out
}

func (c *child) env() []string {
	var out []string
	for _, l := range c.lines {
		if s, ok := strings.CutPrefix(l, "env "); ok {
			out = append(out, s)
		}
	}
	return out
}

func TestSocketActivation(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		l.Close()
		t.Fatal(err)
	}
	tcpAddr, udpAddr := l.Addr().String(), pc.LocalAddr().String()
	lf, err := l.(*net.TCPListener).File()
	if err != nil {
		t.Fatal(err)
	}
	pf, err := pc.(*net.UDPConn).File()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	unixPath := filepath.Join(dir, "own.sock")
	c := startChild(t, []*os.File{lf, pf},
		"HELPER_SET_PID=1", "LISTEN_FDS=2", "LISTEN_FDNAMES=web:dgram",
		"HELPER_ADDRS=tcp/"+tcpAddr+" unix/"+unixPath)
	// The child holds the sockets now: closing ours leaves it the only
	// one that can accept on them.
	for _, cl := range []io.Closer{lf, pf, l, pc} {
		cl.Close()
	}
	defer c.wait()
	if line := c.until("ready", "error"); line != "ready" {
		t.Fatalf("child did not get ready: %q", line)
	}
	want := []string{
		"0 tcp/" + tcpAddr + " true",    // configured, matched to the inherited socket
		"1 unix/" + unixPath + " false", // configured, opened by the child
		"2 udp/" + udpAddr + " true",    // inherited, matching nothing: appended
	}
	if got := c.sockets(); !slices.Equal(got, want) {
		t.Errorf("child's sockets:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if env := c.env(); len(env) > 0 {
		t.Errorf("child still has %v after Open", env)
	}

	conn, err := net.Dial("tcp", tcpAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	io.WriteString(conn, "hello\n")
	if line, err := bufio.NewReader(conn).ReadString('\n'); err != nil || line != "child: hello\n" {
		t.Errorf("tcp reply %q, %v", line, err)
	}

	u, err := net.Dial("udp", udpAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	u.SetDeadline(time.Now().Add(30 * time.Second))
	io.WriteString(u, "datagram")
	buf := make([]byte, 100)
	if n, err := u.Read(buf); err != nil || string(buf[:n]) != "child: datagram" {
		t.Errorf("udp reply %q, %v", buf[:n], err)
	}
	if line := c.until("done"); line != "done" {
		t.Errorf("child did not finish serving")
	}
}

func TestSocketActivationOtherPID(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	lf, err := l.(*net.TCPListener).File()
	if err != nil {
		t.Fatal(err)
	}
	defer lf.Close()
	// The child is not process 1: the variables are meant for another.
	c := startChild(t, []*os.File{lf}, "LISTEN_PID=1", "LISTEN_FDS=1", "HELPER_ADDRS=tcp/127.0.0.1:0")
	defer c.wait()
	if line := c.until("ready", "error"); line != "ready" {
		t.Fatalf("child did not get ready: %q", line)
	}
	got := c.sockets()
	if len(got) != 1 || !strings.HasSuffix(got[0], " false") || strings.Contains(got[0], l.Addr().String()) {
		t.Errorf("child's sockets %q, want just its own tcp/127.0.0.1 listener", got)
	}
	if env := c.env(); len(env) > 0 {
		t.Errorf("child still has %v after Open", env)
	}
}

func TestSocketActivationNotASocket(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "plain"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	c := startChild(t, []*os.File{f}, "HELPER_SET_PID=1", "LISTEN_FDS=1", "LISTEN_FDNAMES=conf",
		"HELPER_ADDRS=tcp/127.0.0.1:0")
	defer c.wait()
	line := c.until("ready", "error")
	if !strings.HasPrefix(line, "error ") || !strings.Contains(line, "descriptor 3 (conf) is not a socket") {
		t.Errorf("child reported %q, want an error naming descriptor 3 (conf)", line)
	}
}
