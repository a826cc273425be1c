package spool

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"os"
	"path/filepath"
)

// The job journal.
//
// Job records are not files of their own but entries appended to one
// file, Dir/journal: creating a file costs an inode, which on ext4
// without a journal is the dearest step of a job (see pool.go), and a
// job's record is written at least twice (accepted, printed). An entry is
//
//	length uint32 | crc32c uint32 | kind byte | job id uint64 | body
//
// big-endian, the length and checksum covering kind, id and body. kind
// 'R' carries the job's record as JSON, and the last one of a job wins;
// 'P' says the job was purged. Appends reach the disk with the commit
// that follows them (see commit.go), like everything else in the spool:
// a job is acknowledged only after its entry is durable.
//
// A crash can leave a torn or zeroed tail: entries written after the last
// sync, none of them acknowledged (a later acknowledged entry would have
// been synced with them). Open reads up to the first entry that does not
// check out, then writes the journal anew with the latest record of every
// job (compaction: a temporary file, fsynced, renamed over the journal,
// the folder fsynced). The spool compacts it while running too, when it
// has grown to compactFactor times its size after the last compaction.
//
// Spools of earlier versions kept Dir/jobs/<id>.json; Open still reads
// those, under the journal's entries, and removes them once the compacted
// journal holds their jobs.

const (
	journalFile = "journal"

	// maxEntry bounds an entry's length when reading: a record is a
	// few hundred bytes; a larger length is damage.
	maxEntry = 16 << 20

	entryRecord = 'R'
	entryPurge  = 'P'

	compactMin    = 4 << 20 // journal bytes below which it is never compacted while running
	compactFactor = 4
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// appendEntry encodes one journal entry onto b.
func appendEntry(b []byte, kind byte, id int, body []byte) []byte {
	n := 1 + 8 + len(body)
	start := len(b)
	b = binary.BigEndian.AppendUint32(b, uint32(n))
	b = binary.BigEndian.AppendUint32(b, 0) // the checksum, below
	b = append(b, kind)
	b = binary.BigEndian.AppendUint64(b, uint64(id))
	b = append(b, body...)
	binary.BigEndian.PutUint32(b[start+4:], crc32.Checksum(b[start+8:], crcTable))
	return b
}

// journalEntry is one entry read back.
type journalEntry struct {
	kind byte
	id   int
	body []byte
}

// readJournal reads the entries of data up to the first one that does
// not check out, and returns them in order with the length they take.
func readJournal(data []byte) ([]journalEntry, int) {
	var ents []journalEntry
	off := 0
	for len(data)-off >= 8 {
		n := int(binary.BigEndian.Uint32(data[off:]))
		if n < 1+8 || n > maxEntry || len(data)-off-8 < n {
			break
		}
		payload := data[off+8 : off+8+n]
		if crc32.Checksum(payload, crcTable) != binary.BigEndian.Uint32(data[off+4:]) {
			break
		}
		kind := payload[0]
		id := binary.BigEndian.Uint64(payload[1:])
		if (kind != entryRecord && kind != entryPurge) || id == 0 || id > 1<<62 {
			break
		}
		ents = append(ents, journalEntry{kind: kind, id: int(id), body: payload[9:]})
		off += 8 + n
	}
	return ents, off
}

// latest returns, per job, the body of its last record entry, and the
// jobs whose last entry is a purge.
func latest(ents []journalEntry) (bodies map[int][]byte, purged map[int]bool) {
	bodies = make(map[int][]byte)
	purged = make(map[int]bool)
	for _, e := range ents {
		switch e.kind {
		case entryRecord:
			bodies[e.id] = e.body
			delete(purged, e.id)
		case entryPurge:
			delete(bodies, e.id)
			purged[e.id] = true
		}
	}
	return bodies, purged
}

// journalPath is where the journal lives.
func (s *Spool) journalPath() string { return filepath.Join(s.dir, journalFile) }

// appendJournal appends one entry. It does not sync: the caller's commit
// does.
func (s *Spool) appendJournal(kind byte, id int, body []byte) error {
	s.jmu.Lock()
	defer s.jmu.Unlock()
	if s.jerr != nil {
		return fmt.Errorf("journal: an earlier write failed, reopen the spool: %w", s.jerr)
	}
	if s.jf == nil {
		return fmt.Errorf("journal: %w", ErrClosed)
	}
	s.jbuf = appendEntry(s.jbuf[:0], kind, id, body)
	n, err := s.jf.Write(s.jbuf)
	s.jsize += int64(n)
	if err != nil {
		// A partial entry fails its checksum, and the entries after
		// it would be lost at the next Open: none may follow.
		s.jerr = err
		return fmt.Errorf("journal: %w", err)
	}
	if s.jsize >= s.jcompactAt {
		if err := s.compactLocked(nil); err != nil {
			// Appending goes on; the next try waits for as much growth.
			s.log.Error("compact the job journal", "err", err)
			s.jcompactAt = s.jsize * compactFactor
		}
	}
	return nil
}

// compactLocked writes the journal anew with the latest record of every
// job and no purged one, and reopens it for appending. With recs nil it
// reads them from the journal itself; Open passes the records it
// recovered. The caller holds s.jmu.
func (s *Spool) compactLocked(recs map[int][]byte) error {
	path := s.journalPath()
	if recs == nil {
		data, err := os.ReadFile(path)
		if err != nil {
			return fmt.Errorf("read journal: %w", err)
		}
		ents, _ := readJournal(data)
		recs, _ = latest(ents)
	}
	var b []byte
	for id, body := range recs {
		b = appendEntry(b, entryRecord, id, body)
	}
	if err := writeFileSync(path, b); err != nil {
		return err // the journal is the old one still
	}
	// The new journal is in place: appends must go to it from now on.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		s.jerr = err
		return fmt.Errorf("open journal: %w", err)
	}
	if s.jf != nil {
		_ = s.jf.Close()
	}
	s.jf = f
	s.jsize = int64(len(b))
	s.jcompactAt = max(compactMin, s.jsize*compactFactor)
	// Until this sync, a crash may leave the old journal in place,
	// which holds the same records (every entry made durable so far).
	return syncDir(s.dir)
}

// loadJournal reads the journal (none yet is an empty one) and returns
// the latest record body of each job and the ids purged since their
// last record.
func (s *Spool) loadJournal() (map[int][]byte, map[int]bool, error) {
	data, err := os.ReadFile(s.journalPath())
	if errors.Is(err, fs.ErrNotExist) {
		return map[int][]byte{}, map[int]bool{}, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("read journal: %w", err)
	}
	ents, n := readJournal(data)
	if n < len(data) {
		s.log.Warn("job journal ends in a torn entry (a crash before its sync, not acknowledged): dropped",
			"entries", len(ents), "bytes_dropped", len(data)-n)
	}
	bodies, purged := latest(ents)
	return bodies, purged, nil
}

// closeJournal closes the journal's file.
func (s *Spool) closeJournal() error {
	s.jmu.Lock()
	defer s.jmu.Unlock()
	if s.jf == nil {
		return nil
	}
	err := s.jf.Close()
	s.jf = nil
	return err
}
