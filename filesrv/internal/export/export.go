// Package export describes filesrv's exports: which folder is shared under
// which path, to which clients, read-only or not, and how client identities
// map to local ones.
package export

import (
	"hash/fnv"
	"net/netip"
	"os"

	"example.com/appliance/filesrv/internal/oncrpc"
)

// Squash says how AUTH_SYS identities map to local ones.
type Squash int

// The identity mappings.
const (
	// RootSquash maps uid 0 to the anonymous user and trusts other uids
	// (the NFS default).
	RootSquash Squash = iota
	// AllSquash maps every client user to the anonymous user.
	AllSquash
	// NoSquash trusts the client's AUTH_SYS uid and gids, root included.
	NoSquash
)

// Export is one shared folder.
type Export struct {
	// Path is what clients mount, e.g. "/export". Clean, absolute.
	Path string
	// Dir is the backing folder on this machine.
	Dir string
	// Root confines every file operation to Dir.
	Root     *os.Root
	ReadOnly bool
	// Clients that may mount; empty means nobody.
	Clients []netip.Prefix
	Squash  Squash
	// AnonUID and AnonGID are the squashed identity.
	AnonUID, AnonGID uint32
	// ID identifies the export inside file handles; derived from Path so
	// it is stable across restarts.
	ID uint32
}

// IDFor returns the handle ID of an export path.
func IDFor(path string) uint32 {
	h := fnv.New32a()
	h.Write([]byte(path))
	return h.Sum32()
}

// Allowed reports whether a client address may use the export.
func (e *Export) Allowed(a netip.Addr) bool {
	a = a.Unmap()
	for _, p := range e.Clients {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// Identity is a mapped local user.
type Identity struct {
	UID, GID uint32
	GIDs     []uint32
}

// Root reports whether the identity is the local superuser.
func (id Identity) Root() bool { return id.UID == 0 }

// InGroup reports whether gid is the identity's primary or a supplementary group.
func (id Identity) InGroup(gid uint32) bool {
	if id.GID == gid {
		return true
	}
	for _, g := range id.GIDs {
		if g == gid {
			return true
		}
	}
	return false
}

// Map returns the local identity for a call's credential (nil for
// AUTH_NONE, which is treated as the anonymous user).
func (e *Export) Map(c *oncrpc.Cred) Identity {
	anon := Identity{UID: e.AnonUID, GID: e.AnonGID}
	if c == nil || e.Squash == AllSquash {
		return anon
	}
	if c.UID == 0 && e.Squash == RootSquash {
		return anon
	}
	id := Identity{UID: c.UID, GID: c.GID, GIDs: c.GIDs}
	if e.Squash == RootSquash && c.GID == 0 {
		id.GID = e.AnonGID
	}
	return id
}
