package oncrpc

import (
	"errors"
	"fmt"
)

// Message types and reply statuses (RFC 5531 section 9).
const (
	msgCall  = 0
	msgReply = 1

	msgAccepted = 0
	msgDenied   = 1

	rpcMismatch = 0
	authError   = 1
)

// RPCVersion is the only ONC RPC version there is.
const RPCVersion = 2

// Limits from RFC 5531: an authenticator body, an AUTH_SYS machine name
// and its supplementary groups.
const (
	maxAuthBytes = 400
	maxMachine   = 255
	maxGIDs      = 16
)

// AuthStat says why a credential was refused (RFC 5531 section 9).
type AuthStat uint32

// The auth_stat values used here.
const (
	AuthBadCred      AuthStat = 1 // malformed credential
	AuthRejectedCred AuthStat = 2 // client must begin a new session
	AuthBadVerf      AuthStat = 3 // malformed verifier
	AuthTooWeak      AuthStat = 5 // flavor not accepted
)

// ErrNotCall is returned by ParseCall for a message that is too short to
// hold an XID or is not a CALL: there is nothing to answer.
var ErrNotCall = errors.New("oncrpc: not an rpc call")

// RejectError is returned by ParseCall for a call answered with
// MSG_DENIED: a wrong RPC version, or a refused credential.
type RejectError struct {
	XID uint32
	// Mismatch is set for RPC_MISMATCH; otherwise Auth says why.
	Mismatch bool
	Auth     AuthStat
}

// Error describes the rejection.
func (e *RejectError) Error() string {
	if e.Mismatch {
		return "oncrpc: rpc version mismatch"
	}
	return fmt.Sprintf("oncrpc: credential rejected (auth_stat %d)", e.Auth)
}

// GarbageError is returned by ParseCall for a call whose header is cut
// short after its XID; it is answered with GARBAGE_ARGS.
type GarbageError struct{ XID uint32 }

// Error describes the call.
func (e *GarbageError) Error() string { return "oncrpc: truncated call header" }

// ParseCall decodes the call header in rec into c, which keeps slices of
// rec. It returns ErrNotCall, a *RejectError or a *GarbageError for calls
// that are not dispatched; the last two carry the XID to answer.
func ParseCall(rec []byte, c *Call) error {
	r := NewReader(rec)
	xid := r.Uint32()
	mtype := r.Uint32()
	if r.Err() != nil || mtype != msgCall {
		return ErrNotCall
	}
	*c = Call{XID: xid, Record: rec, Remote: c.Remote}
	vers := r.Uint32()
	if r.Err() != nil {
		return &GarbageError{XID: xid}
	}
	if vers != RPCVersion {
		return &RejectError{XID: xid, Mismatch: true}
	}
	c.Prog, c.Vers, c.Proc = r.Uint32(), r.Uint32(), r.Uint32()
	if r.Err() != nil {
		return &GarbageError{XID: xid}
	}
	c.Cred.Flavor = r.Uint32()
	c.Cred.Body = r.Opaque(maxAuthBytes)
	if r.Err() != nil {
		return &RejectError{XID: xid, Auth: AuthBadCred}
	}
	c.Verf.Flavor = r.Uint32()
	c.Verf.Body = r.Opaque(maxAuthBytes)
	if r.Err() != nil {
		return &RejectError{XID: xid, Auth: AuthBadVerf}
	}
	switch c.Cred.Flavor {
	case AuthNone:
	case AuthSys:
		sys, err := parseSys(c.Cred.Body)
		if err != nil {
			return &RejectError{XID: xid, Auth: AuthBadCred}
		}
		c.Sys = sys
	default:
		// RPCSEC_GSS, AUTH_DH and the rest are not supported.
		return &RejectError{XID: xid, Auth: AuthTooWeak}
	}
	// With AUTH_NONE and AUTH_SYS the verifier is AUTH_NONE.
	if c.Verf.Flavor != AuthNone {
		return &RejectError{XID: xid, Auth: AuthBadVerf}
	}
	c.Args = r.Rest()
	return nil
}

// parseSys decodes an AUTH_SYS credential body, which must be used whole.
func parseSys(b []byte) (*Cred, error) {
	r := NewReader(b)
	cred := &Cred{Stamp: r.Uint32(), Machine: r.String(maxMachine), UID: r.Uint32(), GID: r.Uint32()}
	n := r.Uint32()
	if r.Err() == nil && n > maxGIDs {
		return nil, ErrGarbage
	}
	if r.Err() == nil && n > 0 {
		cred.GIDs = make([]uint32, n)
		for i := range cred.GIDs {
			cred.GIDs[i] = r.Uint32()
		}
	}
	if r.Err() != nil || r.Len() != 0 {
		return nil, ErrGarbage
	}
	return cred, nil
}

// AppendAccepted writes the header of an accepted reply: MSG_ACCEPTED,
// an AUTH_NONE verifier and stat. For ProgMismatch the caller writes the
// low and high versions after it; for Success, the results.
func AppendAccepted(w *Writer, xid uint32, stat AcceptStat) {
	w.Uint32(xid)
	w.Uint32(msgReply)
	w.Uint32(msgAccepted)
	w.Uint32(AuthNone)
	w.Uint32(0)
	w.Uint32(uint32(stat))
}

// AppendRejected writes a MSG_DENIED reply for e: RPC_MISMATCH with
// versions 2 to 2, or AUTH_ERROR with e.Auth.
func AppendRejected(w *Writer, e *RejectError) {
	w.Uint32(e.XID)
	w.Uint32(msgReply)
	w.Uint32(msgDenied)
	if e.Mismatch {
		w.Uint32(rpcMismatch)
		w.Uint32(RPCVersion)
		w.Uint32(RPCVersion)
		return
	}
	w.Uint32(authError)
	w.Uint32(uint32(e.Auth))
}

// Reply is a decoded reply header (for clients and the go-nfs forwarder).
type Reply struct {
	XID uint32
	// Denied is set for MSG_DENIED; Stat is then meaningless.
	Denied bool
	Stat   AcceptStat
	// Results are the bytes after the accept status.
	Results []byte
}

// ParseReply decodes a reply message; Results alias msg.
func ParseReply(msg []byte) (Reply, error) {
	r := NewReader(msg)
	rep := Reply{XID: r.Uint32()}
	if mt := r.Uint32(); r.Err() == nil && mt != msgReply {
		return rep, fmt.Errorf("oncrpc: message type %d is not a reply", mt)
	}
	switch st := r.Uint32(); {
	case r.Err() != nil:
	case st == msgDenied:
		rep.Denied = true
		rep.Results = r.Rest()
		return rep, nil
	case st != msgAccepted:
		return rep, fmt.Errorf("oncrpc: bad reply status %d", st)
	}
	r.Uint32()             // verifier flavor
	r.Opaque(maxAuthBytes) // verifier body
	rep.Stat = AcceptStat(r.Uint32())
	if r.Err() != nil {
		return rep, fmt.Errorf("oncrpc: truncated reply: %w", r.Err())
	}
	rep.Results = r.Rest()
	return rep, nil
}

// AppendCall writes a call header with the given credential and an
// AUTH_NONE verifier (for clients and tests); the arguments follow.
func AppendCall(w *Writer, xid, prog, vers, proc uint32, cred OpaqueAuth) {
	w.Uint32(xid)
	w.Uint32(msgCall)
	w.Uint32(RPCVersion)
	w.Uint32(prog)
	w.Uint32(vers)
	w.Uint32(proc)
	w.Uint32(cred.Flavor)
	w.Opaque(cred.Body)
	w.Uint32(AuthNone)
	w.Uint32(0)
}

// SysCred encodes an AUTH_SYS credential.
func SysCred(c Cred) OpaqueAuth {
	w := NewWriter(nil)
	w.Uint32(c.Stamp)
	w.String(c.Machine)
	w.Uint32(c.UID)
	w.Uint32(c.GID)
	w.Uint32(uint32(len(c.GIDs)))
	for _, g := range c.GIDs {
		w.Uint32(g)
	}
	return OpaqueAuth{Flavor: AuthSys, Body: w.Bytes()}
}
