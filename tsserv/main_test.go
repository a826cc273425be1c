package main

// Tests of the built tsserv and tsclnt binaries: the command line, exit
// statuses, logs, signals, the admin endpoints and systemd sockets.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"example.com/appliance/shared/nettest"
)

// The binaries under test, built once by TestMain.
var tsservBin, tsclntBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "tsserv-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	tsservBin, tsclntBin = filepath.Join(dir, "tsserv"), filepath.Join(dir, "tsclnt")
	code := 1
	if build(tsservBin, ".") && build(tsclntBin, "./tsclnt") {
		code = m.Run()
		if code == 0 {
			if err := goleak.Find(); err != nil {
				fmt.Fprintln(os.Stderr, "goleak:", err)
				code = 1
			}
		}
	}
	os.RemoveAll(dir)
	os.Exit(code)
}

func build(out, pkg string) bool {
	cmd := exec.Command("go", "build", "-o", out, pkg)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		fmt.Fprintf(os.Stderr, "go build -o %s %s: %v\n", out, pkg, err)
		return false
	}
	return true
}

// runBin runs a binary to completion and returns its exit status and output.
func runBin(t *testing.T, stdin string, bin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
	case ctx.Err() != nil:
		t.Fatalf("%s %q still running after 20s; killed\nstderr:\n%s", filepath.Base(bin), args, errb.String())
	case errors.As(err, &ee):
		code = ee.ExitCode()
	default:
		t.Fatalf("%s %q: %v", filepath.Base(bin), args, err)
	}
	return code, out.String(), errb.String()
}

func TestCommandLine(t *testing.T) {
	tests := []struct {
		name   string
		args   []string
		code   int
		stderr []string // each must appear
	}{
		{"help", []string{"-help"}, 0, []string{"Usage: tsserv [flags]", "-listen", "-config", "Exit status", "Examples:"}},
		{"h", []string{"-h"}, 0, []string{"-listen"}},
		{"unknown flag", []string{"-bogus"}, 2, []string{"flag provided but not defined: -bogus", "-listen"}},
		{"bad flag value", []string{"-max-conns", "many"}, 2, []string{"-max-conns"}},
		{"argument", []string{"-admin", "none", "serve"}, 2, []string{`unexpected argument "serve"`}},
		{"listen without port", []string{"-admin", "none", "-listen", "tcp/127.0.0.1"}, 2, []string{"command line: listen:", "missing port"}},
		{"listen unknown network", []string{"-admin", "none", "-listen", "sctp/127.0.0.1:0"}, 2, []string{"listen:", `unknown network "sctp"`}},
		{"listen relative path", []string{"-admin", "none", "-listen", "unix/ts.sock"}, 2, []string{"listen:", "absolute path"}},
		{"admin over udp", []string{"-admin", "udp/127.0.0.1:0", "-listen", "tcp/127.0.0.1:0"}, 2, []string{"admin.listen"}},
		{"unknown format", []string{"-admin", "none", "-format", "iso"}, 2, []string{"format:", `"iso"`}},
		{"unknown log level", []string{"-admin", "none", "-log-level", "loud"}, 2, []string{"log.level"}},
		{"config unknown key", []string{"-config", "testdata/unknown_key.toml"}, 78, []string{"testdata/unknown_key.toml:5:", "limits.max_conn", "unknown key"}},
		{"config bad listen", []string{"-config", "testdata/bad_listen.toml"}, 78, []string{"testdata/bad_listen.toml:3:", "listen", `"tcp/127.0.0.1"`}},
		{"config wrong type", []string{"-config", "testdata/bad_type.toml"}, 78, []string{"testdata/bad_type.toml:3:", "limits.max_conns", "wrong type"}},
		{"config bad format", []string{"-config", "testdata/bad_format.toml"}, 78, []string{"testdata/bad_format.toml:2:", "format", `"iso8601"`}},
		{"config missing", []string{"-config", "testdata/no-such-file.toml"}, 78, []string{"no-such-file.toml", "no such file"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			code, stdout, stderr := runBin(t, "", tsservBin, tt.args...)
			if code != tt.code {
				t.Errorf("exit %d, want %d\nstderr:\n%s", code, tt.code, stderr)
			}
			for _, want := range tt.stderr {
				if !strings.Contains(stderr, want) {
					t.Errorf("stderr does not say %q:\n%s", want, stderr)
				}
			}
			if stdout != "" {
				t.Errorf("stdout %q, want nothing", stdout)
			}
			if tt.code == 78 && strings.Count(strings.TrimSpace(stderr), "\n") > 0 {
				t.Errorf("a config error takes one line, got:\n%s", stderr)
			}
		})
	}
	t.Run("version", func(t *testing.T) {
		code, stdout, stderr := runBin(t, "", tsservBin, "-version")
		if code != 0 || strings.TrimSpace(stdout+stderr) == "" {
			t.Errorf("-version: exit %d, output %q %q", code, stdout, stderr)
		}
	})
}

// proc is a tsserv process with its JSON log read as it comes.
type proc struct {
	t   *testing.T
	cmd *exec.Cmd

	mu      sync.Mutex
	records []map[string]any
	raw     bytes.Buffer
	seen    int           // records already matched by waitLog
	changed chan struct{} // a record arrived, or the log ended
	logDone chan struct{} // stderr reached EOF
	exited  chan struct{} // the process was waited for
	code    int
}

// startServer starts tsserv with a JSON log on stderr and waits until it
// logs "ready". It is killed at the end of the test if still running.
func startServer(t *testing.T, args []string, setup func(*exec.Cmd)) *proc {
	t.Helper()
	return startCmd(t, exec.Command(tsservBin, append([]string{"-log-format", "json"}, args...)...), setup)
}

// startCmd is startServer for a command already made.
func startCmd(t *testing.T, cmd *exec.Cmd, setup func(*exec.Cmd)) *proc {
	t.Helper()
	if setup != nil {
		setup(cmd)
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s := &proc{t: t, cmd: cmd, changed: make(chan struct{}, 1), logDone: make(chan struct{}), exited: make(chan struct{})}
	go s.readLog(stderr)
	go func() {
		<-s.logDone // Wait closes the pipe: read it to the end first
		err := cmd.Wait()
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			s.code = ee.ExitCode()
		} else if err != nil {
			s.code = -1
		}
		close(s.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-s.exited:
		default:
			cmd.Process.Kill()
			<-s.exited
		}
		if t.Failed() {
			t.Logf("tsserv log:\n%s", s.log())
		}
	})
	s.waitLog("ready", nil)
	return s
}

func (s *proc) readLog(r io.Reader) {
	defer close(s.logDone)
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		var rec map[string]any
		err := json.Unmarshal(sc.Bytes(), &rec)
		s.mu.Lock()
		s.raw.Write(sc.Bytes())
		s.raw.WriteByte('\n')
		if err == nil {
			s.records = append(s.records, rec)
		}
		s.mu.Unlock()
		select {
		case s.changed <- struct{}{}:
		default:
		}
	}
}

func (s *proc) log() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.raw.String()
}

// waitLog waits for the next record with msg (and for which match holds,
// if set), after those found before, and returns it.
func (s *proc) waitLog(msg string, match func(map[string]any) bool) map[string]any {
	s.t.Helper()
	timeout := time.After(15 * time.Second)
	for {
		s.mu.Lock()
		for i := s.seen; i < len(s.records); i++ {
			if rec := s.records[i]; rec["msg"] == msg && (match == nil || match(rec)) {
				s.seen = i + 1
				s.mu.Unlock()
				return rec
			}
		}
		s.mu.Unlock()
		select {
		case <-s.changed:
			continue
		case <-s.logDone:
			// The log is complete: one last look.
			s.mu.Lock()
			found := false
			for i := s.seen; i < len(s.records); i++ {
				found = found || s.records[i]["msg"] == msg && (match == nil || match(s.records[i]))
			}
			s.mu.Unlock()
			if found {
				continue
			}
			s.t.Fatalf("tsserv's log ended without %q", msg)
		case <-timeout:
			s.t.Fatalf("tsserv did not log %q within 15s", msg)
		}
	}
}

// listening returns the addresses tsserv logged "listening" on, by network.
func (s *proc) listening() map[string]map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]map[string]any)
	for _, rec := range s.records {
		if rec["msg"] == "listening" {
			addr, _ := rec["addr"].(string)
			network, _, _ := strings.Cut(addr, "/")
			out[network] = rec
		}
	}
	return out
}

func (s *proc) signal(sig os.Signal) {
	s.t.Helper()
	if err := s.cmd.Process.Signal(sig); err != nil {
		s.t.Fatalf("signal %v: %v", sig, err)
	}
}

// wait waits for tsserv to exit and returns its status.
func (s *proc) wait() int {
	s.t.Helper()
	select {
	case <-s.exited:
		return s.code
	case <-time.After(20 * time.Second):
		s.t.Fatal("tsserv still running 20s after it was told to stop")
		return 0
	}
}

// hostPort returns the host:port of a logged address such as tcp/127.0.0.1:40123.
func hostPort(t *testing.T, rec map[string]any) string {
	t.Helper()
	addr, _ := rec["addr"].(string)
	_, hp, ok := strings.Cut(addr, "/")
	if !ok {
		t.Fatalf("logged address %q", addr)
	}
	return hp
}

func portOf(t *testing.T, hp string) string {
	t.Helper()
	_, p, err := net.SplitHostPort(hp)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

var stampRE = map[string]string{
	"ctime":   `\[(Mon|Tue|Wed|Thu|Fri|Sat|Sun) (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) [ 123]\d \d\d:\d\d:\d\d \d{4}\] `,
	"rfc3339": `\[\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(Z|[+-]\d\d:\d\d)\] `,
	"unix":    `\[\d+\] `,
}

func checkReply(t *testing.T, format, reply, msg string) {
	t.Helper()
	re := regexp.MustCompile(`^` + stampRE[format] + regexp.QuoteMeta(msg) + `$`)
	if !re.MatchString(reply) {
		t.Errorf("reply %q does not match %s", reply, re)
	}
}

// tsclnt runs the built client and returns its output, failing the test
// unless it exits 0.
func tsclnt(t *testing.T, stdin string, args ...string) string {
	t.Helper()
	code, stdout, stderr := runBin(t, stdin, tsclntBin, args...)
	if code != 0 {
		t.Fatalf("tsclnt %q: exit %d\n%s", args, code, stderr)
	}
	return strings.TrimSuffix(stdout, "\n")
}

func TestServeReloadStop(t *testing.T) {
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "tsserv.toml")
	writeFile(t, cfgPath, "format = \"ctime\"\n\n[log]\nlevel = \"info\"\n")
	s := startServer(t, []string{"-config", cfgPath,
		"-listen", "tcp/127.0.0.1:0", "-listen", "udp/127.0.0.1:0", "-admin", "tcp/127.0.0.1:0"}, nil)

	ls := s.listening()
	tcp, udp := ls["tcp"], ls["udp"]
	if tcp == nil || udp == nil || len(ls) != 2 {
		t.Fatalf("listening on %v, want one tcp and one udp socket", ls)
	}
	for _, rec := range ls {
		if rec["inherited"] != false || rec["format"] != "ctime" || !strings.Contains(rec["addr"].(string), "/127.0.0.1:") {
			t.Errorf("listening record %v", rec)
		}
	}
	tcpPort, udpPort := portOf(t, hostPort(t, tcp)), portOf(t, hostPort(t, udp))
	admin := "http://" + hostPort(t, s.waitLogAny("admin listening"))

	checkReply(t, "ctime", tsclnt(t, "", "-p", tcpPort, "-m", "hello", "127.0.0.1"), "hello")
	checkReply(t, "ctime", tsclnt(t, "", "-u", "-p", udpPort, "-m", "datagram", "127.0.0.1"), "datagram")
	out := tsclnt(t, "a\nb c\n", "-4", "-p", tcpPort)
	got := strings.Split(strings.TrimSuffix(out, "> "), "\n")
	if len(got) != 3 || got[2] != "" || !strings.HasPrefix(got[0], "> ") || !strings.HasPrefix(got[1], "> ") {
		t.Fatalf("interactive tsclnt printed %q", out)
	}
	checkReply(t, "ctime", got[0][2:], "a")
	checkReply(t, "ctime", got[1][2:], "b c")

	noKeepAlive := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 10 * time.Second}
	for path, want := range map[string]string{"/healthz": "ok\n", "/readyz": "ready\n"} {
		if code, body, _ := nettest.Get(t, noKeepAlive, admin+path); code != 200 || body != want {
			t.Errorf("GET %s: %d %q, want 200 %q", path, code, body, want)
		}
	}
	code, metrics, _ := nettest.Get(t, noKeepAlive, admin+"/metrics")
	if code != 200 {
		t.Fatalf("GET /metrics: %d", code)
	}
	for _, want := range []string{
		"\ntsserv_requests_total{transport=\"tcp\"} 3\n",
		"\ntsserv_requests_total{transport=\"udp\"} 1\n",
		"\ntsserv_connections_total{transport=\"tcp\"} 2\n",
		"\ntsserv_connections_active{transport=\"tcp\"} 0\n",
		"\nprocess_open_fds ",
		"\ngo_goroutines ",
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %q", strings.TrimSpace(want))
		}
	}

	// SIGHUP re-reads the file: the log level and the format change.
	writeFile(t, cfgPath, "format = \"unix\"\n\n[log]\nlevel = \"debug\"\n")
	s.signal(syscall.SIGHUP)
	s.waitLog("log level changed", nil)
	s.waitLog("config reloaded", nil)
	checkReply(t, "unix", tsclnt(t, "", "-p", tcpPort, "-m", "after reload", "127.0.0.1"), "after reload")
	s.waitLog("connection closed", func(r map[string]any) bool { return r["level"] == "DEBUG" })

	// A config that no longer loads is refused and the running one kept.
	writeFile(t, cfgPath, "format = \"unix\"\nbogus = 1\n")
	s.signal(syscall.SIGHUP)
	rec := s.waitLog("reload failed; keeping the running config", nil)
	if err, _ := rec["err"].(string); !strings.Contains(err, "bogus") {
		t.Errorf("reload failure logged %v; want the key named", rec)
	}
	checkReply(t, "unix", tsclnt(t, "", "-p", tcpPort, "-m", "kept", "127.0.0.1"), "kept")

	s.signal(syscall.SIGTERM)
	s.waitLog("shutting down", func(r map[string]any) bool { return r["signal"] == "terminated" })
	s.waitLog("stopped", nil)
	if code := s.wait(); code != 0 {
		t.Errorf("exit %d after SIGTERM, want 0", code)
	}
	if code, _, stderr := runBin(t, "", tsclntBin, "-timeout", "2s", "-p", tcpPort, "-m", "gone", "127.0.0.1"); code != 1 || !strings.Contains(stderr, "connection refused") {
		t.Errorf("tsclnt after tsserv stopped: exit %d, %q", code, stderr)
	}
}

// waitLogAny finds a record with msg anywhere in the log so far or to come.
func (s *proc) waitLogAny(msg string) map[string]any {
	s.t.Helper()
	s.mu.Lock()
	for _, rec := range s.records {
		if rec["msg"] == msg {
			s.mu.Unlock()
			return rec
		}
	}
	s.mu.Unlock()
	return s.waitLog(msg, nil)
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestDrainHeldOpen: a connection whose reply cannot be written holds the
// drain open; a second signal, or the end of the grace period, ends it
// with exit status 1.
func TestDrainHeldOpen(t *testing.T) {
	tests := []struct {
		name   string
		grace  string
		second bool
		want   string // logged before the exit
	}{
		{"second signal", "30s", true, "second signal; exiting now"},
		{"grace period over", "300ms", false, "grace period over; closed the connections still open"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := startServer(t, []string{"-listen", "tcp/127.0.0.1:0", "-admin", "none", "-shutdown-grace", tt.grace}, nil)
			c, err := net.Dial("tcp", hostPort(t, s.listening()["tcp"]))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			floodUntilStalled(t, c)
			s.signal(syscall.SIGTERM)
			s.waitLog("shutting down", nil)
			if tt.second {
				s.signal(syscall.SIGTERM)
			}
			s.waitLog(tt.want, nil)
			if code := s.wait(); code != 1 {
				t.Errorf("exit %d, want 1", code)
			}
		})
	}
}

// floodUntilStalled sends requests without reading the replies until the
// server stops reading: its reply write is then blocked, and will stay so
// for write_timeout (30s by default).
func floodUntilStalled(t *testing.T, c net.Conn) {
	t.Helper()
	c.(*net.TCPConn).SetReadBuffer(4096)
	chunk := []byte(strings.Repeat("x\n", 8<<10))
	for sent := 0; ; sent += len(chunk) {
		if sent > 256<<20 {
			t.Fatal("sent 256 MiB without reading and the server still reads")
		}
		// A second without progress: the server is not reading.
		c.SetWriteDeadline(time.Now().Add(time.Second))
		if _, err := c.Write(chunk); err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				return
			}
			t.Fatal(err)
		}
	}
}

// TestSystemdSocketActivation passes tsserv a TCP listener and a UDP
// socket the way systemd does: descriptors 3 and 4, LISTEN_FDS=2, and
// LISTEN_PID set to tsserv's own pid (a shell sets it and execs tsserv).
func TestSystemdSocketActivation(t *testing.T) {
	sh := nettest.NeedTool(t, "sh")
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	lf, err := l.(*net.TCPListener).File()
	if err != nil {
		t.Fatal(err)
	}
	defer lf.Close()
	pf, err := pc.(*net.UDPConn).File()
	if err != nil {
		t.Fatal(err)
	}
	defer pf.Close()
	tcpAddr, udpAddr := l.Addr().String(), pc.LocalAddr().String()
	args := []string{"-listen", "tcp/" + tcpAddr, "-listen", "udp/" + udpAddr, "-admin", "none", "-log-format", "json"}

	t.Run("inherited", func(t *testing.T) {
		s := startServerVia(t, sh, args, func(cmd *exec.Cmd) {
			cmd.ExtraFiles = []*os.File{lf, pf}
			cmd.Env = append(os.Environ(), "LISTEN_FDS=2", "LISTEN_FDNAMES=tsserv.socket:tsserv.socket")
		})
		// The test still holds both sockets: tsserv serves them only
		// because it took the ones it was given instead of binding its own.
		ls := s.listening()
		for network, addr := range map[string]string{"tcp": tcpAddr, "udp": udpAddr} {
			rec := ls[network]
			if rec == nil || rec["addr"] != network+"/"+addr || rec["inherited"] != true {
				t.Errorf("%s: listening record %v, want %s/%s inherited=true", network, rec, network, addr)
			}
		}
		checkReply(t, "ctime", tsclnt(t, "", "-p", portOf(t, tcpAddr), "-m", "socket activated", "127.0.0.1"), "socket activated")
		checkReply(t, "ctime", tsclnt(t, "", "-u", "-p", portOf(t, udpAddr), "-m", "datagram", "127.0.0.1"), "datagram")
		s.signal(syscall.SIGTERM)
		s.waitLog("stopped", nil)
		if code := s.wait(); code != 0 {
			t.Errorf("exit %d, want 0", code)
		}
	})

	t.Run("LISTEN_PID of another process", func(t *testing.T) {
		// The descriptors are not tsserv's to take: it binds the addresses
		// itself, finds them taken, and fails to start.
		cmd := exec.Command(tsservBin, args...)
		cmd.ExtraFiles = []*os.File{lf, pf}
		cmd.Env = append(os.Environ(), "LISTEN_FDS=2", "LISTEN_PID=1")
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		err := cmd.Run()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 1 || !strings.Contains(stderr.String(), "address already in use") {
			t.Errorf("tsserv with foreign LISTEN_PID: %v\n%s", err, stderr.String())
		}
	})
}

// startServerVia starts tsserv through sh -c 'LISTEN_PID=$$ exec ...', so
// that LISTEN_PID is tsserv's pid as systemd would set it.
func startServerVia(t *testing.T, sh string, args []string, setup func(*exec.Cmd)) *proc {
	t.Helper()
	cmdArgs := append([]string{"-c", `LISTEN_PID=$$ exec "$0" "$@"`, tsservBin}, args...)
	return startCmd(t, exec.Command(sh, cmdArgs...), setup)
}

// TestLocalTime: the stamps are in the server's local time zone (TZ).
func TestLocalTime(t *testing.T) {
	const zone = "Asia/Kolkata" // +05:30 all year
	loc, err := time.LoadLocation(zone)
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("time zone data (tzdata) is needed: %v", err)
		}
		t.Skipf("no time zone data: %v", err)
	}
	s := startServer(t, []string{"-listen", "tcp/127.0.0.1:0", "-admin", "none", "-format", "rfc3339"}, func(cmd *exec.Cmd) {
		cmd.Env = append(os.Environ(), "TZ="+zone)
	})
	reply := tsclnt(t, "", "-p", portOf(t, hostPort(t, s.listening()["tcp"])), "-m", "namaste", "127.0.0.1")
	checkReply(t, "rfc3339", reply, "namaste")
	stamp, _, _ := strings.Cut(strings.TrimPrefix(reply, "["), "]")
	when, err := time.Parse(time.RFC3339, stamp)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(stamp, "+05:30") || time.Since(when).Abs() > time.Minute {
		t.Errorf("stamp %q, want now in %s (%s)", stamp, zone, time.Now().In(loc).Format(time.RFC3339))
	}
	s.signal(syscall.SIGINT)
	if code := s.wait(); code != 0 {
		t.Errorf("exit %d after SIGINT, want 0", code)
	}
}
