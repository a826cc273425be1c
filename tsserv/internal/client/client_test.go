package client_test

// tsclnt against servers that are not tsserv: nothing listening, silence,
// a hang-up, and replies framed differently. Tests against the real
// server are in ../server/interop_test.go.

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"example.com/appliance/tsserv/internal/client"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func runMain(t *testing.T, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = client.Main(args, strings.NewReader(stdin), &out, &errb)
	return code, out.String(), errb.String()
}

func TestUsage(t *testing.T) {
	tests := []struct {
		name   string
		args   []string
		code   int
		stderr string
	}{
		{"help", []string{"-help"}, 0, "Usage: tsclnt [flags] [host]"},
		{"unknown flag", []string{"-bogus"}, 2, "flag provided but not defined: -bogus"},
		{"bad timeout", []string{"-timeout", "soon"}, 2, "-timeout"},
		{"bad port", []string{"-p", "http"}, 2, "-p"},
		{"-4 and -6", []string{"-4", "-6", "-m", "x"}, 2, "at most one of -4 and -6"},
		{"two hosts", []string{"-m", "x", "a.example", "b.example"}, 2, "give one host"},
		{"host and -unix", []string{"-unix", "/nonexistent.sock", "-m", "x", "a.example"}, 2, "give one host, or -unix"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := runMain(t, "", tt.args...)
			if code != tt.code || !strings.Contains(stderr, tt.stderr) {
				t.Errorf("exit %d, stderr %q; want %d and %q", code, stderr, tt.code, tt.stderr)
			}
			if stdout != "" {
				t.Errorf("stdout %q", stdout)
			}
		})
	}
}

// fakeServer accepts TCP connections and runs serve on each.
func fakeServer(t *testing.T, serve func(c net.Conn)) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(10 * time.Second))
				serve(c)
			})
		}
	})
	t.Cleanup(func() {
		l.Close()
		wg.Wait()
	})
	return l.Addr().String()
}

// boundNotListening returns a TCP port that refuses connections for the
// whole test: bound, so no one else takes it, but not listening.
func boundNotListening(t *testing.T) string {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	return strconv.Itoa(sa.(*syscall.SockaddrInet4).Port)
}

func port(t *testing.T, addr string) string {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestFailures(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp) // where a unixgram client binds its socket
	silentUDP, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silentUDP.Close()
	hangUp := fakeServer(t, func(c net.Conn) { bufio.NewReader(c).ReadString('\n') })
	silent := fakeServer(t, func(c net.Conn) { io.Copy(io.Discard, c) })
	refused := boundNotListening(t)

	tests := []struct {
		name   string
		args   []string
		stdin  string
		stdout string
		stderr string
	}{
		{"tcp refused", []string{"-p", refused, "-m", "x", "127.0.0.1"}, "", "",
			"tsclnt: connect to 127.0.0.1:" + refused + ": connection refused"},
		{"tcp refused interactive", []string{"-p", refused, "127.0.0.1"}, "a\n", "",
			"connection refused"},
		{"unix socket missing", []string{"-unix", filepath.Join(tmp, "none.sock"), "-m", "x"}, "", "",
			"none.sock: no such file or directory"},
		{"unixgram socket missing", []string{"-u", "-unix", filepath.Join(tmp, "none.dgram"), "-m", "x"}, "", "",
			"none.dgram: no such file or directory"},
		{"udp silent", []string{"-u", "-timeout", "100ms", "-p", port(t, silentUDP.LocalAddr().String()), "-m", "x", "127.0.0.1"}, "", "",
			"no reply from 127.0.0.1:" + port(t, silentUDP.LocalAddr().String()) + " within 100ms (is tsserv running there?)"},
		{"tcp silent", []string{"-timeout", "100ms", "-p", port(t, silent), "-m", "x", "127.0.0.1"}, "", "",
			"no reply from 127.0.0.1:" + port(t, silent) + " within 100ms"},
		{"tcp hang-up", []string{"-p", port(t, hangUp), "-m", "x", "127.0.0.1"}, "", "",
			"closed the connection without a reply"},
		{"interactive hang-up", []string{"-p", port(t, hangUp), "127.0.0.1"}, "a\nb\n", "> ",
			"closed the connection without a reply"},
		{"two lines in -m", []string{"-p", port(t, silent), "-m", "a\nb", "127.0.0.1"}, "", "",
			"a message must be a single line"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := runMain(t, tt.stdin, tt.args...)
			if code != 1 {
				t.Errorf("exit %d, want 1", code)
			}
			if !strings.HasPrefix(stderr, "tsclnt: ") || !strings.Contains(stderr, tt.stderr) || strings.Count(stderr, "\n") != 1 {
				t.Errorf("stderr %q, want one tsclnt: line with %q", stderr, tt.stderr)
			}
			if stdout != tt.stdout {
				t.Errorf("stdout %q, want %q", stdout, tt.stdout)
			}
			if ents, _ := os.ReadDir(tmp); len(ents) > 0 {
				t.Errorf("left %s in TMPDIR", ents[0].Name())
			}
		})
	}
}

// TestOtherServersReplies: replies from a server in the SocketServer
// style (CRLF) and long replies are printed whole, without their line end.
func TestOtherServersReplies(t *testing.T) {
	long := strings.Repeat("long ", 3000) // past bufio's 4 KiB buffer
	echo := fakeServer(t, func(c net.Conn) {
		r := bufio.NewReader(c)
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return
			}
			msg := strings.TrimSuffix(line, "\n")
			end := "\r\n"
			if msg == "long" {
				msg, end = long, "\n"
			}
			if _, err := io.WriteString(c, "["+time.Now().Format(time.ANSIC)+"] "+msg+end); err != nil {
				return
			}
		}
	})
	code, stdout, stderr := runMain(t, "crlf\nlong\n", "-p", port(t, echo), "127.0.0.1")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	got := strings.Split(stdout, "\n")
	if len(got) != 3 || got[2] != "> " {
		t.Fatalf("stdout %.200q: want two replies then a prompt", stdout)
	}
	if !strings.HasSuffix(got[0], "] crlf") || strings.Contains(got[0], "\r") {
		t.Errorf("CRLF reply printed as %q", got[0])
	}
	if !strings.HasSuffix(got[1], "] "+long) {
		t.Errorf("long reply cut: %d bytes printed", len(got[1]))
	}
}
