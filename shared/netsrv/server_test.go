package netsrv

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	dto "github.com/prometheus/client_model/go"
	"go.uber.org/goleak"

	"example.com/appliance/shared/nettest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// echo answers each line with "echo: line" and each datagram likewise.
type echo struct {
	// gate, when set, is received from before each reply is written.
	gate chan struct{}
	// started, when set, is sent to once a request has been read.
	started chan struct{}
}

func (e *echo) ServeConn(ctx context.Context, c net.Conn) error {
	r := bufio.NewReader(c)
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return err
		}
		start := time.Now()
		if e.started != nil {
			e.started <- struct{}{}
		}
		if e.gate != nil {
			<-e.gate
		}
		if strings.HasPrefix(line, "panic") {
			panic("asked to")
		}
		Observe(ctx, start, nil) // before the reply, so a client that has it sees the count
		if _, err := io.WriteString(c, "echo: "+line); err != nil {
			return err
		}
	}
}

func (e *echo) ServePacket(_ context.Context, w PacketWriter, p []byte, from net.Addr) error {
	if string(p) == "panic" {
		panic("asked to")
	}
	_, err := w.WriteTo(append([]byte("echo: "), p...), from)
	return err
}

func newServer(t *testing.T, h *echo) (*Server, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	s := &Server{Handler: h, PacketHandler: h, Logger: slog.New(slog.DiscardHandler), Metrics: NewMetrics(reg, "test")}
	return s, reg
}

// serve runs s on l in the background and checks Serve's result at cleanup.
func serve(t *testing.T, s *Server, l net.Listener) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- s.Serve(l) }()
	t.Cleanup(func() {
		s.Close()
		if err := <-done; !errors.Is(err, ErrServerClosed) {
			t.Errorf("Serve returned %v, want ErrServerClosed", err)
		}
	})
}

func servePacket(t *testing.T, s *Server, pc net.PacketConn) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- s.ServePacket(pc) }()
	t.Cleanup(func() {
		s.Close()
		if err := <-done; !errors.Is(err, ErrServerClosed) {
			t.Errorf("ServePacket returned %v, want ErrServerClosed", err)
		}
	})
}

func TestServing(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		network, addr string
	}{
		{"tcp4", "127.0.0.1:0"},
		{"tcp6", "[::1]:0"},
		{"unix", filepath.Join(dir, "s.sock")},
		{"udp4", "127.0.0.1:0"},
		{"udp6", "[::1]:0"},
		{"unixgram", filepath.Join(dir, "s.dgram")},
	}
	for _, tt := range tests {
		t.Run(tt.network, func(t *testing.T) {
			s, reg := newServer(t, &echo{})
			var c net.Conn
			var transport string
			switch tt.network {
			case "tcp4", "tcp6", "unix":
				l, err := net.Listen(tt.network, tt.addr)
				if err != nil {
					t.Fatal(err)
				}
				serve(t, s, l)
				c, err = net.Dial(tt.network, l.Addr().String())
				if err != nil {
					t.Fatal(err)
				}
				transport = strings.TrimRight(tt.network, "46")
			case "udp4", "udp6":
				pc, err := net.ListenPacket(tt.network, tt.addr)
				if err != nil {
					t.Fatal(err)
				}
				servePacket(t, s, pc)
				c, err = net.Dial(tt.network, pc.LocalAddr().String())
				if err != nil {
					t.Fatal(err)
				}
				transport = "udp"
			case "unixgram":
				pc, err := net.ListenPacket(tt.network, tt.addr)
				if err != nil {
					t.Fatal(err)
				}
				servePacket(t, s, pc)
				local := &net.UnixAddr{Name: filepath.Join(dir, "client.dgram"), Net: "unixgram"}
				c, err = net.DialUnix("unixgram", local, pc.LocalAddr().(*net.UnixAddr))
				if err != nil {
					t.Fatal(err)
				}
				transport = "unixgram"
			}
			defer c.Close()
			for _, msg := range []string{"one\n", "two\n"} {
				if _, err := io.WriteString(c, msg); err != nil {
					t.Fatal(err)
				}
				buf := make([]byte, 100)
				c.SetReadDeadline(time.Now().Add(10 * time.Second))
				n, err := c.Read(buf)
				if err != nil {
					t.Fatal(err)
				}
				if got, want := string(buf[:n]), "echo: "+msg; got != want {
					t.Errorf("reply %q, want %q", got, want)
				}
			}
			c.Close()
			if err := s.Shutdown(context.Background()); err != nil { // waits for the handlers to be counted
				t.Fatal(err)
			}
			if got := testutil.ToFloat64(s.Metrics.requests.WithLabelValues(transport)); got != 2 {
				t.Errorf("requests_total{transport=%q} = %v, want 2", transport, got)
			}
			if problems, err := promlint.NewWithMetricFamilies(gather(t, reg)).Lint(); err != nil || len(problems) > 0 {
				t.Errorf("metric lint: %v %v", problems, err)
			}
		})
	}
}

func TestZeroServerNeedsHandler(t *testing.T) {
	var s Server
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if err := s.Serve(l); err == nil || errors.Is(err, ErrServerClosed) {
		t.Errorf("Serve with no handler: %v", err)
	}
}

func TestShutdownWaitsForRequestsInFlight(t *testing.T) {
	h := &echo{gate: make(chan struct{}), started: make(chan struct{})}
	s, _ := newServer(t, h)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	serve(t, s, l)
	busy := dial(t, l.Addr().String())
	idle := dial(t, l.Addr().String())
	io.WriteString(busy, "slow\n")
	<-h.started // the request is in the handler

	shut := make(chan error, 1)
	go func() { shut <- s.Shutdown(context.Background()) }()

	// The idle connection is closed without a reply; new ones are refused.
	if n, err := idle.Read(make([]byte, 10)); err == nil {
		t.Errorf("idle connection read %d bytes during shutdown", n)
	}
	select {
	case err := <-shut:
		t.Fatalf("Shutdown returned %v with a request in flight", err)
	default:
	}
	close(h.gate)
	line, err := bufio.NewReader(busy).ReadString('\n')
	if err != nil || line != "echo: slow\n" {
		t.Errorf("in-flight reply %q, %v", line, err)
	}
	if err := <-shut; err != nil {
		t.Errorf("Shutdown: %v", err)
	}
	if _, err := net.Dial("tcp", l.Addr().String()); err == nil {
		t.Error("dial after shutdown succeeded")
	}
}

func TestShutdownDeadlineClosesConnections(t *testing.T) {
	h := &echo{gate: make(chan struct{}), started: make(chan struct{})}
	s, _ := newServer(t, h)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	serve(t, s, l)
	c := dial(t, l.Addr().String())
	io.WriteString(c, "stuck\n")
	<-h.started
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.Shutdown(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Shutdown = %v, want context.Canceled", err)
	}
	if _, err := c.Read(make([]byte, 10)); err == nil {
		t.Error("connection still open after the grace period")
	}
	close(h.gate) // let the handler return so no goroutine leaks
}

func TestMaxConns(t *testing.T) {
	s, _ := newServer(t, &echo{})
	watchConns(s)
	s.SetLimits(Limits{MaxConns: 2})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	serve(t, s, l)
	a, b := dial(t, l.Addr().String()), dial(t, l.Addr().String())
	roundTrip(t, a, "a\n")
	roundTrip(t, b, "b\n")
	c := dial(t, l.Addr().String())
	if n, err := c.Read(make([]byte, 10)); err == nil {
		t.Fatalf("third connection read %d bytes; want it refused", n)
	}
	if got := testutil.ToFloat64(s.Metrics.connsRejected.WithLabelValues("tcp")); got != 1 {
		t.Errorf("connections_rejected_total = %v, want 1", got)
	}
	// A place frees up when a client leaves.
	a.Close()
	roundTrip(t, b, "still\n")
	waitFor(t, s, func() bool { return s.ActiveConns() == 1 })
	roundTrip(t, dial(t, l.Addr().String()), "d\n")
}

func TestPanicIsRecovered(t *testing.T) {
	s, _ := newServer(t, &echo{})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	serve(t, s, l)
	c := dial(t, l.Addr().String())
	io.WriteString(c, "panic\n")
	if _, err := c.Read(make([]byte, 10)); err == nil {
		t.Error("panicking connection not closed")
	}
	roundTrip(t, dial(t, l.Addr().String()), "after\n")

	s.SetLimits(Limits{PacketWorkers: 1}) // so "after" is read once the panic is counted
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	servePacket(t, s, pc)
	u := nettest.Dial(t, "udp", pc.LocalAddr().String())
	io.WriteString(u, "panic")
	roundTrip(t, u, "after")
	if got := testutil.ToFloat64(s.Metrics.panics); got != 2 {
		t.Errorf("panics_total = %v, want 2", got)
	}
}

func TestTimeouts(t *testing.T) {
	s, _ := newServer(t, &echo{})
	s.SetLimits(Limits{ReadTimeout: 50 * time.Millisecond, IdleTimeout: 100 * time.Millisecond})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	serve(t, s, l)
	for _, first := range []bool{true, false} {
		c := dial(t, l.Addr().String())
		if !first {
			roundTrip(t, c, "x\n")
		}
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := c.Read(make([]byte, 10)); !errors.Is(err, io.EOF) {
			t.Errorf("silent client (first read %v): got %v, want EOF from the server's timeout", first, err)
		}
	}
}

func TestWriteTimeoutCutsOffClientThatNeverReads(t *testing.T) {
	flood := StreamHandlerFunc(func(ctx context.Context, c net.Conn) error {
		buf := make([]byte, 64<<10)
		for {
			if _, err := c.Write(buf); err != nil {
				return err
			}
		}
	})
	s := &Server{Handler: flood}
	watchConns(s)
	s.SetLimits(Limits{WriteTimeout: 100 * time.Millisecond})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	serve(t, s, l)
	dial(t, l.Addr().String()) // never reads
	waitFor(t, s, func() bool { return s.ActiveConns() == 1 })
	waitFor(t, s, func() bool { return s.ActiveConns() == 0 })
}

func TestOversizeDatagramDropped(t *testing.T) {
	s, _ := newServer(t, &echo{})
	s.SetLimits(Limits{MaxMessageBytes: 10})
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	servePacket(t, s, pc)
	u := nettest.Dial(t, "udp", pc.LocalAddr().String())
	io.WriteString(u, strings.Repeat("x", 11))
	roundTrip(t, u, "short")
	if got := testutil.ToFloat64(s.Metrics.tooLarge.WithLabelValues("udp")); got != 1 {
		t.Errorf("messages_rejected_total = %v, want 1", got)
	}
}

func TestTrackListenerWithHTTPServer(t *testing.T) {
	s := &Server{}
	watchConns(s)
	s.SetLimits(Limits{MaxConns: 1})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	release := make(chan struct{})
	hs := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			<-release
		}
		io.WriteString(w, "ok")
	})}
	done := make(chan error, 1)
	go func() { done <- hs.Serve(s.TrackListener(l)) }()
	url := "http://" + l.Addr().String()
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}
	res, err := client.Get(url + "/")
	if err != nil {
		t.Fatal(err)
	}
	io.ReadAll(res.Body)
	res.Body.Close()
	waitFor(t, s, func() bool { return s.ActiveConns() == 1 })

	// The one place is taken by the kept-alive connection: a second client is refused.
	other := &http.Transport{}
	defer other.CloseIdleConnections()
	if _, err := (&http.Client{Transport: other}).Get(url + "/"); err == nil {
		t.Error("second connection served past MaxConns=1")
	}
	tr.CloseIdleConnections()
	waitFor(t, s, func() bool { return s.ActiveConns() == 0 })

	if err := hs.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := s.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := <-done; !errors.Is(err, http.ErrServerClosed) {
		t.Errorf("http Serve = %v", err)
	}
	close(release)
}

func TestShutdownStopsPacketReadersButLetsRepliesOut(t *testing.T) {
	s, _ := newServer(t, &echo{})
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.ServePacket(pc) }()
	u := nettest.Dial(t, "udp", pc.LocalAddr().String())
	roundTrip(t, u, "before")
	if err := s.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := <-done; !errors.Is(err, ErrServerClosed) {
		t.Errorf("ServePacket = %v", err)
	}
	if err := s.ServePacket(pc); !errors.Is(err, ErrServerClosed) {
		t.Errorf("ServePacket after Shutdown = %v", err)
	}
}

func gather(t *testing.T, reg *prometheus.Registry) []*dto.MetricFamily {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	return mfs
}

func dial(t *testing.T, addr string) net.Conn { return nettest.Dial(t, "tcp", addr) }

func roundTrip(t *testing.T, c net.Conn, msg string) {
	t.Helper()
	nettest.RoundTrip(t, c, msg, "echo: "+msg)
}

// watchConns makes waitFor on s wake whenever a connection opens or closes.
func watchConns(s *Server) {
	s.init()
	ch := make(chan struct{}, 1)
	s.testHookConns = func() {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
	s.testConnsChanged = ch
}

// waitFor waits until the server's connections reach a state.
func waitFor(t *testing.T, s *Server, cond func() bool) {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for !cond() {
		select {
		case <-s.testConnsChanged:
		case <-timeout:
			t.Fatal("condition not reached in 10s")
		}
	}
}

// TestUDPReplyLeavesFromTheRequestsAddress binds the wildcard address, as
// the appliance does, and sends to a loopback address other than the one
// the kernel would pick as the reply's source: a connected client socket
// accepts the reply only if it comes from where the request went.
func TestUDPReplyLeavesFromTheRequestsAddress(t *testing.T) {
	tests := []struct {
		name, network, bind, dialNetwork, host string
	}{
		{"ipv4 socket", "udp4", "0.0.0.0:0", "udp4", "127.0.0.2"},
		{"dual-stack socket, ipv4 client", "udp", "[::]:0", "udp4", "127.0.0.2"},
		{"dual-stack socket, ipv6 client", "udp", "[::]:0", "udp6", "::1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, _ := newServer(t, &echo{})
			pc, err := net.ListenPacket(tt.network, tt.bind)
			if err != nil {
				t.Fatal(err)
			}
			servePacket(t, s, pc)
			port := pc.LocalAddr().(*net.UDPAddr).Port
			c := nettest.Dial(t, tt.dialNetwork, net.JoinHostPort(tt.host, strconv.Itoa(port)))
			roundTrip(t, c, "where from")
			roundTrip(t, c, "again") // the cached control message
		})
	}
}

func TestReloadedZeroWriteTimeoutClearsTheDeadline(t *testing.T) {
	s, _ := newServer(t, &echo{})
	s.SetLimits(Limits{WriteTimeout: time.Hour})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	serve(t, s, l)
	c := dial(t, l.Addr().String())
	roundTrip(t, c, "armed\n")
	s.SetLimits(Limits{})
	roundTrip(t, c, "cleared\n")
	s.mu.Lock()
	defer s.mu.Unlock()
	for conn := range s.conns {
		conn.mu.Lock()
		if !conn.wdl.IsZero() {
			t.Errorf("write deadline still %v after write_timeout went to 0", conn.wdl)
		}
		conn.mu.Unlock()
	}
}

// TestMessageMustArriveWithinReadTimeout: a client that trickles one byte
// at a time never lets the connection go idle, but once the handler says a
// message has started, the whole of it must arrive within ReadTimeout.
func TestMessageMustArriveWithinReadTimeout(t *testing.T) {
	trickled := StreamHandlerFunc(func(ctx context.Context, c net.Conn) error {
		buf := make([]byte, 16)
		for {
			if _, err := c.Read(buf); err != nil {
				return err
			}
			MessagePending(ctx, true) // no message ever ends
		}
	})
	s := &Server{Handler: trickled}
	s.SetLimits(Limits{ReadTimeout: 300 * time.Millisecond})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	serve(t, s, l)
	c := dial(t, l.Addr().String())
	closed := make(chan struct{})
	go func() {
		c.Read(make([]byte, 1)) // returns when the server closes
		close(closed)
	}()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case <-closed:
			return
		case <-deadline:
			t.Fatal("a trickling client was never cut off")
		case <-tick.C:
			c.Write([]byte("x"))
		}
	}
}

func TestTooLargeIsCountedAndQuiet(t *testing.T) {
	tooBig := StreamHandlerFunc(func(ctx context.Context, c net.Conn) error {
		return fmt.Errorf("line of 5 bytes: %w", ErrTooLarge)
	})
	reg := prometheus.NewRegistry()
	var logs nettest.Buffer
	s := &Server{Handler: tooBig, Metrics: NewMetrics(reg, "test"),
		Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn}))}
	watchConns(s)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	serve(t, s, l)
	c := dial(t, l.Addr().String())
	if _, err := c.Read(make([]byte, 1)); err == nil {
		t.Fatal("connection not closed")
	}
	waitFor(t, s, func() bool { return s.ActiveConns() == 0 })
	if got := testutil.ToFloat64(s.Metrics.tooLarge.WithLabelValues("tcp")); got != 1 {
		t.Errorf("messages_rejected_total = %v, want 1", got)
	}
	if out := logs.String(); out != "" {
		t.Errorf("a client's oversized message was logged at warn: %s", out)
	}
}

func TestTransientErrors(t *testing.T) {
	for _, tt := range []struct {
		err  error
		want bool
	}{
		{&net.OpError{Op: "accept", Err: os.NewSyscallError("accept4", syscall.EMFILE)}, true},
		{&net.OpError{Op: "accept", Err: os.NewSyscallError("accept4", syscall.ECONNABORTED)}, true},
		{&net.OpError{Op: "read", Err: os.NewSyscallError("recvmsg", syscall.ECONNREFUSED)}, true},
		{net.ErrClosed, false},
		{&net.OpError{Op: "accept", Err: os.NewSyscallError("accept4", syscall.EBADF)}, false},
		{errors.New("something else"), false},
	} {
		if got := transient(tt.err); got != tt.want {
			t.Errorf("transient(%v) = %v, want %v", tt.err, got, tt.want)
		}
	}
}
