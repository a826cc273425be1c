package daemon

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"go.uber.org/goleak"

	"example.com/appliance/shared/listen"
	"example.com/appliance/shared/netsrv"
	"example.com/appliance/shared/nettest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

var discard = slog.New(slog.DiscardHandler)

func TestNewBaseLogs(t *testing.T) {
	for _, format := range []string{"text", "json"} {
		t.Run(format, func(t *testing.T) {
			c := DefaultCommon("")
			c.Log.Format = format
			var out nettest.Buffer
			b := NewBase("testd", c, &out)
			if b.Name != "testd" || b.Registry == nil || b.Metrics == nil || b.Level.Level() != slog.LevelInfo {
				t.Fatalf("NewBase = %+v", b)
			}
			b.Log.Debug("hidden at info")
			b.Log.Info("hello", "k", "v")
			c.Log.Level = "debug"
			b.Reload(c)
			b.Log.Debug("shown at debug")
			b.Reload(c) // no change: no line

			lines := parseLog(t, format, out.String())
			var msgs []string
			for _, l := range lines {
				if l["daemon"] != "testd" {
					t.Errorf("line %v has daemon=%q, want testd", l, l["daemon"])
				}
				msgs = append(msgs, l["msg"])
			}
			// Other lines (e.g. a start-up line) may come first.
			i := slices.Index(msgs, "hello")
			if i < 0 {
				t.Fatalf("no hello line in %q", out.String())
			}
			if want := []string{"hello", "log level changed", "shown at debug"}; !slices.Equal(msgs[i:], want) {
				t.Errorf("messages %q, want %q", msgs[i:], want)
			}
			if l := lines[i]; l["level"] != "INFO" || l["k"] != "v" {
				t.Errorf("hello line %v", l)
			}
			if l := lines[i+1]; l["new_level"] != "DEBUG" {
				t.Errorf("level change line %v", l)
			}
		})
	}
	t.Run("level from the config", func(t *testing.T) {
		c := DefaultCommon("")
		c.Log.Level = "warn"
		var out nettest.Buffer
		b := NewBase("testd", c, &out)
		b.Log.Info("hidden")
		b.Log.Warn("shown")
		if s := out.String(); strings.Contains(s, "hidden") || !strings.Contains(s, "msg=shown") {
			t.Errorf("log at warn: %q", s)
		}
	})
}

// parseLog reads log output into one map per line, from JSON or logfmt.
func parseLog(t *testing.T, format, out string) []map[string]string {
	t.Helper()
	var lines []map[string]string
	for _, line := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		if line == "" {
			continue
		}
		m := map[string]string{}
		if format == "json" {
			var raw map[string]any
			if err := json.Unmarshal([]byte(line), &raw); err != nil {
				t.Fatalf("log line %q is not JSON: %v", line, err)
			}
			for k, v := range raw {
				m[k] = fmt.Sprint(v)
			}
		} else {
			if strings.HasPrefix(line, "{") {
				t.Fatalf("text log line %q looks like JSON", line)
			}
			for _, f := range strings.Fields(line) {
				k, v, _ := strings.Cut(f, "=")
				m[k] = strings.Trim(v, `"`)
			}
			// Messages with spaces are quoted: take them whole.
			if i := strings.Index(line, `msg="`); i >= 0 {
				rest := line[i+len(`msg="`):]
				m["msg"] = rest[:strings.Index(rest, `"`)]
			}
		}
		lines = append(lines, m)
	}
	return lines
}

// adminClient talks HTTP to an admin listener at a tcp/ or unix// address.
func adminClient(t *testing.T, addr string) (*http.Client, string) {
	t.Helper()
	a, err := listen.Parse(addr)
	if err != nil {
		t.Fatal(err)
	}
	tr := &http.Transport{DisableKeepAlives: true}
	base := "http://" + a.Address
	if a.Network == "unix" {
		tr.DialContext = func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", a.Address)
		}
		base = "http://admin"
	}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}, base
}

func TestAdmin(t *testing.T) {
	for _, tt := range []struct {
		name, addr string
	}{
		{"tcp4", "tcp/127.0.0.1:0"},
		{"tcp6", "tcp/[::1]:0"},
		{"unix", "unix/%s/admin.sock"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			b := NewBase("testd", DefaultCommon(""), io.Discard)
			addr, err := b.StartAdmin(strings.ReplaceAll(tt.addr, "%s", dir))
			if err != nil {
				t.Fatal(err)
			}
			stopped := false
			defer func() {
				if !stopped {
					b.StopAdmin(context.Background())
				}
			}()
			a, err := listen.Parse(addr)
			if err != nil {
				t.Fatalf("StartAdmin returned %q: %v", addr, err)
			}
			if a.Network == "tcp" {
				if _, port, _ := net.SplitHostPort(a.Address); port == "0" || port == "" {
					t.Errorf("StartAdmin returned %q, want the bound port", addr)
				}
			}
			c, url := adminClient(t, addr)

			code, body, hdr := nettest.Get(t, c, url+"/metrics")
			if code != http.StatusOK || !strings.HasPrefix(hdr.Get("Content-Type"), "text/plain") {
				t.Fatalf("/metrics: %d %s\n%s", code, hdr.Get("Content-Type"), body)
			}
			p := expfmt.NewTextParser(model.UTF8Validation)
			mfs, err := p.TextToMetricFamilies(strings.NewReader(body))
			if err != nil {
				t.Fatalf("/metrics is not in the Prometheus text format: %v\n%s", err, body)
			}
			for _, name := range []string{"testd_connections_active", "testd_requests_total", "go_goroutines", "process_open_fds"} {
				if mfs[name] == nil {
					t.Errorf("/metrics has no %s", name)
				}
			}
			if mf := mfs["testd_connections_active"]; mf != nil && mf.GetType().String() != "GAUGE" {
				t.Errorf("testd_connections_active is a %v", mf.GetType())
			}

			if code, body, _ := nettest.Get(t, c, url+"/healthz"); code != http.StatusOK || body != "ok\n" {
				t.Errorf("/healthz: %d %q", code, body)
			}
			if code, _, _ := nettest.Get(t, c, url+"/readyz"); code != http.StatusServiceUnavailable {
				t.Errorf("/readyz before SetReady: %d, want 503", code)
			}
			for _, ready := range []bool{true, false, true} {
				b.SetReady(ready)
				want := map[bool]int{true: http.StatusOK, false: http.StatusServiceUnavailable}[ready]
				if code, _, _ := nettest.Get(t, c, url+"/readyz"); code != want {
					t.Errorf("/readyz after SetReady(%v): %d, want %d", ready, code, want)
				}
			}
			if code, _, _ := nettest.Get(t, c, url+"/nope"); code != http.StatusNotFound {
				t.Errorf("/nope: %d", code)
			}
			res, err := c.Post(url+"/healthz", "text/plain", nil)
			if err != nil {
				t.Fatal(err)
			}
			res.Body.Close()
			if res.StatusCode != http.StatusMethodNotAllowed {
				t.Errorf("POST /healthz: %d", res.StatusCode)
			}

			b.StopAdmin(context.Background())
			stopped = true
			if _, err := c.Get(url + "/healthz"); err == nil {
				t.Error("admin listener still answers after StopAdmin")
			}
			if a.Network == "unix" {
				if _, err := os.Lstat(a.Address); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("admin socket file after StopAdmin: %v", err)
				}
			}
			b.StopAdmin(context.Background()) // a second stop does nothing
		})
	}
}

func TestReadyzStartsNotReady(t *testing.T) {
	b := NewBase("testd", DefaultCommon(""), io.Discard)
	addr, err := b.StartAdmin("tcp/127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer b.StopAdmin(context.Background())
	c, url := adminClient(t, addr)
	if code, body, _ := nettest.Get(t, c, url+"/readyz"); code != http.StatusServiceUnavailable || body != "not ready\n" {
		t.Errorf("/readyz before SetReady: %d %q", code, body)
	}
	b.SetReady(true)
	if code, body, _ := nettest.Get(t, c, url+"/readyz"); code != http.StatusOK || body != "ready\n" {
		t.Errorf("/readyz after SetReady(true): %d %q", code, body)
	}
}

func TestAdminMetricsCountConnections(t *testing.T) {
	b := NewBase("testd", DefaultCommon(""), io.Discard)
	addr, err := b.StartAdmin("tcp/127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer b.StopAdmin(context.Background())
	srv := &netsrv.Server{Handler: echo{}, Logger: discard, Metrics: b.Metrics}
	socks, err := listen.Open([]string{"tcp/127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	errc := Serve(srv, socks)
	defer func() {
		srv.Close()
		checkNoError(t, errc)
	}()
	conn := nettest.Dial(t, "tcp", strings.TrimPrefix(socks[0].Local(), "tcp/"))
	nettest.RoundTrip(t, conn, "one\n", "echo: one\n")
	c, url := adminClient(t, addr)
	_, body, _ := nettest.Get(t, c, url+"/metrics")
	for _, want := range []string{`testd_connections_active{transport="tcp"} 1`, `testd_requests_total{transport="tcp"} 1`} {
		if !strings.Contains(body, want+"\n") {
			t.Errorf("/metrics has no line %q", want)
		}
	}
}

func TestStartAdminErrors(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name, addr, wantErr string
	}{
		{"not an address", "localhost:9121", "admin listener: listen address"},
		{"udp", "udp/127.0.0.1:0", `admin listener: "udp/127.0.0.1:0" is not a tcp/ or unix// address`},
		{"unixgram", "unixgram/" + file + ".dgram", `admin listener: "unixgram/` + file + `.dgram" is not a tcp/ or unix// address`},
		{"in use", "tcp/" + busy.Addr().String(), "admin listener: listen on tcp/" + busy.Addr().String()},
		{"file at the path", "unix/" + file, "admin listener: socket path"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			b := NewBase("testd", DefaultCommon(""), io.Discard)
			addr, err := b.StartAdmin(tt.addr)
			if err == nil {
				b.StopAdmin(context.Background())
				t.Fatalf("StartAdmin(%q) = %q", tt.addr, addr)
			}
			if addr != "" || !strings.HasPrefix(err.Error(), tt.wantErr) {
				t.Errorf("StartAdmin(%q) = %q, %v; want an error starting %q", tt.addr, addr, err, tt.wantErr)
			}
			b.StopAdmin(context.Background()) // nothing to stop
		})
	}
	t.Run("none", func(t *testing.T) {
		b := NewBase("testd", DefaultCommon(""), io.Discard)
		if addr, err := b.StartAdmin(""); addr != "" || err != nil {
			t.Errorf(`StartAdmin("") = %q, %v`, addr, err)
		}
		b.StopAdmin(context.Background())
	})
}

// fakeService records what Run asks of it.
type fakeService struct {
	startErr  error
	reloadErr error
	failed    chan error
	// shutdown, when set, is what Shutdown does.
	shutdown func(ctx context.Context) error
	// reload, when set, runs in Reload.
	reload func()

	mu       sync.Mutex
	calls    []string
	deadline time.Time // of Shutdown's context
}

func (f *fakeService) record(call string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, call)
}

func (f *fakeService) Calls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

func (f *fakeService) Start() error {
	f.record("start")
	return f.startErr
}

func (f *fakeService) Reload() error {
	f.record("reload")
	if f.reload != nil {
		f.reload()
	}
	return f.reloadErr
}

func (f *fakeService) Shutdown(ctx context.Context) error {
	dl, ok := ctx.Deadline()
	if !ok {
		panic("Shutdown's context has no deadline")
	}
	f.mu.Lock()
	f.deadline = dl
	f.mu.Unlock()
	f.record("shutdown")
	if f.shutdown != nil {
		return f.shutdown(ctx)
	}
	return nil
}

func (f *fakeService) Failed() <-chan error { return f.failed }

// run starts r.Run on a goroutine, recording Ready calls in svc.
type running struct {
	t    *testing.T
	sig  chan os.Signal
	code chan int
}

func startRun(t *testing.T, svc *fakeService, grace func() time.Duration) *running {
	t.Helper()
	rn := &running{t: t, sig: make(chan os.Signal), code: make(chan int, 1)}
	r := &Runner{
		Log:     discard,
		Service: svc,
		Grace:   grace,
		Signals: rn.sig,
		Ready:   func(ok bool) { svc.record(fmt.Sprintf("ready %v", ok)) },
	}
	go func() { rn.code <- r.Run() }()
	return rn
}

// send delivers a signal to Run; it fails if Run has returned instead.
func (rn *running) send(s os.Signal) {
	rn.t.Helper()
	select {
	case rn.sig <- s:
	case code := <-rn.code:
		rn.code <- code
		rn.t.Fatalf("Run returned %d before taking %v", code, s)
	case <-time.After(10 * time.Second):
		rn.t.Fatalf("Run did not take %v in 10s", s)
	}
}

func (rn *running) wait() int {
	rn.t.Helper()
	select {
	case code := <-rn.code:
		return code
	case <-time.After(10 * time.Second):
		rn.t.Fatal("Run did not return in 10s")
		return -1
	}
}

func TestRun(t *testing.T) {
	const grace = time.Minute
	errServing := errors.New("serving broke")
	for _, tt := range []struct {
		name     string
		svc      *fakeService
		grace    time.Duration
		signals  []os.Signal
		fail     error // sent on Failed after the signals
		wantCode int
		want     []string
	}{
		{
			name:     "SIGTERM",
			svc:      &fakeService{},
			signals:  []os.Signal{syscall.SIGTERM},
			wantCode: ExitOK,
			want:     []string{"start", "ready true", "ready false", "shutdown"},
		},
		{
			name:     "SIGINT",
			svc:      &fakeService{},
			signals:  []os.Signal{syscall.SIGINT},
			wantCode: ExitOK,
			want:     []string{"start", "ready true", "ready false", "shutdown"},
		},
		{
			name:     "SIGHUP reloads",
			svc:      &fakeService{},
			signals:  []os.Signal{syscall.SIGHUP, syscall.SIGHUP, syscall.SIGTERM},
			wantCode: ExitOK,
			want:     []string{"start", "ready true", "reload", "reload", "ready false", "shutdown"},
		},
		{
			name:     "reload error keeps running",
			svc:      &fakeService{reloadErr: errors.New("bad config")},
			signals:  []os.Signal{syscall.SIGHUP, syscall.SIGHUP, syscall.SIGTERM},
			wantCode: ExitOK,
			want:     []string{"start", "ready true", "reload", "reload", "ready false", "shutdown"},
		},
		{
			name: "drain past the grace period",
			svc: &fakeService{shutdown: func(ctx context.Context) error {
				<-ctx.Done()
				return ctx.Err()
			}},
			grace:    20 * time.Millisecond,
			signals:  []os.Signal{syscall.SIGTERM},
			wantCode: ExitFailure,
			want:     []string{"start", "ready true", "ready false", "shutdown"},
		},
		{
			name:     "shutdown error",
			svc:      &fakeService{shutdown: func(context.Context) error { return errors.New("close failed") }},
			signals:  []os.Signal{syscall.SIGTERM},
			wantCode: ExitFailure,
			want:     []string{"start", "ready true", "ready false", "shutdown"},
		},
		{
			name:     "serving failed",
			svc:      &fakeService{failed: make(chan error, 1)},
			signals:  []os.Signal{syscall.SIGHUP},
			fail:     errServing,
			wantCode: ExitFailure,
			want:     []string{"start", "ready true", "reload", "ready false", "shutdown"},
		},
		{
			name:     "start failed",
			svc:      &fakeService{startErr: errors.New("no sockets")},
			wantCode: ExitFailure,
			want:     []string{"start"},
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			g := tt.grace
			if g == 0 {
				g = grace
			}
			rn := startRun(t, tt.svc, func() time.Duration { return g })
			var before time.Time
			for _, s := range tt.signals {
				before = time.Now()
				rn.send(s)
			}
			if tt.fail != nil {
				before = time.Now()
				tt.svc.failed <- tt.fail
			}
			code := rn.wait()
			after := time.Now()
			if code != tt.wantCode {
				t.Errorf("Run() = %d, want %d", code, tt.wantCode)
			}
			if got := tt.svc.Calls(); !slices.Equal(got, tt.want) {
				t.Errorf("calls %q, want %q", got, tt.want)
			}
			if slices.Contains(tt.want, "shutdown") {
				tt.svc.mu.Lock()
				dl := tt.svc.deadline
				tt.svc.mu.Unlock()
				if dl.Before(before.Add(g)) || dl.After(after.Add(g)) {
					t.Errorf("Shutdown's deadline is %v after the signal, want the grace period %v", dl.Sub(before), g)
				}
			}
		})
	}
}

func TestRunGraceReadAtShutdown(t *testing.T) {
	var mu sync.Mutex
	grace := time.Second
	svc := &fakeService{}
	svc.reload = func() {
		mu.Lock()
		grace = time.Hour
		mu.Unlock()
	}
	rn := startRun(t, svc, func() time.Duration {
		mu.Lock()
		defer mu.Unlock()
		return grace
	})
	rn.send(syscall.SIGHUP)
	before := time.Now()
	rn.send(syscall.SIGTERM)
	if code := rn.wait(); code != ExitOK {
		t.Errorf("Run() = %d", code)
	}
	svc.mu.Lock()
	defer svc.mu.Unlock()
	if d := svc.deadline.Sub(before); d < time.Hour || d > time.Hour+time.Minute {
		t.Errorf("Shutdown's deadline %v after the signal, want the reloaded grace of 1h", d)
	}
}

func TestRunSecondSignalForcesExit(t *testing.T) {
	for _, second := range []os.Signal{syscall.SIGTERM, syscall.SIGINT} {
		t.Run(second.String(), func(t *testing.T) {
			entered := make(chan struct{})
			release := make(chan struct{})
			returned := make(chan struct{})
			svc := &fakeService{shutdown: func(context.Context) error {
				defer close(returned)
				close(entered)
				<-release
				return nil
			}}
			rn := startRun(t, svc, func() time.Duration { return time.Hour })
			rn.send(syscall.SIGTERM)
			<-entered
			rn.send(syscall.SIGHUP) // ignored while draining
			rn.send(second)
			if code := rn.wait(); code != ExitFailure {
				t.Errorf("Run() after a second signal = %d, want %d", code, ExitFailure)
			}
			if got, want := svc.Calls(), []string{"start", "ready true", "ready false", "shutdown"}; !slices.Equal(got, want) {
				t.Errorf("calls %q, want %q (no reload while draining)", got, want)
			}
			close(release)
			<-returned
		})
	}
}

// TestRunProcessSignals runs with the process's own signals: the service
// sends itself SIGHUP once started and SIGTERM once reloaded.
func TestRunProcessSignals(t *testing.T) {
	svc := &fakeService{}
	svc.reload = func() { syscall.Kill(os.Getpid(), syscall.SIGTERM) }
	start := func() error { return syscall.Kill(os.Getpid(), syscall.SIGHUP) }
	r := &Runner{Log: discard, Service: startHook{svc, start}, Grace: func() time.Duration { return time.Second }}
	if code := r.Run(); code != ExitOK {
		t.Errorf("Run() = %d, want %d", code, ExitOK)
	}
	if got, want := svc.Calls(), []string{"reload", "shutdown"}; !slices.Equal(got, want) {
		t.Errorf("calls %q, want %q", got, want)
	}
}

// startHook replaces a service's Start.
type startHook struct {
	*fakeService
	start func() error
}

func (s startHook) Start() error { return s.start() }

// echo answers each line with "echo: line" and each datagram likewise.
type echo struct{}

func (echo) ServeConn(ctx context.Context, c net.Conn) error {
	r := bufio.NewReader(c)
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return err
		}
		start := time.Now()
		_, err = io.WriteString(c, "echo: "+line)
		netsrv.Observe(ctx, start, err)
		if err != nil {
			return err
		}
	}
}

func (echo) ServePacket(_ context.Context, w netsrv.PacketWriter, p []byte, from net.Addr) error {
	_, err := w.WriteTo(append([]byte("echo: "), p...), from)
	return err
}

// checkNoError checks that Serve has reported nothing. A report still on
// its way is missed, but one is never made up.
func checkNoError(t *testing.T, errc <-chan error) {
	t.Helper()
	select {
	case err := <-errc:
		t.Errorf("Serve reported %v", err)
	default:
	}
}

func TestServe(t *testing.T) {
	dir := t.TempDir()
	srv := &netsrv.Server{Handler: echo{}, PacketHandler: echo{}, Logger: discard}
	socks, err := listen.Open([]string{"tcp/127.0.0.1:0", "udp/127.0.0.1:0", "tcp/[::1]:0", "udp/[::1]:0",
		"unix/" + dir + "/s.sock"})
	if err != nil {
		t.Fatal(err)
	}
	errc := Serve(srv, socks)
	addrs := Addrs(socks)
	if len(addrs) != len(socks) {
		t.Fatalf("Addrs = %q", addrs)
	}
	for i, s := range socks {
		if addrs[i] != s.Local() {
			t.Errorf("Addrs[%d] = %q, want %q", i, addrs[i], s.Local())
		}
		a, err := listen.Parse(addrs[i])
		if err != nil {
			t.Fatal(err)
		}
		c := nettest.Dial(t, a.Network, a.Address)
		nettest.RoundTrip(t, c, "one\n", "echo: one\n")
		nettest.RoundTrip(t, c, "two\n", "echo: two\n")
	}
	if err := srv.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	checkNoError(t, errc)
	if _, err := net.Dial("tcp", strings.TrimPrefix(addrs[0], "tcp/")); err == nil {
		t.Error("tcp socket still accepting after Shutdown")
	}
}

func TestServeReportsErrors(t *testing.T) {
	// No PacketHandler: serving the udp socket fails at once.
	srv := &netsrv.Server{Handler: echo{}, Logger: discard}
	socks, err := listen.Open([]string{"tcp/127.0.0.1:0", "udp/127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	defer socks[1].Close() // ServePacket did not take it
	errc := Serve(srv, socks)
	select {
	case err := <-errc:
		want := "serve " + socks[1].Local() + ": netsrv: ServePacket needs a PacketHandler"
		if err.Error() != want {
			t.Errorf("Serve reported %q, want %q", err, want)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve reported nothing in 10s")
	}
	// The tcp socket is served all the same.
	nettest.RoundTrip(t, nettest.Dial(t, "tcp", strings.TrimPrefix(socks[0].Local(), "tcp/")), "still\n", "echo: still\n")
	if err := srv.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	checkNoError(t, errc)
}

func TestAddrs(t *testing.T) {
	if got := Addrs(nil); len(got) != 0 {
		t.Errorf("Addrs(nil) = %q", got)
	}
}
