package server_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"

	"example.com/appliance/shared/daemon"
	"example.com/appliance/shared/nettest"
	"example.com/appliance/tsserv/internal/server"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// testService is a tsserv Service running in this process on loopback
// ports and Unix sockets in a temporary directory.
type testService struct {
	*server.Service
	Base *daemon.Base
	Dir  string // holds the Unix sockets
	Log  *nettest.Buffer

	// Bound addresses without their network prefix, e.g. 127.0.0.1:40123
	// or /tmp/.../ts.sock; "" for a network not configured.
	TCP4, UDP4, TCP6, UDP6, Unix, Unixgram string

	mu   sync.Mutex
	next server.Config // what the reload func returns
}

// allListen is the default set of sockets a testService serves.
func allListen(dir string) []string {
	return []string{
		"tcp/127.0.0.1:0", "udp/127.0.0.1:0",
		"tcp/[::1]:0", "udp/[::1]:0",
		"unix/" + filepath.Join(dir, "ts.sock"),
		"unixgram/" + filepath.Join(dir, "ts.dgram"),
	}
}

// startService starts a Service on every kind of socket, with the admin
// listener off, after applying each edit to the config. The service is
// shut down at the end of the test; its log is shown if the test failed.
func startService(t testing.TB, edits ...func(*server.Config)) *testService {
	t.Helper()
	return newService(t, edits...).start(t)
}

// newService is startService without the start.
func newService(t testing.TB, edits ...func(*server.Config)) *testService {
	t.Helper()
	ts := &testService{Dir: sockDir(t), Log: new(nettest.Buffer)}
	cfg := server.Default()
	cfg.Listen = allListen(ts.Dir)
	cfg.Admin.Listen = ""
	cfg.Log.Level = "debug"
	for _, edit := range edits {
		edit(&cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("test config: %v", err)
	}
	ts.next = cfg
	ts.Base = daemon.NewBase("tsserv", cfg.Common, ts.Log)
	ts.Service = server.New(cfg, ts.Base, func() (server.Config, error) {
		ts.mu.Lock()
		defer ts.mu.Unlock()
		return ts.next, nil
	})
	return ts
}

// start starts the service and arranges its shutdown at the test's end.
func (ts *testService) start(t testing.TB) *testService {
	t.Helper()
	nettest.StartService(t, ts, ts.Log)
	for _, a := range ts.Addrs() {
		network, addr, _ := strings.Cut(a, "/")
		v6 := strings.HasPrefix(addr, "[")
		switch {
		case network == "tcp" && v6:
			ts.TCP6 = addr
		case network == "tcp":
			ts.TCP4 = addr
		case network == "udp" && v6:
			ts.UDP6 = addr
		case network == "udp":
			ts.UDP4 = addr
		case network == "unix":
			ts.Unix = addr
		case network == "unixgram":
			ts.Unixgram = addr
		default:
			t.Fatalf("unexpected bound address %q", a)
		}
	}
	return ts
}

// reloadWith makes the next Reload return cfg after edit, then reloads.
func (ts *testService) reloadWith(t testing.TB, edit func(*server.Config)) {
	t.Helper()
	ts.mu.Lock()
	edit(&ts.next)
	err := ts.next.Validate()
	ts.mu.Unlock()
	if err != nil {
		t.Fatalf("reload config: %v", err)
	}
	if err := ts.Reload(); err != nil {
		t.Fatalf("Reload: %v", err)
	}
}

// metric returns the value of a tsserv counter or gauge for one transport.
func (ts *testService) metric(t testing.TB, name, transport string) float64 {
	t.Helper()
	return metricValue(t, ts.Base.Registry, name, transport)
}

func metricValue(t testing.TB, reg *prometheus.Registry, name, transport string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "transport" && l.GetValue() == transport {
					switch {
					case m.Counter != nil:
						return m.Counter.GetValue()
					case m.Gauge != nil:
						return m.Gauge.GetValue()
					}
				}
			}
		}
	}
	t.Fatalf("metric %s{transport=%q} not found", name, transport)
	return 0
}

// port returns the port of a host:port address.
func port(t testing.TB, addr string) string {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// sockDir returns a temporary directory whose paths fit in a sun_path.
func sockDir(t testing.TB) string {
	t.Helper()
	dir := t.TempDir()
	if len(dir) > 80 { // a long TMPDIR or test name: unix socket paths stop at 107 bytes
		var err error
		if dir, err = os.MkdirTemp("", "tsserv"); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(dir) })
	}
	return dir
}

// The reply formats, as regular expressions for the "[<time>] " prefix.
var stampRE = map[string]string{
	// C's ctime and Python's time.ctime(): "Wed Nov 25 11:56:10 2026", day padded with a space.
	"ctime":   `\[(Mon|Tue|Wed|Thu|Fri|Sat|Sun) (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) [ 123]\d \d\d:\d\d:\d\d \d{4}\] `,
	"rfc3339": `\[\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(Z|[+-]\d\d:\d\d)\] `,
	"unix":    `\[\d+\] `,
}

// checkReply checks that reply is "[<time in format>] msg" and that the
// time is now, in local time.
func checkReply(t testing.TB, format, reply, msg string) {
	t.Helper()
	if err := replyError(format, reply, msg); err != nil {
		t.Error(err)
	}
}

func replyError(format, reply, msg string) error {
	re := regexp.MustCompile(`^` + stampRE[format] + regexp.QuoteMeta(msg) + `$`)
	if !re.MatchString(reply) {
		return fmt.Errorf("reply %q does not match %s", reply, re)
	}
	stamp := reply[1:strings.Index(reply, "] ")]
	var when time.Time
	var err error
	switch format {
	case "ctime":
		when, err = time.ParseInLocation("Mon Jan _2 15:04:05 2006", stamp, time.Local)
	case "rfc3339":
		when, err = time.Parse(time.RFC3339, stamp)
		if err == nil {
			_, off := when.Zone()
			if _, local := when.In(time.Local).Zone(); off != local {
				err = fmt.Errorf("offset %d s, local time's is %d s", off, local)
			}
		}
	case "unix":
		var sec int64
		sec, err = strconv.ParseInt(stamp, 10, 64)
		when = time.Unix(sec, 0)
	}
	if err != nil {
		return fmt.Errorf("reply %q: stamp: %v", reply, err)
	}
	if d := time.Since(when); d < -time.Minute || d > time.Minute {
		return fmt.Errorf("reply %q: stamp is %v away from now (%v)", reply, d, time.Now())
	}
	return nil
}

// lines splits a tool's output into lines, without the last line's end.
func lines(out string) []string {
	out = strings.TrimSuffix(out, "\n")
	if out == "" {
		return nil
	}
	return strings.Split(out, "\n")
}

// checkLines checks that out holds exactly one reply line per message.
func checkLines(t testing.TB, format, out string, msgs []string) {
	t.Helper()
	got := lines(out)
	if len(got) != len(msgs) {
		t.Fatalf("%d reply lines, want %d:\n%s", len(got), len(msgs), out)
	}
	for i, msg := range msgs {
		checkReply(t, format, got[i], msg)
	}
}

// run runs a program to completion with stdin and returns its stdout.
func run(t testing.TB, stdin string, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), "PYTHONIOENCODING=utf-8", "PYTHONDONTWRITEBYTECODE=1")
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %q: %v\nstdout:\n%s\nstderr:\n%s", filepath.Base(name), args, err, stdout.String(), stderr.String())
	}
	if stderr.Len() > 0 {
		t.Logf("%s %q stderr:\n%s", filepath.Base(name), args, stderr.String())
	}
	return stdout.String()
}

// exchange runs a program that forwards its stdin to a datagram socket and
// what comes back to its stdout (nc -u, socat): it writes msg, reads stdout
// until a reply to msg has arrived, then closes stdin and waits for the
// program to exit. Closing stdin right away would race with the reply.
func exchange(t testing.TB, msg string, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(stdin, msg); err != nil {
		t.Errorf("write to %s: %v", name, err)
	}
	var out []byte
	buf := make([]byte, 4096)
	for !bytes.HasSuffix(out, []byte("] "+msg)) {
		n, err := stdout.Read(buf)
		out = append(out, buf[:n]...)
		if err != nil {
			break // EOF: the program quit (or was killed at the deadline)
		}
	}
	stdin.Close()
	rest, _ := io.ReadAll(stdout)
	out = append(out, rest...)
	if err := cmd.Wait(); err != nil {
		t.Errorf("%s %q: %v\nstdout: %q\nstderr:\n%s", filepath.Base(name), args, err, out, stderr.String())
	}
	return string(out)
}

// timeoutFromNow is the deadline for a test's own socket operations.
func timeoutFromNow() time.Time { return time.Now().Add(15 * time.Second) }

// dial connects to a test service with a deadline for the whole test.
func dial(t testing.TB, network, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial(network, addr)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(timeoutFromNow())
	t.Cleanup(func() { c.Close() })
	return c
}

// isClosed reports whether err is how a client sees the server close its
// connection: EOF, or a reset when the server closed with data unread.
func isClosed(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// refused reports whether a dial found nothing listening.
func refused(err error) bool {
	return errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, os.ErrNotExist)
}
