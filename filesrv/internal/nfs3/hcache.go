package nfs3

import (
	"sync"

	"golang.org/x/sys/unix"

	"example.com/appliance/filesrv/internal/export"
)

// maxCachedHandles bounds the handle cache; when full it starts over.
const maxCachedHandles = 1 << 17

// handleKey names one file for its whole life: an inode number is reused
// only by a file born later.
type handleKey struct {
	export uint32
	ino    uint64
	btime  unix.StatxTimestamp
}

// handleCache remembers the handles READDIRPLUS hands out, so listing a
// folder again costs one statx per entry instead of asking the handle
// store (a second walk and stat) for each.
type handleCache struct {
	mu sync.Mutex
	m  map[handleKey][]byte
}

func (c *handleCache) get(k handleKey) []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.m[k]
}

func (c *handleCache) put(k handleKey, h []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil || len(c.m) >= maxCachedHandles {
		c.m = make(map[handleKey][]byte)
	}
	c.m[k] = h
}

// statxAt returns the attributes of name in dir without following a
// symlink, and the key of its handle (ok false without a birth time).
func statxAt(dir int, e *export.Export, name string) (*unix.Stat_t, handleKey, bool, error) {
	var sx unix.Statx_t
	if err := unix.Statx(dir, name, unix.AT_SYMLINK_NOFOLLOW, unix.STATX_BASIC_STATS|unix.STATX_BTIME, &sx); err != nil {
		return nil, handleKey{}, false, err
	}
	ts := func(t unix.StatxTimestamp) unix.Timespec {
		return unix.Timespec{Sec: t.Sec, Nsec: int64(t.Nsec)}
	}
	st := &unix.Stat_t{
		Dev: unix.Mkdev(sx.Dev_major, sx.Dev_minor), Ino: sx.Ino, Nlink: uint64(sx.Nlink),
		Mode: uint32(sx.Mode), Uid: sx.Uid, Gid: sx.Gid,
		Rdev: unix.Mkdev(sx.Rdev_major, sx.Rdev_minor), Size: int64(sx.Size),
		Blksize: int64(sx.Blksize), Blocks: int64(sx.Blocks),
		Atim: ts(sx.Atime), Mtim: ts(sx.Mtime), Ctim: ts(sx.Ctime),
	}
	k := handleKey{export: e.ID, ino: sx.Ino, btime: sx.Btime}
	return st, k, sx.Mask&unix.STATX_BTIME != 0, nil
}
