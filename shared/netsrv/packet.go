package netsrv

import (
	"errors"
	"net"
	"net/netip"
	"runtime"
	"sync"
	"time"

	"example.com/appliance/shared/listen"
)

// maxDatagram is the largest UDP payload.
const maxDatagram = 65535

// ServePacket reads datagrams from pc and hands each to s.PacketHandler,
// with Limits.PacketWorkers goroutines reading at once. It always returns a
// non-nil error: ErrServerClosed after Shutdown. ServePacket takes ownership
// of pc and closes it once the handlers in flight are done.
func (s *Server) ServePacket(pc net.PacketConn) error {
	s.init()
	if s.PacketHandler == nil {
		pc.Close()
		return errors.New("netsrv: ServePacket needs a PacketHandler")
	}
	p := &packetConn{PacketConn: pc, transport: listen.Network(pc.LocalAddr())}
	p.stats = s.Metrics.forTransport(p.transport)
	if !s.trackPacket(p, true) {
		pc.Close()
		return ErrServerClosed
	}
	newSession := func() session { return plainSession{pc} }
	if uc, ok := pc.(*net.UDPConn); ok {
		newSession = func() session { return &udpSession{uc: uc} }
		if replyFromDestination(uc) {
			newSession = func() session { return newPktinfoSession(uc) }
		}
	}
	workers := s.Limits().PacketWorkers
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	errc := make(chan error, workers)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errc <- s.packetLoop(p, newSession())
		}()
	}
	wg.Wait()
	s.trackPacket(p, false)
	pc.Close()
	if s.closed.Load() {
		return ErrServerClosed
	}
	return <-errc
}

func (s *Server) packetLoop(p *packetConn, sess session) error {
	buf := make([]byte, maxDatagram+1)
	w := &replyWriter{sess: sess, stats: p.stats}
	var r retrier
	for {
		n, from, err := sess.read(buf)
		if err != nil {
			if err := s.retry(&r, "read", p.LocalAddr(), err); err != nil {
				return err
			}
			continue
		}
		r.backoff = 0
		p.stats.received(n)
		limit := s.limits.Load().MaxMessageBytes
		if limit <= 0 || limit > maxDatagram {
			limit = maxDatagram
		}
		if n > limit {
			p.stats.rejectedMessage()
			s.Logger.Debug("datagram too large; dropped", "transport", p.transport, "remote", remoteString(from), "bytes", n, "max", limit)
			continue
		}
		s.servePacket(p, w, buf[:n], from)
	}
}

func (s *Server) servePacket(p *packetConn, w PacketWriter, b []byte, from net.Addr) {
	start := time.Now()
	err := func() (err error) {
		defer func() {
			if r := recover(); r != nil {
				err = s.recovered(r)
			}
		}()
		return s.PacketHandler.ServePacket(s.ctx, w, b, from)
	}()
	p.stats.request(start, err)
	if errors.Is(err, ErrTooLarge) {
		p.stats.rejectedMessage()
	}
	switch {
	case err == nil:
	case quiet(err):
		s.Logger.Debug("request refused", "transport", p.transport, "remote", remoteString(from), "err", err)
	default:
		s.Logger.Warn("request failed", "transport", p.transport, "remote", remoteString(from), "err", err)
	}
}

type packetConn struct {
	net.PacketConn
	transport string
	stats     *transportMetrics
}

// session is one reader goroutine's way to read requests and send replies.
// The sender address read returns is reused for the next datagram.
type session interface {
	read(b []byte) (int, net.Addr, error)
	writeTo(b []byte, addr net.Addr) (int, error)
}

// replyWriter is the PacketWriter handlers get; it counts what they send.
type replyWriter struct {
	sess  session
	stats *transportMetrics
}

// WriteTo sends a reply.
func (w *replyWriter) WriteTo(b []byte, addr net.Addr) (int, error) {
	n, err := w.sess.writeTo(b, addr)
	w.stats.sent(n)
	return n, err
}

type plainSession struct{ pc net.PacketConn }

func (p plainSession) read(b []byte) (int, net.Addr, error)         { return p.pc.ReadFrom(b) }
func (p plainSession) writeTo(b []byte, addr net.Addr) (int, error) { return p.pc.WriteTo(b, addr) }

// udpSession reads without allocating a sender address per datagram, as
// ReadFrom does.
type udpSession struct {
	uc   *net.UDPConn
	from net.UDPAddr
	ip   [16]byte
}

func (u *udpSession) read(b []byte) (int, net.Addr, error) {
	n, ap, err := u.uc.ReadFromUDPAddrPort(b)
	if err != nil {
		return n, nil, err
	}
	return n, u.setFrom(ap), nil
}

func (u *udpSession) setFrom(ap netip.AddrPort) *net.UDPAddr {
	a := ap.Addr()
	if a.Is4() {
		v4 := a.As4()
		u.from.IP = append(u.ip[:0], v4[:]...)
	} else {
		v6 := a.As16()
		u.from.IP = append(u.ip[:0], v6[:]...)
	}
	u.from.Port, u.from.Zone = int(ap.Port()), a.Zone()
	return &u.from
}

func (u *udpSession) writeTo(b []byte, addr net.Addr) (int, error) { return u.uc.WriteTo(b, addr) }
