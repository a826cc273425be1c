package timeproto

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"example.com/appliance/shared/netsrv"
)

// Format is how the time in a reply is written.
type Format int

// The reply formats.
const (
	// CTime is C's ctime and Python's time.ctime(), in local time:
	// "Wed Nov 25 11:56:10 2026". The chapter's format and the default.
	CTime Format = iota
	// RFC3339 is "2026-11-25T11:56:10+01:00", in local time.
	RFC3339
	// Unix is seconds since 1970: "1795604170".
	Unix
)

// ParseFormat reads a format name: ctime, rfc3339 or unix.
func ParseFormat(s string) (Format, error) {
	switch s {
	case "ctime":
		return CTime, nil
	case "rfc3339":
		return RFC3339, nil
	case "unix":
		return Unix, nil
	}
	return 0, fmt.Errorf("unknown format %q (want ctime, rfc3339 or unix)", s)
}

// String returns the format's name, as ParseFormat reads it.
func (f Format) String() string {
	switch f {
	case RFC3339:
		return "rfc3339"
	case Unix:
		return "unix"
	}
	return "ctime"
}

func (f Format) append(b []byte, t time.Time) []byte {
	switch f {
	case RFC3339:
		return t.AppendFormat(b, time.RFC3339)
	case Unix:
		return strconv.AppendInt(b, t.Unix(), 10)
	}
	return t.AppendFormat(b, "Mon Jan _2 15:04:05 2006")
}

// Handler answers timestamp requests over streams and datagrams. The zero
// value writes ctime stamps from the system clock.
type Handler struct {
	// Now, when set, replaces time.Now (for tests).
	Now func() time.Time

	format atomic.Int32
	prefix atomic.Pointer[prefix] // "[stamp] " of the current second
}

var (
	_ netsrv.StreamHandler = (*Handler)(nil)
	_ netsrv.PacketHandler = (*Handler)(nil)
)

type prefix struct {
	sec    int64
	format Format
	b      []byte
}

// SetFormat changes the reply format; it is safe while serving.
func (h *Handler) SetFormat(f Format) { h.format.Store(int32(f)) }

// AppendReply appends the reply to msg to b.
func (h *Handler) AppendReply(b, msg []byte) []byte {
	return append(append(b, h.stamp()...), msg...)
}

// stamp returns "[<time>] ", formatting only once a second.
func (h *Handler) stamp() []byte {
	now := time.Now
	if h.Now != nil {
		now = h.Now
	}
	t := now()
	f := Format(h.format.Load())
	if p := h.prefix.Load(); p != nil && p.sec == t.Unix() && p.format == f {
		return p.b
	}
	b := append(f.append([]byte{'['}, t), "] "...)
	h.prefix.Store(&prefix{sec: t.Unix(), format: f, b: b})
	return b
}

// readSize is the size of one read: the chapter's BUFSIZ. It bounds what
// an idle connection holds.
const readSize = 1024

var outPool = sync.Pool{New: func() any { b := make([]byte, 0, 2*readSize); return &b }}

// withBuffer lends f a pooled buffer for building replies; f returns it,
// grown or not, and a buffer grown past 64 KiB is left to the collector.
func withBuffer(f func(b []byte) []byte) {
	bp := outPool.Get().(*[]byte)
	if out := f((*bp)[:0]); cap(out) <= 64<<10 {
		*bp = out
		outPool.Put(bp)
	}
}

// ServeConn implements netsrv.StreamHandler.
func (h *Handler) ServeConn(ctx context.Context, c net.Conn) error {
	var fr Framer
	buf := make([]byte, readSize)
	for {
		size := len(buf)
		if max := netsrv.LimitsFrom(ctx).MaxMessageBytes; max > 0 && max < size {
			size = max // a raw read is one message: keep it within the limit
		}
		n, err := c.Read(buf[:size])
		if n > 0 {
			// Read again after the wait: a reload applies to open connections too.
			fr.Max = netsrv.LimitsFrom(ctx).MaxMessageBytes
			if werr := h.reply(ctx, c, func(emit func([]byte)) error { return fr.Feed(buf[:n], emit) }); werr != nil {
				return werr
			}
			netsrv.MessagePending(ctx, fr.Pending())
		}
		if errors.Is(err, io.EOF) {
			return h.reply(ctx, c, func(emit func([]byte)) error { fr.Flush(emit); return nil })
		}
		if err != nil {
			return err
		}
	}
}

// reply writes the replies to the messages frame emits, in one write.
func (h *Handler) reply(ctx context.Context, c net.Conn, frame func(emit func([]byte)) error) error {
	start := time.Now()
	count := 0
	var ferr, werr error
	withBuffer(func(out []byte) []byte {
		ferr = frame(func(msg []byte) {
			out = h.AppendReply(out, msg)
			count++
		})
		if len(out) > 0 {
			_, werr = c.Write(out)
		}
		return out
	})
	for range count {
		netsrv.Observe(ctx, start, werr)
	}
	if werr != nil {
		return fmt.Errorf("write reply: %w", werr)
	}
	return ferr
}

// maxUDPReply is the largest UDP payload over IPv4.
const maxUDPReply = 65507

// ServePacket implements netsrv.PacketHandler.
func (h *Handler) ServePacket(_ context.Context, w netsrv.PacketWriter, p []byte, from net.Addr) error {
	if from == nil || from.String() == "" {
		return fmt.Errorf("%w: datagram from an unnamed socket, nowhere to reply (the client must bind its socket)", netsrv.ErrBadRequest)
	}
	if ua, ok := from.(*net.UDPAddr); ok && ua.Port < 1024 {
		// A reply to a system port could start a loop with an echo-like
		// service there, the classic UDP echo/chargen storm.
		return fmt.Errorf("%w: datagram from system port %d dropped", netsrv.ErrBadRequest, ua.Port)
	}
	var err error
	withBuffer(func(out []byte) []byte {
		out = h.AppendReply(out, p)
		if _, ok := from.(*net.UDPAddr); ok && len(out) > maxUDPReply {
			err = fmt.Errorf("%w: the reply to a %d-byte datagram would not fit in one", netsrv.ErrTooLarge, len(p))
			return out
		}
		if _, werr := w.WriteTo(out, from); werr != nil {
			err = fmt.Errorf("send reply: %w", werr)
		}
		return out
	})
	return err
}
