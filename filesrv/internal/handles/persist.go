package handles

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"strings"
)

// The index file: magic, export ID (u32), root inode (u64), root
// generation (u32), entry count (u64), then per entry inode (u64), parent
// (u64), name length (uvarint) and name, and a CRC-32 of all that. It is
// replaced atomically; a file that does not match the export is ignored.
var magic = []byte("FSHIDX01")

var errBadIndex = errors.New("damaged or foreign index file")

// load replaces the index with the one saved in file.
func (ix *index) load(file string) error {
	b, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	nodes, err := ix.decode(b)
	if err != nil {
		return fmt.Errorf("%s: %w", file, err)
	}
	children := make(map[dirent]uint64, len(nodes))
	for ino, n := range nodes {
		children[dirent(n)] = ino
	}
	ix.mu.Lock()
	defer ix.mu.Unlock()
	ix.nodes = nodes
	ix.children = children
	return nil
}

func (ix *index) decode(b []byte) (map[uint64]node, error) {
	const head = 8 + 4 + 8 + 4 + 8
	if len(b) < head+4 || !bytes.Equal(b[:8], magic) {
		return nil, errBadIndex
	}
	body, sum := b[:len(b)-4], binary.BigEndian.Uint32(b[len(b)-4:])
	if crc32.ChecksumIEEE(body) != sum {
		return nil, errBadIndex
	}
	be := binary.BigEndian
	if be.Uint32(b[8:]) != ix.e.ID || be.Uint64(b[12:]) != ix.rootIno || be.Uint32(b[20:]) != ix.rootGen {
		return nil, fmt.Errorf("%w: saved for another folder", errBadIndex)
	}
	count := be.Uint64(b[24:])
	rest := body[head:]
	if count > uint64(len(rest))/17 {
		return nil, errBadIndex
	}
	nodes := make(map[uint64]node, count)
	for range count {
		if len(rest) < 17 {
			return nil, errBadIndex
		}
		ino, parent := be.Uint64(rest), be.Uint64(rest[8:])
		n, k := binary.Uvarint(rest[16:])
		if k <= 0 || n > uint64(len(rest)-16-k) {
			return nil, errBadIndex
		}
		rest = rest[16+k:]
		name := string(rest[:n])
		if !validName(name) {
			return nil, errBadIndex
		}
		nodes[ino] = node{parent, name}
		rest = rest[n:]
	}
	if len(rest) != 0 {
		return nil, errBadIndex
	}
	return nodes, nil
}

// save writes the index to file if it changed since the last save.
func (ix *index) save(file string) error {
	ix.mu.RLock()
	version := ix.version
	if version == ix.saved {
		ix.mu.RUnlock()
		return nil
	}
	b := ix.encode()
	ix.mu.RUnlock()

	if err := writeAtomic(file, b); err != nil {
		return err
	}
	ix.mu.Lock()
	ix.saved = max(ix.saved, version)
	ix.mu.Unlock()
	return nil
}

// encode serializes the index; called with mu held.
func (ix *index) encode() []byte {
	size := 8 + 4 + 8 + 4 + 8 + 4
	for _, n := range ix.nodes {
		size += 16 + binary.MaxVarintLen16 + len(n.name)
	}
	b := make([]byte, 0, size)
	be := binary.BigEndian
	b = append(b, magic...)
	b = be.AppendUint32(b, ix.e.ID)
	b = be.AppendUint64(b, ix.rootIno)
	b = be.AppendUint32(b, ix.rootGen)
	b = be.AppendUint64(b, uint64(len(ix.nodes)))
	for ino, n := range ix.nodes {
		b = be.AppendUint64(b, ino)
		b = be.AppendUint64(b, n.parent)
		b = binary.AppendUvarint(b, uint64(len(n.name)))
		b = append(b, n.name...)
	}
	return be.AppendUint32(b, crc32.ChecksumIEEE(b))
}

// writeAtomic replaces file with b: a crash leaves the old file or the new
// one, never a mix.
func writeAtomic(file string, b []byte) (err error) {
	dir := filepath.Dir(file)
	f, err := os.CreateTemp(dir, filepath.Base(file)+".tmp*")
	if err != nil {
		return fmt.Errorf("create temp file: %w", err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if _, err := f.Write(b); err != nil {
		return fmt.Errorf("write %s: %w", f.Name(), err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", f.Name(), err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("close %s: %w", f.Name(), err)
	}
	if err := os.Rename(f.Name(), file); err != nil {
		return fmt.Errorf("rename index: %w", err)
	}
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("open state folder: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync state folder: %w", err)
	}
	return nil
}

// validName reports whether name is one path component: the index file
// is not trusted to hold only what was written.
func validName(name string) bool {
	return name != "" && name != "." && name != ".." && !strings.ContainsAny(name, "/\x00")
}
