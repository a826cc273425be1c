// Package timeproto is the timestamp protocol of the book chapter's
// tsTserv/tsUserv servers: every message a client sends comes back as
// "[<time>] <message>". Over a datagram socket a message is one datagram.
// Over a stream it is framed as docs/tsserv.md describes, so that every
// client style of the chapter works unchanged:
//
//   - Until a connection has sent a line feed, each read is one message,
//     as in the chapter's recv(BUFSIZ) loop: the basic client sends bare
//     text with no newline and waits for the reply.
//   - Once a line feed has been seen, the connection is line-framed: each
//     line, with its CRLF or LF, is one message and its reply ends with the
//     same terminator. A final line without a terminator is answered when
//     the client closes its side.
//   - A line longer than the message limit ends the connection.
package timeproto

import (
	"bytes"
	"fmt"

	"example.com/appliance/shared/netsrv"
)

// ErrTooLong is returned by a Framer for a line over its limit. It wraps
// netsrv.ErrTooLarge, so the server counts it as a rejected message.
var ErrTooLong = fmt.Errorf("timeproto: message too long: %w", netsrv.ErrTooLarge)

// Framer splits a stream into messages. The zero value is ready, with no
// size limit.
type Framer struct {
	// Max is the largest message in bytes, terminator included; 0: none.
	Max int

	lines   bool   // a line feed has been seen: frame by lines
	pending []byte // start of a line not yet ended
}

// Feed takes the bytes of one read and calls emit for each message they
// complete, in order. emit must not keep the slice.
func (f *Framer) Feed(p []byte, emit func(msg []byte)) error {
	if !f.lines {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			if f.Max > 0 && len(p) > f.Max {
				return fmt.Errorf("%w: a read of %d bytes, limit %d", ErrTooLong, len(p), f.Max)
			}
			emit(p)
			return nil
		}
		f.lines = true
	}
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			if f.Max > 0 && len(f.pending)+len(p) > f.Max {
				return fmt.Errorf("%w: over %d bytes without a line feed", ErrTooLong, f.Max)
			}
			f.pending = append(f.pending, p...)
			return nil
		}
		line := p[:i+1]
		p = p[i+1:]
		if len(f.pending) > 0 {
			line = append(f.pending, line...)
			f.pending = f.pending[:0]
		}
		if f.Max > 0 && len(line) > f.Max {
			return fmt.Errorf("%w: a line of %d bytes, limit %d", ErrTooLong, len(line), f.Max)
		}
		emit(line)
	}
	if len(f.pending) == 0 && cap(f.pending) > 4<<10 {
		f.pending = nil // do not keep a long line's buffer on an idle connection
	}
	return nil
}

// Pending reports whether the start of a line has been read but not its end.
func (f *Framer) Pending() bool { return len(f.pending) > 0 }

// Flush emits the unterminated line left when the client closed its side.
func (f *Framer) Flush(emit func(msg []byte)) {
	if len(f.pending) > 0 {
		emit(f.pending)
		f.pending = nil
	}
}
