// Package oncrpc is the ONC RPC version 2 layer (RFC 5531) of filesrv:
// XDR, record marking over TCP, call decoding, reply encoding and the
// dispatch of calls to programs.
package oncrpc

import (
	"context"
	"net/netip"
)

// Auth flavors.
const (
	AuthNone = 0
	AuthSys  = 1
)

// AcceptStat is the status of an accepted call (RFC 5531 section 9).
type AcceptStat uint32

// The accept_stat values.
const (
	Success      AcceptStat = 0
	ProgUnavail  AcceptStat = 1
	ProgMismatch AcceptStat = 2 // the server writes the supported low/high versions
	ProcUnavail  AcceptStat = 3
	GarbageArgs  AcceptStat = 4
	SystemErr    AcceptStat = 5
)

// OpaqueAuth is an authenticator (credential or verifier) as sent.
type OpaqueAuth struct {
	Flavor uint32
	Body   []byte
}

// Cred is an AUTH_SYS credential (RFC 5531 appendix A).
type Cred struct {
	Stamp   uint32
	Machine string
	UID     uint32
	GID     uint32
	GIDs    []uint32
}

// Call is one decoded RPC call.
type Call struct {
	XID  uint32
	Prog uint32
	Vers uint32
	Proc uint32
	Cred OpaqueAuth
	Verf OpaqueAuth
	// Sys is the parsed AUTH_SYS credential, nil for AUTH_NONE.
	Sys *Cred
	// Args are the procedure's arguments, undecoded.
	Args []byte
	// Remote is the client's address (for export access checks).
	Remote netip.AddrPort
	// Record is the whole call as received (header and arguments), so a
	// call can be forwarded as is.
	Record []byte
}

// Handler serves the procedures of one program version. ServeRPC decodes
// c.Args, writes the procedure's results into reply and returns Success,
// or returns another AcceptStat (and writes nothing). It must not keep
// reply or c.Args after it returns.
type Handler interface {
	ServeRPC(ctx context.Context, c *Call, reply *Writer) AcceptStat
}

// QuickHandler is a Handler that names the procedures it serves quickly:
// with a few system calls that do not sync anything to the disk
// (GETATTR, LOOKUP, READ). When such a call is alone on its connection
// (no other call in flight, no bytes of another received behind it),
// ServeConn serves it without even arming the timer that would pass the
// reading on to another goroutine (see ServeConn): a call that arrives
// meanwhile waits for it to end before it is read, which is why only
// quick calls are served so.
type QuickHandler interface {
	Handler
	Quick(proc uint32) bool
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(ctx context.Context, c *Call, reply *Writer) AcceptStat

// ServeRPC implements Handler.
func (f HandlerFunc) ServeRPC(ctx context.Context, c *Call, reply *Writer) AcceptStat {
	return f(ctx, c, reply)
}
