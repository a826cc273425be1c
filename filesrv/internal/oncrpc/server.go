package oncrpc

import (
	"context"
	"encoding/binary"
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

// smallBuf is the capacity of the buffers every record and reply start
// with; bigger ones (1 MiB WRITE records and READ replies) come from
// bigFree, so a connection moving big blocks reuses the same few
// buffers instead of allocating (and zeroing, and collecting) a new one
// per call.
const smallBuf = 64 << 10

var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, smallBuf); return &b }}

// bigFree keeps a few big buffers (capacity above smallBuf) for reuse. It
// is a free list rather than a sync.Pool: a pool is emptied by the
// garbage collector, and each 1 MiB buffer allocated again brings the
// next collection nearer, so a pool of them keeps emptying itself.
var bigFree = make(chan *[]byte, maxBigFree)

// maxBigFree bounds the big buffers kept: about 8.5 MiB at most.
const maxBigFree = 8

func getBuf() *[]byte { return bufPool.Get().(*[]byte) }

func putBuf(bp *[]byte, b []byte) {
	switch {
	case cap(b) > maxPooled:
	case cap(b) > smallBuf:
		*bp = b[:0]
		select {
		case bigFree <- bp:
		default:
		}
	default:
		*bp = b[:0]
		bufPool.Put(bp)
	}
}

// growBuf extends b by n bytes, moving it to a bigger buffer if needed:
// one from bigFree when one is big enough, else a new one with room for
// the largest record, so that it can be reused for any call.
func growBuf(b []byte, n int) []byte {
	need := len(b) + n
	if need <= cap(b) {
		return b[:need]
	}
	var nb []byte
	if need <= maxPooled {
		select {
		case bp := <-bigFree:
			if cap(*bp) >= need {
				nb = (*bp)[:len(b)]
			} else {
				putBuf(bp, *bp)
			}
		default:
		}
	}
	if nb == nil {
		size := max(need, 2*cap(b))
		if size > smallBuf && size <= DefaultMaxRecord {
			size = DefaultMaxRecord
		}
		nb = make([]byte, len(b), size)
	}
	copy(nb, b)
	return nb[:need]
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
			s.Metrics.observe(&c, false, 0, true, 0)
		case errors.As(err, &garbage):
			AppendAccepted(w, garbage.XID, GarbageArgs)
			s.Metrics.observe(&c, false, GarbageArgs, false, 0)
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
		s.Metrics.observe(&c, false, ProgUnavail, false, 0)
		return true
	}
	h, ok := vers[c.Vers]
	if !ok {
		s.Metrics.observe(&c, false, ProgMismatch, false, 0)
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
	t0 := time.Now()
	stat := s.serve(ctx, h, &c, w)
	defer func() { s.Metrics.observe(&c, true, stat, false, time.Since(t0)) }()
	if stat != Success || w.Len() < statAt+4 {
		w.dropTail() // a reply cut short does not end with the data
	}
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
//
// The goroutines of a connection take turns as its reader (leader and
// followers): the one that read a call serves it itself, so that no
// handoff stands between a call and its handler, and passes the reading
// on to an idle goroutine, or to a new one when none is idle. A call
// alone on the connection (nothing else in flight or received) is
// served first, and the reading passed on only if it takes longer than
// passAfter: a client that waits for each reply (libnfs, most tools)
// then wakes no goroutine at all, where a wakeup per call cost it about
// 5% of its calls per second on a 2-CPU machine (measured with libnfs
// creating files). The goroutines live as long as the connection, at most
// MaxInFlight+1 of them: a goroutine per call would start on a small
// stack and grow it again for every call.
func (s *Server) ServeConn(ctx context.Context, c net.Conn) error {
	n := s.MaxInFlight
	if n <= 0 {
		n = DefaultMaxInFlight
	}
	cs := &connServer{
		s:      s,
		ctx:    ctx,
		c:      c,
		remote: addrPort(c.RemoteAddr()),
		rr:     NewRecordReader(c),
		sem:    make(chan struct{}, n),
		turn:   make(chan struct{}),
	}
	cs.rr.Started = func() { netsrv.MessagePending(ctx, true) }
	cs.splicer, _ = c.(splicer)
	cs.lead()
	cs.wg.Wait()
	cs.mu.Lock()
	defer cs.mu.Unlock()
	switch err := cs.readErr; {
	case cs.failure != nil:
		return cs.failure
	case errors.Is(err, io.EOF):
		return nil
	case errors.Is(err, netsrv.ErrBadRequest):
		return err
	default:
		return fmt.Errorf("read rpc record: %w", err)
	}
}

// connServer is the state of one connection that ServeConn serves.
type connServer struct {
	s      *Server
	ctx    context.Context
	c      net.Conn
	remote netip.AddrPort
	rr     *RecordReader
	// splicer, when the connection is one, sends spliced reply data.
	splicer splicer
	// sem holds a slot for each call read and not yet answered.
	sem chan struct{}
	// turn passes the reader's role to an idle goroutine; unbuffered, so
	// it is only ever given to one waiting for it. Closed once the
	// connection is read no more, which ends the idle goroutines.
	turn chan struct{}
	wg   sync.WaitGroup // the goroutines besides ServeConn's own
	wmu  sync.Mutex     // one reply on the wire at a time

	mu      sync.Mutex
	failure error // the first failure to write a reply
	readErr error // why reading stopped
}

// lead reads and serves calls while its goroutine is the reader, and
// waits to be the reader again after serving a call it passed the
// reading on for. It returns once the connection is read no more.
func (cs *connServer) lead() {
	for {
		cs.sem <- struct{}{}
		bp := getBuf()
		max := netsrv.LimitsFrom(cs.ctx).MaxMessageBytes
		if max <= 0 {
			max = DefaultMaxRecord
		}
		rec, err := cs.rr.ReadRecord(*bp, max)
		netsrv.MessagePending(cs.ctx, false)
		if err == nil && !isCall(rec) {
			// Nothing to answer, and nothing to say the client is in step:
			// finish the calls before it, then close.
			err = fmt.Errorf("%w: message is not an rpc call", netsrv.ErrBadRequest)
		}
		if err != nil {
			putBuf(bp, rec)
			<-cs.sem
			cs.mu.Lock()
			cs.readErr = err
			cs.mu.Unlock()
			close(cs.turn)
			return
		}
		j := job{rec: rec, bp: bp}
		if len(cs.sem) == 1 && cs.rr.Buffered() == 0 {
			if cs.s.quick(rec) {
				// Alone in flight, no other call sent behind it, and quick:
				// cheaper than waking another goroutine to read (see
				// QuickHandler). A call arriving meanwhile waits for it.
				cs.serve(j)
				continue
			}
			// Alone, but maybe slow: a client that waits for each reply
			// sends nothing meanwhile, so another goroutine reads on only
			// once the call has taken passAfter.
			t := time.AfterFunc(passAfter, cs.pass)
			cs.serve(j)
			if t.Stop() {
				continue
			}
		} else {
			cs.pass()
			cs.serve(j)
		}
		if _, ok := <-cs.turn; !ok {
			return
		}
	}
}

// passAfter is how long a call served alone keeps the connection from
// being read: a call sent behind it waits at most that long to start.
const passAfter = time.Millisecond

// pass hands the reading on: to an idle goroutine of the connection, or
// to a new one when none is idle.
func (cs *connServer) pass() {
	select {
	case cs.turn <- struct{}{}:
	default:
		cs.wg.Add(1)
		go func() {
			defer cs.wg.Done()
			cs.lead()
		}()
	}
}

// fail records the first failure to write a reply and closes the
// connection, which stops the reader.
func (cs *connServer) fail(err error) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if cs.failure == nil {
		cs.failure = err
		cs.c.Close()
	}
}

// serve answers the call in j and frees its slot.
func (cs *connServer) serve(j job) {
	defer func() { <-cs.sem }()
	start := time.Now()
	op := getBuf()
	w := NewWriter(*op)
	w.spliceOK = cs.splicer != nil
	w.Uint32(0) // the record mark, filled in below
	ok := cs.s.Dispatch(cs.ctx, j.rec, cs.remote, w)
	putBuf(j.bp, j.rec)
	var err error
	if ok {
		out := w.Bytes()
		t := w.tail
		extra := 0
		if t != nil {
			extra = t.n + t.pad
		}
		binary.BigEndian.PutUint32(out, uint32(len(out)-4+extra)|lastFragment)
		cs.wmu.Lock()
		_, err = cs.c.Write(out)
		if err == nil && t != nil {
			err = cs.sendTail(t)
			w.tail = nil
		}
		cs.wmu.Unlock()
		if err != nil {
			cs.fail(fmt.Errorf("write rpc reply: %w", err))
		}
	} else {
		err = fmt.Errorf("%w: message is not an rpc call", netsrv.ErrBadRequest)
		cs.fail(err)
	}
	w.dropTail()
	putBuf(op, w.Bytes())
	netsrv.Observe(cs.ctx, start, err)
}

// zeroPad pads spliced data to a multiple of four bytes.
var zeroPad [4]byte

// splicer is a connection that sends data from a pipe without copying
// it: netsrv.Conn on Linux.
type splicer interface {
	SpliceFrom(pipe int, n int) (int64, error)
}

// sendTail sends the spliced data of a reply, and its padding, after the
// rest; the pipe goes back to the pool once empty.
func (cs *connServer) sendTail(t *tail) error {
	sent, err := cs.splicer.SpliceFrom(t.p.r, t.n)
	t.p.put(sent == int64(t.n))
	if err == nil && sent != int64(t.n) {
		err = fmt.Errorf("spliced %d of %d bytes", sent, t.n)
	}
	if err == nil && t.pad > 0 {
		_, err = cs.c.Write(zeroPad[:t.pad])
	}
	return err
}

// quick reports whether the call in rec (a call: see isCall) is one its
// handler serves quickly.
func (s *Server) quick(rec []byte) bool {
	if len(rec) < 24 || binary.BigEndian.Uint32(rec[8:]) != RPCVersion {
		return false
	}
	h, ok := s.progs[binary.BigEndian.Uint32(rec[12:])][binary.BigEndian.Uint32(rec[16:])].(QuickHandler)
	return ok && h.Quick(binary.BigEndian.Uint32(rec[20:]))
}

// job is a record to serve and the pooled buffer that holds it.
type job struct {
	rec []byte
	bp  *[]byte
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
