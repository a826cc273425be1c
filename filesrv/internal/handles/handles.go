// Package handles makes filesrv's NFS file handles persistent: a handle
// names a file by export, inode number and generation, so it survives a
// server restart, any number of files and the rename of a parent folder,
// and maps back to the same file (or to NFS3ERR_STALE once it is gone).
package handles

import (
	"errors"

	"example.com/appliance/filesrv/internal/export"
)

// Len is the length of every handle: a multiple of 4 (go-nfs does not skip
// XDR padding after an opaque).
const Len = 16

// Errors from Resolve.
var (
	ErrStale     = errors.New("stale file handle")    // NFS3ERR_STALE
	ErrBadHandle = errors.New("malformed file handle") // NFS3ERR_BADHANDLE
)

// Store maps handles to paths and back. Safe for concurrent use.
type Store struct{}

// Open loads the index kept in stateDir (created if missing) for exps.
func Open(stateDir string, exps []*export.Export) (*Store, error) { panic("TODO") }

// Close saves the index.
func (s *Store) Close() error { panic("TODO") }

// Handle returns the handle of path (slash-separated, relative to the
// export root; "" or "." is the root) and remembers where it is.
func (s *Store) Handle(e *export.Export, path string) ([]byte, error) { panic("TODO") }

// Resolve returns the export and current path of a handle.
func (s *Store) Resolve(h []byte) (*export.Export, string, error) { panic("TODO") }

// Moved records a rename, so handles under oldPath resolve under newPath.
func (s *Store) Moved(e *export.Export, oldPath, newPath string) { panic("TODO") }

// Removed records that path no longer exists (its handle may still be
// valid through another hard link).
func (s *Store) Removed(e *export.Export, path string) { panic("TODO") }
