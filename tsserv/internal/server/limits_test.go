package server_test

// Limits: what tsserv does to clients that send too much, read too little,
// say nothing, or come in too great a number.

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"example.com/appliance/shared/config"
	"example.com/appliance/tsserv/internal/server"

	"example.com/appliance/shared/nettest"
)

func TestMessageTooLong(t *testing.T) {
	const max = 4096
	ts := startService(t, func(c *server.Config) { c.Limits.MaxMessageBytes = max })
	x := func(n int) string { return strings.Repeat("x", n) }
	tests := []struct {
		name string
		// send writes what follows a first "first\n" exchange; it stops
		// at the first error, as the server may close at any point.
		send    func(w io.Writer) error
		cut     bool   // the server must close the connection
		replyTo string // else: the one reply expected, without its terminator
	}{
		{"endless line", func(w io.Writer) error {
			chunk := []byte(x(1024))
			for range 64 * max / len(chunk) { // bounded: 64 times the limit
				if _, err := w.Write(chunk); err != nil {
					return err
				}
			}
			return nil
		}, true, ""},
		{"line one byte over", func(w io.Writer) error {
			_, err := io.WriteString(w, x(max)+"\n")
			return err
		}, true, ""},
		{"CRLF line one byte over", func(w io.Writer) error {
			_, err := io.WriteString(w, x(max-1)+"\r\n")
			return err
		}, true, ""},
		{"line at the limit", func(w io.Writer) error {
			_, err := io.WriteString(w, x(max-1)+"\n")
			return err
		}, false, x(max - 1)},
		{"CRLF line at the limit", func(w io.Writer) error {
			_, err := io.WriteString(w, x(max-2)+"\r\n")
			return err
		}, false, x(max-2) + "\r"},
		{"line at the limit in small writes", func(w io.Writer) error {
			for range max - 1 {
				if _, err := io.WriteString(w, "y"); err != nil {
					return err
				}
			}
			_, err := io.WriteString(w, "\n")
			return err
		}, false, strings.Repeat("y", max-1)},
	}
	for _, tr := range []transport{{"tcp", "tcp", ts.TCP4}, {"unix", "unix", ts.Unix}} {
		for _, tt := range tests {
			t.Run(tr.name+"/"+tt.name, func(t *testing.T) {
				before := ts.metric(t, "tsserv_messages_rejected_total", tr.network)
				c := dial(t, tr.network, tr.addr)
				r := bufio.NewReader(c)
				roundTrip(t, c, r, "first")
				sent := make(chan error, 1)
				go func() { sent <- tt.send(c) }()
				line, err := r.ReadString('\n')
				if tt.cut {
					if !isClosed(err) {
						t.Fatalf("read after the long line: %q, %v; want the server to close", line, err)
					}
					<-sent
					if got := ts.metric(t, "tsserv_messages_rejected_total", tr.network); got != before+1 {
						t.Errorf("tsserv_messages_rejected_total{transport=%q} = %v, want %v", tr.network, got, before+1)
					}
					return
				}
				if err != nil {
					t.Fatalf("reply: %v", err)
				}
				if err := <-sent; err != nil {
					t.Fatal(err)
				}
				checkReply(t, "ctime", strings.TrimSuffix(line, "\n"), tt.replyTo)
				roundTrip(t, c, r, "still open")
				if got := ts.metric(t, "tsserv_messages_rejected_total", tr.network); got != before {
					t.Errorf("tsserv_messages_rejected_total{transport=%q} = %v, want %v", tr.network, got, before)
				}
			})
		}
	}
}

// TestReloadLowersMessageLimitOnOpenConnection: "SIGHUP applies new
// values to open connections too" (limits in configs/tsserv.toml).
func TestReloadLowersMessageLimitOnOpenConnection(t *testing.T) {
	ts := startService(t)
	c := dial(t, "tcp", ts.TCP4)
	r := bufio.NewReader(c)
	roundTrip(t, c, r, strings.Repeat("a", 200))
	ts.reloadWith(t, func(c *server.Config) { c.Limits.MaxMessageBytes = 100 })
	io.WriteString(c, strings.Repeat("b", 200)+"\n")
	if line, err := r.ReadString('\n'); !isClosed(err) {
		t.Fatalf("200-byte line after the limit went down to 100: %q, %v; want the connection closed", line, err)
	}
	if got := ts.metric(t, "tsserv_messages_rejected_total", "tcp"); got != 1 {
		t.Errorf("tsserv_messages_rejected_total = %v, want 1", got)
	}
}

func TestOversizeDatagramDropped(t *testing.T) {
	const max = 100
	ts := startService(t, func(c *server.Config) { c.Limits.MaxMessageBytes = max })
	for _, tr := range []transport{{"udp", "udp", ts.UDP4}, {"unixgram", "unixgram", ts.Unixgram}} {
		t.Run(tr.name, func(t *testing.T) {
			var c net.Conn
			if tr.network == "unixgram" {
				local := &net.UnixAddr{Name: filepath.Join(ts.Dir, "limits.dgram"), Net: "unixgram"}
				uc, err := net.DialUnix("unixgram", local, &net.UnixAddr{Name: tr.addr, Net: "unixgram"})
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { uc.Close(); os.Remove(local.Name) })
				uc.SetDeadline(timeoutFromNow())
				c = uc
			} else {
				c = dial(t, tr.network, tr.addr)
			}
			buf := make([]byte, 2*max)
			exchange := func(msg string) string {
				t.Helper()
				if _, err := io.WriteString(c, msg); err != nil {
					t.Fatal(err)
				}
				n, err := c.Read(buf)
				if err != nil {
					t.Fatal(err)
				}
				return string(buf[:n])
			}
			// The oversize datagram goes first; the one reply read must be
			// to the next one.
			if _, err := io.WriteString(c, strings.Repeat("o", max+1)); err != nil {
				t.Fatal(err)
			}
			checkReply(t, "ctime", exchange("short"), "short")
			nettest.Eventually(t, "the oversize datagram counted", func() bool {
				return ts.metric(t, "tsserv_messages_rejected_total", tr.network) == 1
			})
			at := strings.Repeat("m", max)
			checkReply(t, "ctime", exchange(at), at)
		})
	}
}

// TestWriteTimeout: a client that sends requests and never reads its
// replies is cut off once a reply has waited write_timeout.
func TestWriteTimeout(t *testing.T) {
	ts := startService(t, func(c *server.Config) { c.Limits.WriteTimeout = config.NewDuration(200 * time.Millisecond) })
	srv := ts.Server()
	for _, tr := range []transport{{"tcp", "tcp", ts.TCP4}, {"unix", "unix", ts.Unix}} {
		t.Run(tr.name, func(t *testing.T) {
			c := dial(t, tr.network, tr.addr)
			r := bufio.NewReader(c)
			roundTrip(t, c, r, "hello") // served: the connection is counted
			if n := srv.ActiveConns(); n != 1 {
				t.Fatalf("%d active connections, want 1", n)
			}
			// Every 2-byte request costs the server a 28-byte reply; the
			// client's buffers fill, then the server's, and its write waits.
			chunk := []byte(strings.Repeat("x\n", 32<<10))
			var err error
			for sent := 0; err == nil; sent += len(chunk) {
				if sent > 1<<30 {
					t.Fatal("sent 1 GiB of requests without reading and the server still reads")
				}
				_, err = c.Write(chunk)
			}
			if !isClosed(err) {
				t.Fatalf("write: %v; want the server to have closed the connection", err)
			}
			nettest.Eventually(t, "no active connections", func() bool { return srv.ActiveConns() == 0 })
			if got := ts.metric(t, "tsserv_connections_active", tr.network); got != 0 {
				t.Errorf("tsserv_connections_active{transport=%q} = %v, want 0", tr.network, got)
			}
		})
	}
}

// TestIdleTimeouts: a connection that sends nothing is closed after
// read_timeout, and one that stops sending after idle_timeout.
func TestIdleTimeouts(t *testing.T) {
	const readTimeout, idleTimeout = 200 * time.Millisecond, 400 * time.Millisecond
	ts := startService(t, func(c *server.Config) {
		c.Limits.ReadTimeout = config.NewDuration(readTimeout)
		c.Limits.IdleTimeout = config.NewDuration(idleTimeout)
	})
	tests := []struct {
		name     string
		requests int
		timeout  time.Duration
	}{
		{"silent from the start", 0, readTimeout},
		{"silent after one request", 1, idleTimeout},
		{"silent after three requests", 3, idleTimeout},
	}
	for _, tr := range []transport{{"tcp", "tcp", ts.TCP4}, {"unix", "unix", ts.Unix}} {
		for _, tt := range tests {
			t.Run(tr.name+"/"+tt.name, func(t *testing.T) {
				t.Parallel()
				c := dial(t, tr.network, tr.addr)
				r := bufio.NewReader(c)
				for i := range tt.requests {
					roundTrip(t, c, r, fmt.Sprint("request ", i))
				}
				start := time.Now()
				line, err := r.ReadString('\n')
				if !errors.Is(err, io.EOF) {
					t.Fatalf("idle client read %q, %v; want EOF from the server's timeout", line, err)
				}
				// Deadlines may be set up to 1/16 early, never later than due.
				if d := time.Since(start); d < tt.timeout/2 {
					t.Errorf("closed after %v; the timeout is %v", d, tt.timeout)
				}
			})
		}
	}
}

func TestMaxConns(t *testing.T) {
	ts := startService(t, func(c *server.Config) { c.Limits.MaxConns = 2 })
	srv := ts.Server()
	a, b := dial(t, "tcp", ts.TCP4), dial(t, "unix", ts.Unix) // the limit counts every stream socket
	ra, rb := bufio.NewReader(a), bufio.NewReader(b)
	roundTrip(t, a, ra, "a")
	roundTrip(t, b, rb, "b")

	refused := func(network, addr string) {
		t.Helper()
		c := dial(t, network, addr)
		if n, err := c.Read(make([]byte, 100)); !isClosed(err) {
			t.Fatalf("connection past max_conns read %d bytes, %v; want it closed at once", n, err)
		}
	}
	refused("tcp", ts.TCP4)
	refused("tcp", ts.TCP6)
	refused("unix", ts.Unix)
	for tr, want := range map[string]float64{"tcp": 2, "unix": 1} {
		if got := ts.metric(t, "tsserv_connections_rejected_total", tr); got != want {
			t.Errorf("tsserv_connections_rejected_total{transport=%q} = %v, want %v", tr, got, want)
		}
	}
	// The served clients were not disturbed; a place frees when one leaves.
	roundTrip(t, b, rb, "b again")
	a.Close()
	nettest.Eventually(t, "one active connection", func() bool { return srv.ActiveConns() == 1 })
	c := dial(t, "tcp", ts.TCP4)
	roundTrip(t, c, bufio.NewReader(c), "c")
	refused("tcp", ts.TCP4)

	// A reload raises the limit for the next connections.
	ts.reloadWith(t, func(c *server.Config) { c.Limits.MaxConns = 3 })
	d := dial(t, "tcp", ts.TCP4)
	roundTrip(t, d, bufio.NewReader(d), "d")
	// UDP has no connections to limit.
	u := dial(t, "udp", ts.UDP4)
	io.WriteString(u, "u")
	buf := make([]byte, 100)
	n, err := u.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	checkReply(t, "ctime", string(buf[:n]), "u")
}

// TestManyClients: 2,000 TCP clients connected at once, each doing a few
// exchanges at the same time as all the others.
func TestManyClients(t *testing.T) {
	clients, rounds := 2000, 3
	if testing.Short() {
		clients = 200
	}
	ts := startService(t, func(c *server.Config) { c.Log.Level = "info" })
	srv := ts.Server()
	conns := make([]net.Conn, clients)
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for i := range conns {
		wg.Go(func() {
			c, err := net.Dial("tcp", ts.TCP4)
			if err != nil {
				errs <- err
				return
			}
			c.SetDeadline(time.Now().Add(30 * time.Second))
			conns[i] = c
		})
	}
	wg.Wait()
	defer func() {
		for _, c := range conns {
			if c != nil {
				c.Close()
			}
		}
	}()
	select {
	case err := <-errs:
		t.Fatalf("dial: %v", err)
	default:
	}
	// Every client is connected and being served before any of them talks.
	nettest.Eventually(t, fmt.Sprint(clients, " active connections"), func() bool { return srv.ActiveConns() == clients })

	start := make(chan struct{})
	for i, c := range conns {
		wg.Go(func() {
			<-start
			r := bufio.NewReader(c)
			for j := range rounds {
				msg := fmt.Sprintf("client %d round %d", i, j)
				if _, err := io.WriteString(c, msg+"\n"); err != nil {
					errs <- fmt.Errorf("client %d: %w", i, err)
					return
				}
				line, err := r.ReadString('\n')
				if err != nil {
					errs <- fmt.Errorf("client %d round %d: %w", i, j, err)
					return
				}
				if err := replyError("ctime", strings.TrimSuffix(line, "\n"), msg); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	close(start)
	wg.Wait()
	close(errs)
	failed := 0
	for err := range errs {
		if failed++; failed <= 5 {
			t.Error(err)
		}
	}
	if failed > 5 {
		t.Errorf("... and %d more failures", failed-5)
	}
	if got, want := ts.metric(t, "tsserv_requests_total", "tcp"), float64(clients*rounds); got != want {
		t.Errorf("tsserv_requests_total = %v, want %v", got, want)
	}
}

// roundTrip sends msg as a line and checks the reply.
func roundTrip(t testing.TB, c net.Conn, r *bufio.Reader, msg string) {
	t.Helper()
	if _, err := io.WriteString(c, msg+"\n"); err != nil {
		t.Fatal(err)
	}
	line, err := r.ReadString('\n')
	if err != nil {
		t.Fatalf("reply to %.40q: %v", msg, err)
	}
	checkReply(t, "ctime", strings.TrimSuffix(line, "\n"), msg)
}
