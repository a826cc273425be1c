// Package netsrv is the connection-handling core shared by the appliance's daemons.
//
// A Server runs one StreamHandler over any number of stream listeners (TCP,
// Unix) and one PacketHandler over any number of packet connections (UDP,
// unixgram), with the contract of net/http's Server: Serve and ServePacket
// block until the server is shut down and then return ErrServerClosed, and
// Shutdown stops accepting, lets requests in flight finish until its context
// ends, and then closes what is left. Servers that own their accept loop
// (net/http, go-nfs) use TrackListener to get the same limits, accounting and
// shutdown.
package netsrv

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// ErrServerClosed is returned by Serve and ServePacket after Shutdown, and by
// reads on a connection once the server has begun to drain.
var ErrServerClosed = errors.New("netsrv: server closed")

// StreamHandler serves one connection. It returns when the peer is done or
// the connection fails; the server closes the connection afterwards and logs
// a non-nil error once.
type StreamHandler interface {
	ServeConn(ctx context.Context, c net.Conn) error
}

// ErrTooLarge is wrapped by handlers for a message over MaxMessageBytes, or
// one whose reply would not fit in a datagram. The server counts it in
// messages_rejected_total and logs it only at debug.
var ErrTooLarge = errors.New("netsrv: message too large")

// ErrBadRequest is wrapped by handlers for a request they refuse because
// of what the client sent. The server counts it as a failed request and
// logs it only at debug.
var ErrBadRequest = errors.New("netsrv: bad request")

// StreamHandlerFunc lets an ordinary function be a StreamHandler.
type StreamHandlerFunc func(ctx context.Context, c net.Conn) error

// ServeConn implements StreamHandler by calling f.
func (f StreamHandlerFunc) ServeConn(ctx context.Context, c net.Conn) error { return f(ctx, c) }

// PacketWriter sends a reply datagram. A net.PacketConn is one.
type PacketWriter interface {
	WriteTo(p []byte, addr net.Addr) (int, error)
}

// PacketHandler serves one datagram. p and from are only valid during the
// call: the server reuses them for the next datagram.
type PacketHandler interface {
	ServePacket(ctx context.Context, w PacketWriter, p []byte, from net.Addr) error
}

// Limits bound what one server accepts. The zero value means no limits.
type Limits struct {
	// MaxConns is the number of stream connections served at once; more
	// are accepted and closed at once, and counted as rejected. 0: no limit.
	MaxConns int
	// ReadTimeout bounds the wait for a connection's first bytes, and the
	// time a message may take to arrive whole (see MessagePending). 0: none.
	ReadTimeout time.Duration
	// IdleTimeout bounds each later wait for a new message. 0: none.
	IdleTimeout time.Duration
	// WriteTimeout bounds each write, so a peer that never reads is cut off. 0: none.
	WriteTimeout time.Duration
	// MaxMessageBytes is the largest request a handler accepts; larger
	// datagrams are dropped and counted. 0: 65535 for datagrams, none for streams.
	MaxMessageBytes int
	// PacketWorkers is how many goroutines read each packet connection,
	// fixed when ServePacket starts. 0: GOMAXPROCS.
	PacketWorkers int
}

// Server serves stream and packet connections. Set its fields before the
// first call to Serve or ServePacket; SetLimits may be called at any time.
type Server struct {
	// Handler serves stream connections; Serve needs it.
	Handler StreamHandler
	// PacketHandler serves datagrams; ServePacket needs it.
	PacketHandler PacketHandler
	// Logger receives one line per failed connection or request; nil discards.
	Logger *slog.Logger
	// Metrics, when set, counts connections, requests, bytes and panics.
	Metrics *Metrics

	limits atomic.Pointer[Limits]
	active atomic.Int64 // stream connections being served
	closed atomic.Bool  // Shutdown has begun

	initOnce sync.Once
	ctx      context.Context    // parent of every handler's context
	cancel   context.CancelFunc // ends handler contexts once Shutdown gives up

	mu        sync.Mutex
	listeners map[net.Listener]struct{}
	packets   map[*packetConn]struct{}
	conns     map[*Conn]struct{}
	wg        sync.WaitGroup // serve loops, connections and packet handlers

	testHookConns    func() // called after a connection is tracked or untracked
	testConnsChanged chan struct{}
}

func (s *Server) init() {
	s.initOnce.Do(func() {
		s.ctx, s.cancel = context.WithCancel(context.WithValue(context.Background(), serverKey, s))
		s.listeners = make(map[net.Listener]struct{})
		s.packets = make(map[*packetConn]struct{})
		s.conns = make(map[*Conn]struct{})
		if s.limits.Load() == nil {
			s.limits.Store(&Limits{})
		}
		if s.Logger == nil {
			s.Logger = slog.New(slog.DiscardHandler)
		}
	})
}

// SetLimits replaces the server's limits. New values apply to every read,
// write and accept from now on, including on open connections.
func (s *Server) SetLimits(l Limits) {
	s.limits.Store(&l)
}

// Limits returns the limits in force.
func (s *Server) Limits() Limits {
	if l := s.limits.Load(); l != nil {
		return *l
	}
	return Limits{}
}

// ActiveConns returns the number of stream connections being served.
func (s *Server) ActiveConns() int { return int(s.active.Load()) }

// Serve accepts connections on l and serves each on its own goroutine with
// s.Handler. It always returns a non-nil error: ErrServerClosed after
// Shutdown. Serve takes ownership of l and closes it.
func (s *Server) Serve(l net.Listener) error {
	s.init()
	if s.Handler == nil {
		l.Close()
		return errors.New("netsrv: Serve needs a Handler")
	}
	tl := s.TrackListener(l)
	tl.Timeouts = true
	if !s.trackListener(l, true) {
		l.Close()
		return ErrServerClosed
	}
	defer s.trackListener(l, false)
	defer l.Close()

	var r retrier
	for {
		c, err := tl.Accept()
		if err != nil {
			if err := s.retry(&r, "accept", l.Addr(), err); err != nil {
				return err
			}
			continue
		}
		r.backoff = 0
		go s.serveConn(c.(*Conn))
	}
}

// retrier paces the retries of one accept or read loop.
type retrier struct{ backoff time.Duration }

// retry decides what a serve loop does with an accept or read error: it
// returns ErrServerClosed after Shutdown, the error itself when the socket
// is broken, and otherwise waits (5ms doubling to 1s, as net/http does) and
// returns nil to try again.
func (s *Server) retry(r *retrier, op string, addr net.Addr, err error) error {
	if s.closed.Load() {
		return ErrServerClosed
	}
	if !transient(err) {
		return err
	}
	r.backoff = min(max(2*r.backoff, 5*time.Millisecond), time.Second)
	s.Logger.Warn(op+" failed; retrying", "addr", addr.String(), "err", err, "delay", r.backoff)
	select {
	case <-time.After(r.backoff):
	case <-s.ctx.Done():
	}
	return nil
}

// transient reports whether an accept or read error passes: out of file
// descriptors or buffers, a connection aborted before it was accepted, or
// an ICMP error about an earlier datagram surfacing on a UDP read.
func transient(err error) bool {
	for _, e := range []error{syscall.EMFILE, syscall.ENFILE, syscall.ENOBUFS, syscall.ENOMEM,
		syscall.ECONNABORTED, syscall.ECONNREFUSED, syscall.ECONNRESET, syscall.EHOSTUNREACH,
		syscall.ENETUNREACH, syscall.EINTR, syscall.EAGAIN, syscall.EPROTO, syscall.EMSGSIZE} {
		if errors.Is(err, e) {
			return true
		}
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func (s *Server) serveConn(c *Conn) {
	defer c.Close()
	start := time.Now()
	ctx := context.WithValue(s.ctx, connKey, c)
	log := s.Logger
	err := func() (err error) {
		defer func() {
			if r := recover(); r != nil {
				err = s.recovered(r)
			}
		}()
		return s.Handler.ServeConn(ctx, c)
	}()
	if errors.Is(err, ErrTooLarge) {
		c.stats.rejectedMessage()
	}
	if err != nil && !quiet(err) {
		log.Warn("connection failed", "transport", c.transport, "remote", remoteString(c.RemoteAddr()),
			"duration", time.Since(start), "err", err)
	} else {
		log.Debug("connection closed", "transport", c.transport, "remote", remoteString(c.RemoteAddr()),
			"duration", time.Since(start), "err", err)
	}
}

func (s *Server) recovered(r any) error {
	s.Logger.Error("handler panic", "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
	s.Metrics.panic()
	return fmt.Errorf("%w: %v", errPanic, r)
}

var errPanic = errors.New("netsrv: handler panic")

// quiet reports whether err is an ordinary end of a connection or request,
// logged only at debug: the peer left or reset, a timeout cut it off, the
// server is draining, or the client sent something it should not have (a
// client must not be able to fill the log).
func quiet(err error) bool {
	for _, e := range []error{io.EOF, ErrServerClosed, net.ErrClosed, os.ErrDeadlineExceeded,
		syscall.ECONNRESET, syscall.EPIPE, ErrTooLarge, ErrBadRequest,
		errPanic} { // a panic was already logged with its stack
		if errors.Is(err, e) {
			return true
		}
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func remoteString(a net.Addr) string {
	if a == nil || a.String() == "" {
		return "-"
	}
	return a.String()
}

// Shutdown stops the server gracefully: it closes the listeners, stops
// reading datagrams, makes every connection's next read return
// ErrServerClosed so handlers finish the request they are on, and waits for
// them. When ctx ends first, it cancels the handlers' context, closes every
// remaining connection and returns ctx.Err().
func (s *Server) Shutdown(ctx context.Context) error {
	s.init()
	s.closed.Store(true)
	s.mu.Lock()
	for l := range s.listeners {
		l.Close()
	}
	for p := range s.packets {
		// A past deadline stops the readers; the socket stays open so
		// handlers in flight can still send their replies.
		p.SetReadDeadline(aLongTimeAgo)
	}
	for c := range s.conns {
		c.drain()
	}
	s.mu.Unlock()

	done := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		s.cancel()
		return nil
	case <-ctx.Done():
	}
	s.cancel()
	s.mu.Lock()
	for c := range s.conns {
		c.Conn.Close()
	}
	for p := range s.packets {
		p.Close()
	}
	s.mu.Unlock()
	return ctx.Err()
}

// Close closes every listener and connection at once, without draining.
func (s *Server) Close() error {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.Shutdown(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}

var aLongTimeAgo = time.Unix(1, 0)

func (s *Server) trackListener(l net.Listener, add bool) bool { return track(s, s.listeners, l, add) }
func (s *Server) trackPacket(p *packetConn, add bool) bool    { return track(s, s.packets, p, add) }
func (s *Server) trackConn(c *Conn, add bool) bool            { return track(s, s.conns, c, add) }

// track adds v to or removes it from one of the server's sets, counting it
// in s.wg. Nothing is added once Shutdown has begun.
func track[T comparable](s *Server, set map[T]struct{}, v T, add bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if add {
		if s.closed.Load() {
			return false
		}
		set[v] = struct{}{}
		s.wg.Add(1)
	} else {
		delete(set, v)
		s.wg.Done()
	}
	if s.testHookConns != nil {
		s.testHookConns()
	}
	return true
}
