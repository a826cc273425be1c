package gonfs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"

	nfs "github.com/willscott/go-nfs"

	"example.com/appliance/filesrv/internal/oncrpc"
)

// DefaultMaxConns is how many forwarded calls run at once when
// NewForwarder is given 0.
const DefaultMaxConns = 16

// maxReply bounds a reply read back from go-nfs.
const maxReply = 4 << 20

// ErrClosed is returned by Forward after Close.
var ErrClosed = errors.New("gonfs: forwarder closed")

// Forwarder passes single RPC calls to an in-process go-nfs server. Each
// in-memory connection carries one call at a time (go-nfs serves a
// connection's calls strictly in order), so the pool grows, up to its
// bound, to run calls concurrently. Safe for concurrent use.
type Forwarder struct {
	srv  *nfs.Server
	l    *pipeListener
	sem  chan struct{} // one slot per call in flight
	done chan struct{} // closed when go-nfs's accept loop has returned

	mu     sync.Mutex
	closed bool
	idle   []net.Conn
	all    map[net.Conn]struct{}
}

// NewForwarder starts go-nfs with h behind a pool of at most maxConns
// in-memory connections (0: DefaultMaxConns). go-nfs's own log goes to
// log at debug level (warnings and errors at warn). Close stops it.
func NewForwarder(h nfs.Handler, maxConns int, log *slog.Logger) *Forwarder {
	if maxConns <= 0 {
		maxConns = DefaultMaxConns
	}
	setLog(log)
	f := &Forwarder{
		srv:  &nfs.Server{Handler: h},
		l:    newPipeListener(),
		sem:  make(chan struct{}, maxConns),
		done: make(chan struct{}),
		all:  make(map[net.Conn]struct{}),
	}
	go func() {
		defer close(f.done)
		f.srv.Serve(f.l) // returns once the listener is closed
	}()
	return f
}

// Forward sends c, as received, to go-nfs and returns the reply's accept
// status and the procedure's results (the bytes after the status).
func (f *Forwarder) Forward(ctx context.Context, c *oncrpc.Call) (oncrpc.AcceptStat, []byte, error) {
	select {
	case f.sem <- struct{}{}:
	case <-ctx.Done():
		return 0, nil, ctx.Err()
	}
	defer func() { <-f.sem }()
	conn, err := f.get()
	if err != nil {
		return 0, nil, err
	}
	rep, err := roundTrip(ctx, conn, c.Record)
	if err != nil {
		f.discard(conn)
		return 0, nil, fmt.Errorf("forward to go-nfs: %w", err)
	}
	f.put(conn)
	if rep.Denied {
		return 0, nil, errors.New("forward to go-nfs: call denied")
	}
	if rep.XID != c.XID {
		return 0, nil, fmt.Errorf("forward to go-nfs: reply xid %d for call %d", rep.XID, c.XID)
	}
	return rep.Stat, rep.Results, nil
}

// roundTrip writes one call record and reads its reply.
func roundTrip(ctx context.Context, conn net.Conn, call []byte) (oncrpc.Reply, error) {
	if d, ok := ctx.Deadline(); ok {
		conn.SetDeadline(d)
	} else {
		conn.SetDeadline(time.Time{})
	}
	// A cancelled call breaks its connection, which is then discarded.
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if err := oncrpc.WriteRecord(conn, call); err != nil {
		return oncrpc.Reply{}, err
	}
	rr := oncrpc.NewRecordReader(conn)
	msg, err := rr.ReadRecord(nil, maxReply)
	if err != nil {
		return oncrpc.Reply{}, err
	}
	return oncrpc.ParseReply(msg)
}

// get returns an idle connection or opens a new one.
func (f *Forwarder) get() (net.Conn, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return nil, ErrClosed
	}
	if n := len(f.idle); n > 0 {
		c := f.idle[n-1]
		f.idle = f.idle[:n-1]
		return c, nil
	}
	client, server := net.Pipe()
	if !f.l.push(server) {
		client.Close()
		server.Close()
		return nil, ErrClosed
	}
	f.all[client] = struct{}{}
	return client, nil
}

// put returns a connection to the idle list.
func (f *Forwarder) put(c net.Conn) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return // Close has closed it already
	}
	f.idle = append(f.idle, c)
}

// discard closes a connection that failed mid-call.
func (f *Forwarder) discard(c net.Conn) {
	f.mu.Lock()
	delete(f.all, c)
	f.mu.Unlock()
	c.Close()
}

// Close stops go-nfs: it closes the listener and every connection, which
// ends go-nfs's goroutines and fails the calls in flight.
func (f *Forwarder) Close() error {
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		return nil
	}
	f.closed = true
	for c := range f.all {
		c.Close()
	}
	f.all, f.idle = nil, nil
	f.mu.Unlock()
	f.l.Close()
	<-f.done
	return nil
}

// pipeListener hands the server ends of in-memory connections to go-nfs's
// accept loop, and keeps them so Close can end go-nfs's side too (go-nfs
// closes a connection itself only after a clean EOF).
type pipeListener struct {
	ch      chan net.Conn
	closing chan struct{}
	once    sync.Once

	mu    sync.Mutex
	conns []net.Conn
}

func newPipeListener() *pipeListener {
	return &pipeListener{ch: make(chan net.Conn), closing: make(chan struct{})}
}

// push gives a server-side connection to Accept; false once closed.
func (l *pipeListener) push(c net.Conn) bool {
	l.mu.Lock()
	l.conns = append(l.conns, c)
	l.mu.Unlock()
	select {
	case l.ch <- c:
		return true
	case <-l.closing:
		return false
	}
}

// Accept implements net.Listener.
func (l *pipeListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.closing:
		return nil, net.ErrClosed
	}
}

// Close implements net.Listener: it also closes every server end.
func (l *pipeListener) Close() error {
	l.once.Do(func() { close(l.closing) })
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, c := range l.conns {
		c.Close()
	}
	l.conns = nil
	return nil
}

// Addr implements net.Listener.
func (l *pipeListener) Addr() net.Addr { return pipeAddr{} }

type pipeAddr struct{}

func (pipeAddr) Network() string { return "pipe" }
func (pipeAddr) String() string  { return "gonfs" }

// netipAddr returns the IP address of a TCP or UDP address.
func netipAddr(a net.Addr) (netip.Addr, error) {
	switch a := a.(type) {
	case *net.TCPAddr:
		return a.AddrPort().Addr(), nil
	case *net.UDPAddr:
		return a.AddrPort().Addr(), nil
	}
	return netip.Addr{}, fmt.Errorf("no ip address in %v", a)
}
