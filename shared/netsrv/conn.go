package netsrv

import (
	"context"
	"errors"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"example.com/appliance/shared/listen"
)

// Conn is a stream connection accepted through a Server: it counts its
// bytes, applies the server's timeouts when Timeouts is on, and is closed by
// the server's Shutdown if still open when the grace period ends.
type Conn struct {
	net.Conn
	srv       *Server
	transport string
	stats     *transportMetrics
	deadlines bool // apply Limits' timeouts on each read and write

	mu       sync.Mutex // orders deadline changes against drain
	draining bool
	readOnce bool
	rdl, wdl time.Time // deadlines last set
	// pendingSince is when the message now being read began; zero between messages.
	pendingSince time.Time
	closed       atomic.Bool
}

// Read applies the read or idle timeout, then reads. Once the server is
// draining it returns ErrServerClosed instead of waiting for a new request.
func (c *Conn) Read(b []byte) (int, error) {
	if err := c.armRead(); err != nil {
		return 0, err
	}
	n, err := c.Conn.Read(b)
	c.stats.received(n)
	if err != nil && errors.Is(err, os.ErrDeadlineExceeded) && c.isDraining() {
		return n, ErrServerClosed
	}
	return n, err
}

// Write applies the write timeout, then writes.
func (c *Conn) Write(b []byte) (int, error) {
	c.armWrite()
	n, err := c.Conn.Write(b)
	c.stats.sent(n)
	return n, err
}

// armWrite applies the write timeout to the write about to start.
func (c *Conn) armWrite() {
	if c.deadlines {
		c.mu.Lock()
		c.wdl = arm(c.wdl, c.srv.limits.Load().WriteTimeout, c.Conn.SetWriteDeadline)
		c.mu.Unlock()
	}
}

func (c *Conn) armRead() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.draining {
		return ErrServerClosed
	}
	if !c.deadlines {
		return nil
	}
	lim := c.srv.limits.Load()
	if !c.pendingSince.IsZero() && lim.ReadTimeout > 0 {
		// The rest of a message started: more bytes do not buy more time,
		// or a byte a minute would hold a connection and its buffer forever.
		if want := c.pendingSince.Add(lim.ReadTimeout); !want.Equal(c.rdl) {
			c.rdl = want
			c.Conn.SetReadDeadline(want)
		}
		return nil
	}
	t := lim.ReadTimeout
	if c.readOnce {
		t = lim.IdleTimeout
	}
	c.readOnce = true
	c.rdl = arm(c.rdl, t, c.Conn.SetReadDeadline)
	return nil
}

// arm moves a deadline to now+t (none when t is 0), but leaves it alone
// while it is at most t/16 early: resetting the runtime timer on every
// request costs more than a slightly early timeout is worth.
func arm(cur time.Time, t time.Duration, set func(time.Time) error) time.Time {
	if t <= 0 {
		if !cur.IsZero() {
			set(time.Time{})
		}
		return time.Time{}
	}
	want := time.Now().Add(t)
	if d := want.Sub(cur); !cur.IsZero() && d >= 0 && d <= t/16 {
		return cur
	}
	set(want)
	return want
}

func (c *Conn) isDraining() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.draining
}

// drain makes the next read, or the one in progress, return ErrServerClosed.
func (c *Conn) drain() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.draining = true
	c.Conn.SetReadDeadline(aLongTimeAgo)
}

// Close closes the connection and releases its place under MaxConns.
func (c *Conn) Close() error {
	if c.closed.Swap(true) {
		return nil
	}
	err := c.Conn.Close()
	c.srv.active.Add(-1)
	c.stats.closed()
	c.srv.trackConn(c, false)
	return err
}

// Listener is what TrackListener returns.
type Listener struct {
	net.Listener
	// Timeouts applies the server's read, idle and write timeouts to the
	// accepted connections; leave it off when the owner sets its own.
	Timeouts bool

	srv       *Server
	transport string
	lastWarn  atomic.Int64 // unix seconds of the last "limit reached" log
	rejected  atomic.Int64 // rejections since that log
}

// TrackListener wraps l for a server that runs its own accept loop, such as
// net/http's or go-nfs's: accepted connections count against MaxConns (the
// excess is closed and counted), are counted in the metrics, and are drained
// and then closed by Shutdown. Call the owner's own Shutdown first.
func (s *Server) TrackListener(l net.Listener) *Listener {
	s.init()
	return &Listener{Listener: l, srv: s, transport: listen.Network(l.Addr())}
}

// Accept returns the next connection within the server's limits.
func (l *Listener) Accept() (net.Conn, error) {
	s := l.srv
	stats := s.Metrics.forTransport(l.transport)
	for {
		nc, err := l.Listener.Accept()
		if err != nil {
			if s.closed.Load() {
				return nil, ErrServerClosed
			}
			return nil, err
		}
		n := s.active.Add(1)
		if max := s.limits.Load().MaxConns; max > 0 && n > int64(max) {
			s.active.Add(-1)
			stats.rejectedConn()
			l.warnRejected(max)
			nc.Close()
			continue
		}
		c := &Conn{Conn: nc, srv: s, transport: l.transport, stats: stats, deadlines: l.Timeouts}
		if !s.trackConn(c, true) {
			s.active.Add(-1)
			nc.Close()
			return nil, ErrServerClosed
		}
		stats.opened()
		return c, nil
	}
}

// warnRejected logs at most once a second, so a flood cannot flood the log.
func (l *Listener) warnRejected(max int) {
	l.rejected.Add(1)
	now := time.Now().Unix()
	last := l.lastWarn.Load()
	if now > last && l.lastWarn.CompareAndSwap(last, now) {
		l.srv.Logger.Warn("connection limit reached; refusing connections",
			"addr", l.Addr().String(), "max_conns", max, "refused", l.rejected.Swap(0))
	}
}

type ctxKey int

const connKey ctxKey = 0

// Observe records one request served on the connection behind ctx: its
// duration since start and whether it failed. Stream handlers call it once
// per request; the server counts datagrams itself.
func Observe(ctx context.Context, start time.Time, err error) {
	if c, ok := ctx.Value(connKey).(*Conn); ok {
		c.stats.request(start, err)
	}
}

// MessagePending tells the server whether the connection behind ctx has
// read the start of a message but not its end. While it has, the rest must
// arrive within ReadTimeout of the start: further bytes do not extend the
// read deadline as they do between messages.
func MessagePending(ctx context.Context, pending bool) {
	c, ok := ctx.Value(connKey).(*Conn)
	if !ok {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case !pending:
		c.pendingSince = time.Time{}
	case c.pendingSince.IsZero():
		c.pendingSince = time.Now()
	}
}

// LimitsFrom returns the limits in force for the connection behind ctx.
func LimitsFrom(ctx context.Context) Limits {
	if c, ok := ctx.Value(connKey).(*Conn); ok {
		return c.srv.Limits()
	}
	if s, ok := ctx.Value(serverKey).(*Server); ok {
		return s.Limits()
	}
	return Limits{}
}

const serverKey ctxKey = 1
