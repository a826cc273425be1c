// Package portmap is filesrv's portmapper: program 100000 version 2 (RFC
// 1833), which tells clients the ports of NFS and MOUNT. It answers
// GETPORT and DUMP from a fixed table and refuses SET and UNSET, so no
// other program can register with it.
package portmap

import (
	"context"
	"sync"

	"example.com/appliance/filesrv/internal/oncrpc"
)

// Program and version served.
const (
	Program = 100000
	Version = 2
)

// Procedures of version 2.
const (
	procNull    = 0
	procSet     = 1
	procUnset   = 2
	procGetport = 3
	procDump    = 4
	procCallit  = 5
)

// Protocol numbers in a mapping.
const (
	TCP = 6
	UDP = 17
)

// Mapping is one registered program version on one port.
type Mapping struct {
	Prog, Vers, Prot, Port uint32
}

// Server answers portmapper calls. It implements oncrpc.Handler and is
// safe for concurrent use.
type Server struct {
	mu   sync.RWMutex
	maps []Mapping
}

var _ oncrpc.Handler = (*Server)(nil)

// New returns a Server that publishes maps.
func New(maps []Mapping) *Server {
	return &Server{maps: append([]Mapping(nil), maps...)}
}

// Set replaces the published mappings.
func (s *Server) Set(maps []Mapping) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.maps = append([]Mapping(nil), maps...)
}

// Mappings returns the published mappings.
func (s *Server) Mappings() []Mapping {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return append([]Mapping(nil), s.maps...)
}

// Port returns the port of prog, vers over prot, or 0.
func (s *Server) Port(prog, vers, prot uint32) uint32 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	for _, m := range s.maps {
		if m.Prog == prog && m.Vers == vers && m.Prot == prot {
			return m.Port
		}
	}
	return 0
}

// ServeRPC implements oncrpc.Handler.
func (s *Server) ServeRPC(_ context.Context, c *oncrpc.Call, reply *oncrpc.Writer) oncrpc.AcceptStat {
	r := oncrpc.NewReader(c.Args)
	switch c.Proc {
	case procNull:
		return oncrpc.Success
	case procSet, procUnset:
		readMapping(r)
		if r.Err() != nil {
			return oncrpc.GarbageArgs
		}
		// The table is fixed: registrations are refused.
		reply.Bool(false)
		return oncrpc.Success
	case procGetport:
		m := readMapping(r)
		if r.Err() != nil {
			return oncrpc.GarbageArgs
		}
		reply.Uint32(s.Port(m.Prog, m.Vers, m.Prot))
		return oncrpc.Success
	case procDump:
		for _, m := range s.Mappings() {
			reply.Bool(true)
			reply.Uint32(m.Prog)
			reply.Uint32(m.Vers)
			reply.Uint32(m.Prot)
			reply.Uint32(m.Port)
		}
		reply.Bool(false)
		return oncrpc.Success
	case procCallit:
		// CALLIT would make this server a relay for spoofed UDP calls.
		return oncrpc.ProcUnavail
	}
	return oncrpc.ProcUnavail
}

func readMapping(r *oncrpc.Reader) Mapping {
	return Mapping{Prog: r.Uint32(), Vers: r.Uint32(), Prot: r.Uint32(), Port: r.Uint32()}
}
