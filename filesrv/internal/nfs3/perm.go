package nfs3

import (
	"golang.org/x/sys/unix"

	"example.com/appliance/filesrv/internal/export"
)

// Permission bits asked of mayAccess.
const (
	permR = 4
	permW = 2
	permX = 1
)

// ACCESS bits (RFC 1813 section 3.3.4).
const (
	accessRead    = 0x01
	accessLookup  = 0x02
	accessModify  = 0x04
	accessExtend  = 0x08
	accessDelete  = 0x10
	accessExecute = 0x20
)

// mayAccess evaluates the mode bits of st for id, as the kernel would:
// the superuser may read and write anything and execute what has any x
// bit (or is a folder); others get the owner, group or other bits.
func mayAccess(id export.Identity, st *unix.Stat_t, want uint32) bool {
	if id.Root() {
		if want&permX != 0 && !isDir(st) && st.Mode&0o111 == 0 {
			return false
		}
		return true
	}
	var bits uint32
	switch {
	case id.UID == st.Uid:
		bits = st.Mode >> 6 & 7
	case id.InGroup(st.Gid):
		bits = st.Mode >> 3 & 7
	default:
		bits = st.Mode & 7
	}
	return bits&want == want
}

// mayReadFile allows READ like knfsd: the owner may always read (a file
// created with mode 0444 or less is still written and read through the
// creator's open descriptor), and execute permission suffices, since
// clients read a program to run it.
func mayReadFile(id export.Identity, st *unix.Stat_t) bool {
	return id.UID == st.Uid || mayAccess(id, st, permR) || mayAccess(id, st, permX)
}

// mayWriteFile allows WRITE and truncation: the owner always, as knfsd
// does, others by the mode bits.
func mayWriteFile(id export.Identity, st *unix.Stat_t) bool {
	return id.UID == st.Uid || mayAccess(id, st, permW)
}

// mayChangeEntries reports whether id may add or remove names in dir.
func mayChangeEntries(id export.Identity, dir *unix.Stat_t) bool {
	return mayAccess(id, dir, permW|permX)
}

// stickyAllows applies the sticky-bit rule to removing or replacing
// victim in dir: only the superuser, the folder's owner or the victim's
// owner may.
func stickyAllows(id export.Identity, dir, victim *unix.Stat_t) bool {
	if dir.Mode&unix.S_ISVTX == 0 || id.Root() {
		return true
	}
	return id.UID == dir.Uid || id.UID == victim.Uid
}

// accessBits answers ACCESS for st; readOnly drops the changing bits.
func accessBits(id export.Identity, st *unix.Stat_t, want uint32, readOnly bool) uint32 {
	var got uint32
	r := mayAccess(id, st, permR)
	w := mayAccess(id, st, permW)
	x := mayAccess(id, st, permX)
	if isDir(st) {
		if r {
			got |= accessRead
		}
		if x {
			got |= accessLookup
		}
		if w && x {
			got |= accessModify | accessExtend | accessDelete
		}
	} else {
		if r {
			got |= accessRead
		}
		if w {
			got |= accessModify | accessExtend
		}
		if x {
			got |= accessExecute
		}
	}
	if readOnly {
		got &^= accessModify | accessExtend | accessDelete
	}
	return got & want
}
