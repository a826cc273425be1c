package server_test

// Shutdown with requests in flight: tsserv answers every message it has
// read, closes each connection as it finishes, and then returns.

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"example.com/appliance/tsserv/internal/server"
	"example.com/appliance/tsserv/internal/timeproto"
)

// gate holds every reply at the handler's clock once armed, so a test can
// have requests truly in flight: read by the server, not yet answered.
type gate struct {
	armed   atomic.Bool
	held    chan struct{} // one per reply held
	release chan struct{} // closed to let them all go
}

func newGate(capacity int) *gate {
	return &gate{held: make(chan struct{}, capacity), release: make(chan struct{})}
}

func (g *gate) now() time.Time {
	if g.armed.Load() {
		g.held <- struct{}{}
		<-g.release
	}
	return time.Now()
}

// waitHeld waits until n replies are held.
func (g *gate) waitHeld(t *testing.T, n int) {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for i := range n {
		select {
		case <-g.held:
		case <-timeout:
			t.Fatalf("%d of %d requests reached the handler in 10s", i, n)
		}
	}
}

func TestShutdownAnswersRequestsInFlight(t *testing.T) {
	ts := newService(t)
	g := newGate(100)
	// The handler is the service's; its clock is set before it serves.
	ts.Server().Handler.(*timeproto.Handler).Now = g.now
	ts.start(t)

	type client struct {
		name  string
		conn  net.Conn
		r     *bufio.Reader
		lines bool // line framing; else the chapter's bare text
	}
	var busy, idle []*client
	add := func(list *[]*client, network, addr string, lines bool, n int) {
		for i := range n {
			c := dial(t, network, addr)
			*list = append(*list, &client{fmt.Sprintf("%s %d", network, i), c, bufio.NewReader(c), lines})
		}
	}
	add(&busy, "tcp", ts.TCP4, true, 20)
	add(&busy, "tcp", ts.TCP6, true, 5)
	add(&busy, "unix", ts.Unix, true, 5)
	add(&busy, "tcp", ts.TCP4, false, 5) // tsTclnt.py style: no newline
	add(&idle, "tcp", ts.TCP4, true, 10)
	add(&idle, "unix", ts.Unix, true, 3)
	udp := dial(t, "udp", ts.UDP4)

	send := func(c *client, msg string) {
		t.Helper()
		if c.lines {
			msg += "\n"
		}
		if _, err := io.WriteString(c.conn, msg); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
	}
	recv := func(c *client, msg string) {
		t.Helper()
		var reply string
		var err error
		if c.lines {
			reply, err = c.r.ReadString('\n')
			reply = strings.TrimSuffix(reply, "\n")
		} else {
			buf := make([]byte, 1024)
			var n int
			n, err = c.r.Read(buf)
			reply = string(buf[:n])
		}
		if err != nil {
			t.Fatalf("%s: reply to %q: %v", c.name, msg, err)
		}
		checkReply(t, "ctime", reply, msg)
	}
	// Mid-conversation: every client has had replies already.
	for _, c := range append(append([]*client{}, busy...), idle...) {
		for j := range 2 {
			msg := fmt.Sprintf("%s before %d", c.name, j)
			send(c, msg)
			recv(c, msg)
		}
	}

	g.armed.Store(true)
	for _, c := range busy {
		send(c, c.name+" in flight")
	}
	io.WriteString(udp, "datagram in flight")
	g.waitHeld(t, len(busy)+1)

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	shut := make(chan error, 1)
	go func() { shut <- ts.Shutdown(ctx) }()

	// Idle connections are closed at once, without a word.
	for _, c := range idle {
		if n, err := c.r.Read(make([]byte, 100)); !errors.Is(err, io.EOF) {
			t.Errorf("%s: idle connection during shutdown read %d bytes, %v; want EOF", c.name, n, err)
		}
	}
	// New connections are refused from now on.
	if c, err := net.Dial("tcp", ts.TCP4); err == nil {
		c.Close()
		t.Error("a new TCP connection was accepted during shutdown")
	}
	if c, err := net.Dial("unix", ts.Unix); err == nil {
		c.Close()
		t.Error("a new Unix connection was accepted during shutdown")
	}
	select {
	case err := <-shut:
		t.Fatalf("Shutdown returned %v with %d requests in flight", err, len(busy)+1)
	default:
	}

	close(g.release)
	for _, c := range busy {
		recv(c, c.name+" in flight")
		if n, err := c.r.Read(make([]byte, 100)); !errors.Is(err, io.EOF) {
			t.Errorf("%s: after its last reply read %d bytes, %v; want EOF", c.name, n, err)
		}
	}
	buf := make([]byte, 1024)
	n, err := udp.Read(buf)
	if err != nil {
		t.Fatalf("udp reply during shutdown: %v", err)
	}
	checkReply(t, "ctime", string(buf[:n]), "datagram in flight")
	if err := <-shut; err != nil {
		t.Errorf("Shutdown = %v, want nil", err)
	}
	if n := ts.Server().ActiveConns(); n != 0 {
		t.Errorf("%d connections still active after Shutdown", n)
	}
}

// TestShutdownWhileClientsHammer: clients exchange messages as fast as they
// can while the service shuts down. Every reply any of them reads is
// right; each then sees its connection end.
func TestShutdownWhileClientsHammer(t *testing.T) {
	ts := startService(t, func(c *server.Config) { c.Log.Level = "info" })
	const clients = 50
	var started, wg sync.WaitGroup
	var replies atomic.Int64
	errs := make(chan error, clients)
	for i := range clients {
		network, addr := "tcp", ts.TCP4
		if i%5 == 0 {
			network, addr = "unix", ts.Unix
		}
		c := dial(t, network, addr)
		started.Add(1)
		wg.Go(func() {
			r := bufio.NewReader(c)
			for j := 0; ; j++ {
				if j == 3 {
					started.Done()
				}
				msg := fmt.Sprintf("client %d message %d", i, j)
				_, err := io.WriteString(c, msg+"\n")
				var line string
				if err == nil {
					line, err = r.ReadString('\n')
				}
				if err != nil {
					if j < 3 {
						started.Done()
						errs <- fmt.Errorf("client %d before shutdown: %w", i, err)
					} else if !isClosed(err) {
						errs <- fmt.Errorf("client %d: connection ended with %w (read %q), want EOF or a reset", i, err, line)
					}
					return
				}
				if err := replyError("ctime", strings.TrimSuffix(line, "\n"), msg); err != nil {
					errs <- err
					return
				}
				replies.Add(1)
			}
		})
	}
	started.Wait() // everyone is mid-conversation
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := ts.Shutdown(ctx); err != nil {
		t.Errorf("Shutdown = %v, want nil", err)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	t.Logf("%d replies before the end", replies.Load())
}

// TestShutdownRightAfterStart: a Shutdown straight after Start leaves no
// socket open behind it (daemon.Serve registers each socket with the
// server on a goroutine that may not have run yet).
func TestShutdownRightAfterStart(t *testing.T) {
	for i := range 20 {
		ts := startService(t)
		if err := ts.Shutdown(t.Context()); err != nil {
			t.Fatal(err)
		}
		for _, tr := range []transport{{"tcp4", "tcp", ts.TCP4}, {"tcp6", "tcp", ts.TCP6}, {"unix", "unix", ts.Unix}} {
			if c, err := net.Dial(tr.network, tr.addr); err == nil || !refused(err) {
				if c != nil {
					c.Close()
				}
				t.Fatalf("round %d: %s dial after Shutdown: %v; want the connection refused", i, tr.name, err)
			}
		}
		for _, name := range []string{"ts.sock", "ts.dgram"} {
			if _, err := os.Stat(filepath.Join(ts.Dir, name)); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("round %d: %s still there after Shutdown: %v", i, name, err)
			}
		}
	}
}
