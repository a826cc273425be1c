// Package nfs3 serves the NFS version 3 program (RFC 1813) for filesrv.
//
// go-nfs serves the procedures it gets right (NULL, READLINK, FSSTAT,
// PATHCONF, and REMOVE, RMDIR and RENAME once this package has
// checked them); this package serves the rest itself: real attributes,
// persistent handles, AUTH_SYS identities, durable WRITE and COMMIT,
// EXCLUSIVE create, LINK, and READDIR(PLUS) with stable cookies.
package nfs3

import (
	"context"
	"log/slog"

	"example.com/appliance/filesrv/internal/export"
	"example.com/appliance/filesrv/internal/handles"
	"example.com/appliance/filesrv/internal/oncrpc"
)

// Program and version served.
const (
	Program = 100003
	Version = 3
)

// Forwarder passes a call to go-nfs and returns the reply's accept status
// and the procedure's results (the bytes after the accept status).
type Forwarder func(ctx context.Context, c *oncrpc.Call) (oncrpc.AcceptStat, []byte, error)

// Config configures a Server.
type Config struct {
	Exports []*export.Export
	Handles *handles.Store
	Forward Forwarder
	Logger  *slog.Logger
	// Verifier is the write verifier; it must change on every start.
	Verifier [8]byte
	// MaxIO is the largest READ and WRITE, advertised by FSINFO.
	MaxIO int
}

// Server serves NFSv3 calls. It implements oncrpc.Handler.
type Server struct{}

// New returns a Server.
func New(cfg Config) *Server { panic("TODO") }

// ServeRPC implements oncrpc.Handler.
func (s *Server) ServeRPC(ctx context.Context, c *oncrpc.Call, reply *oncrpc.Writer) oncrpc.AcceptStat {
	panic("TODO")
}

// Close closes cached open files after syncing nothing: data not yet
// committed stays unstable, as NFS allows.
func (s *Server) Close() error { panic("TODO") }
