package oncrpc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"runtime/debug"
	"slices"
	"sync"
	"time"

	"example.com/appliance/shared/netsrv"
)

// DefaultMaxInFlight is how many calls of one connection are served at
// once when Server.MaxInFlight is 0.
const DefaultMaxInFlight = 32

// DefaultMaxRecord bounds a record when the server's limits set no
// MaxMessageBytes: a 1 MiB WRITE and its header.
const DefaultMaxRecord = 1<<20 + 64<<10

// maxPooled is the largest buffer kept for reuse; bigger ones (a rare
// huge record) go to the collector.
const maxPooled = 2 << 20

var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 64<<10); return &b }}

func getBuf() *[]byte { return bufPool.Get().(*[]byte) }

func putBuf(bp *[]byte, b []byte) {
	if cap(b) <= maxPooled {
		*bp = b[:0]
		bufPool.Put(bp)
	}
}

// Server dispatches RPC calls to the Handlers registered for their
// program and version. It implements netsrv.StreamHandler (record-marked
// TCP, several calls of a connection served at once) and
// netsrv.PacketHandler (one call per datagram). Register every program
// before serving.
type Server struct {
	// Logger receives handler panics; nil discards.
	Logger *slog.Logger
	// MaxInFlight bounds the calls of one connection served at once;
	// the connection is not read further while that many run. 0: 32.
	MaxInFlight int
	// Metrics, when set, counts the calls.
	Metrics *Metrics

	progs map[uint32]map[uint32]Handler
}

var (
	_ netsrv.StreamHandler = (*Server)(nil)
	_ netsrv.PacketHandler = (*Server)(nil)
)

// Register serves program prog, version vers with h.
func (s *Server) Register(prog, vers uint32, h Handler) {
	if s.progs == nil {
		s.progs = make(map[uint32]map[uint32]Handler)
	}
	if s.progs[prog] == nil {
		s.progs[prog] = make(map[uint32]Handler)
	}
	s.progs[prog][vers] = h
}

// Dispatch serves the call in rec and appends the whole reply message to
// w. It returns false when there is nothing to answer (not a call).
func (s *Server) Dispatch(ctx context.Context, rec []byte, remote netip.AddrPort, w *Writer) bool {
	c := Call{Remote: remote}
	if err := ParseCall(rec, &c); err != nil {
		var rej *RejectError
		var garbage *GarbageError
		switch {
		case errors.As(err, &rej):
			AppendRejected(w, rej)
			s.Metrics.observe(&c, false, 0, true)
		case errors.As(err, &garbage):
			AppendAccepted(w, garbage.XID, GarbageArgs)
			s.Metrics.observe(&c, false, GarbageArgs, false)
		default:
			return false
		}
		return true
	}
	start := w.Len()
	AppendAccepted(w, c.XID, Success)
	statAt := w.Len() - 4
	vers, ok := s.progs[c.Prog]
	if !ok {
		w.Truncate(statAt)
		w.Uint32(uint32(ProgUnavail))
		s.Metrics.observe(&c, false, ProgUnavail, false)
		return true
	}
	h, ok := vers[c.Vers]
	if !ok {
		s.Metrics.observe(&c, false, ProgMismatch, false)
		w.Truncate(statAt)
		w.Uint32(uint32(ProgMismatch))
		keys := make([]uint32, 0, len(vers))
		for v := range vers {
			keys = append(keys, v)
		}
		w.Uint32(slices.Min(keys))
		w.Uint32(slices.Max(keys))
		return true
	}
	stat := s.serve(ctx, h, &c, w)
	defer func() { s.Metrics.observe(&c, true, stat, false) }()
	if w.Len() < statAt+4 {
		stat = SystemErr
		// The handler truncated into the header: start over.
		w.Truncate(start)
		AppendAccepted(w, c.XID, SystemErr)
		return true
	}
	if stat != Success {
		w.Truncate(statAt)
		w.Uint32(uint32(stat))
		if stat == ProgMismatch {
			w.Uint32(c.Vers)
			w.Uint32(c.Vers)
		}
	}
	return true
}

// serve runs one handler, turning a panic into SYSTEM_ERR.
func (s *Server) serve(ctx context.Context, h Handler, c *Call, w *Writer) (stat AcceptStat) {
	defer func() {
		if r := recover(); r != nil {
			s.logger().Error("rpc handler panic", "prog", c.Prog, "vers", c.Vers, "proc", c.Proc,
				"panic", fmt.Sprint(r), "stack", string(debug.Stack()))
			stat = SystemErr
		}
	}()
	return h.ServeRPC(ctx, c, w)
}

func (s *Server) logger() *slog.Logger {
	if s.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return s.Logger
}

// ServeConn implements netsrv.StreamHandler: it reads records one after
// another and serves up to MaxInFlight of them at once, each reply
// written whole. It returns after the replies in flight are written.
func (s *Server) ServeConn(ctx context.Context, c net.Conn) error {
	remote := addrPort(c.RemoteAddr())
	rr := NewRecordReader(c)
	rr.Started = func() { netsrv.MessagePending(ctx, true) }
	n := s.MaxInFlight
	if n <= 0 {
		n = DefaultMaxInFlight
	}
	sem := make(chan struct{}, n)
	var (
		wg      sync.WaitGroup
		wmu     sync.Mutex // one reply on the wire at a time
		failMu  sync.Mutex
		failure error
	)
	defer wg.Wait()
	fail := func(err error) {
		failMu.Lock()
		defer failMu.Unlock()
		if failure == nil {
			failure = err
			c.Close() // stops the read loop
		}
	}
	for {
		sem <- struct{}{}
		bp := getBuf()
		max := netsrv.LimitsFrom(ctx).MaxMessageBytes
		if max <= 0 {
			max = DefaultMaxRecord
		}
		rec, err := rr.ReadRecord(*bp, max)
		netsrv.MessagePending(ctx, false)
		if err == nil && !isCall(rec) {
			// Nothing to answer, and nothing to say the client is in step:
			// finish the calls before it, then close.
			err = fmt.Errorf("%w: message is not an rpc call", netsrv.ErrBadRequest)
		}
		if err != nil {
			putBuf(bp, rec)
			<-sem
			wg.Wait()
			failMu.Lock()
			defer failMu.Unlock()
			if failure != nil {
				return failure
			}
			if errors.Is(err, io.EOF) {
				return nil
			}
			if errors.Is(err, netsrv.ErrBadRequest) {
				return err
			}
			return fmt.Errorf("read rpc record: %w", err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			start := time.Now()
			op := getBuf()
			w := NewWriter(*op)
			w.Uint32(0) // the record mark, filled in below
			ok := s.Dispatch(ctx, rec, remote, w)
			putBuf(bp, rec)
			var err error
			if ok {
				out := w.Bytes()
				MarkRecord(out)
				wmu.Lock()
				_, err = c.Write(out)
				wmu.Unlock()
				if err != nil {
					fail(fmt.Errorf("write rpc reply: %w", err))
				}
			} else {
				err = fmt.Errorf("%w: message is not an rpc call", netsrv.ErrBadRequest)
				fail(err)
			}
			putBuf(op, w.Bytes())
			netsrv.Observe(ctx, start, err)
		}()
	}
}

// isCall reports whether msg holds an XID and the CALL message type.
func isCall(msg []byte) bool {
	return len(msg) >= 8 && msg[4]|msg[5]|msg[6]|msg[7] == 0
}

// ServePacket implements netsrv.PacketHandler: one call per datagram, one
// reply datagram. Datagrams that are not calls are dropped.
func (s *Server) ServePacket(ctx context.Context, pw netsrv.PacketWriter, p []byte, from net.Addr) error {
	op := getBuf()
	w := NewWriter(*op)
	defer func() { putBuf(op, w.Bytes()) }()
	if !s.Dispatch(ctx, p, addrPort(from), w) {
		return fmt.Errorf("%w: datagram is not an rpc call", netsrv.ErrBadRequest)
	}
	if w.Len() > 65507 {
		return fmt.Errorf("rpc reply of %d bytes: %w", w.Len(), netsrv.ErrTooLarge)
	}
	if _, err := pw.WriteTo(w.Bytes(), from); err != nil {
		return fmt.Errorf("send rpc reply: %w", err)
	}
	return nil
}

// addrPort returns a TCP or UDP address as a netip.AddrPort (zero for
// other kinds).
func addrPort(a net.Addr) netip.AddrPort {
	switch a := a.(type) {
	case *net.TCPAddr:
		return a.AddrPort()
	case *net.UDPAddr:
		return a.AddrPort()
	}
	if a != nil {
		if ap, err := netip.ParseAddrPort(a.String()); err == nil {
			return ap
		}
	}
	return netip.AddrPort{}
}
