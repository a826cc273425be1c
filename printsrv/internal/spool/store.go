package spool

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"example.com/appliance/printsrv/internal/docformat"
)

// The spool folder's layout.
const (
	jobsDir    = "jobs"    // <id>.json, a record per job, of earlier versions (see journal.go)
	docsDir    = "docs"    // <id>-<n>.<ext>, the documents as received
	nextIDFile = "next-id" // job ids below this number may have been used
	tmpSuffix  = ".tmp"
	badSuffix  = ".bad" // a record that could not be read, kept for a human
	// idBlock is how many ids are reserved by each write of next-id, so
	// that ids are never reused after a crash without writing the file
	// for every job.
	idBlock = 1024
)

// record is what the journal keeps of a job: the job and its documents.
type record struct {
	Job
	Docs []docRecord
}

// docRecord is one document of a job.
type docRecord struct {
	File   string // name in Dir/docs
	Format string
	Bytes  int64
	Pages  int // 0 if unknown
	// Uncounted: the pages are not counted yet (countPages). A record
	// written before they were is counted again after a crash.
	Uncounted bool `json:",omitempty"`
}

// writeFileSync writes data to path through a temporary file that is
// fsynced and renamed over path. The caller syncs the folder. Only Open,
// journal compactions and the rare id reservations use it; the hot path
// leaves syncing to the committer (see commit.go).
func writeFileSync(path string, data []byte) error {
	tmp := path + tmpSuffix
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("create %q: %w", tmp, err)
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("write %q: %w", tmp, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("rename %q: %w", tmp, err)
	}
	return nil
}

// syncDir fsyncs a folder, making the names created, renamed or removed
// in it durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("open folder %q: %w", dir, err)
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("sync folder %q: %w", dir, err)
	}
	return nil
}

func (s *Spool) recordPath(id int) string {
	return filepath.Join(s.dir, jobsDir, strconv.Itoa(id)+".json")
}

func (s *Spool) docPath(name string) string {
	return filepath.Join(s.dir, docsDir, name)
}

// docName is the spool file name of document n (from 1) of job id.
func docName(id, n int, format string) string {
	return fmt.Sprintf("%d-%d.%s", id, n, docformat.Extension(format))
}

// readRecords loads the record files of a spool of an earlier version,
// renaming unreadable ones aside.
func (s *Spool) readRecords() ([]*record, error) {
	dir := filepath.Join(s.dir, jobsDir)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("read jobs folder: %w", err)
	}
	var recs []*record
	for _, e := range ents {
		name := e.Name()
		if !e.Type().IsRegular() || !strings.HasSuffix(name, ".json") {
			continue
		}
		path := filepath.Join(dir, name)
		id, err := strconv.Atoi(strings.TrimSuffix(name, ".json"))
		var rec record
		if err == nil {
			var data []byte
			data, err = os.ReadFile(path)
			if err == nil && len(data) == 0 {
				// A new record was created, then written in one call,
				// then synced before its job was acknowledged: an empty
				// one is a job a crash stopped before that.
				s.log.Info("empty job record of an unacknowledged job removed", "file", path)
				if rerr := os.Remove(path); rerr != nil {
					return nil, fmt.Errorf("remove %q: %w", path, rerr)
				}
				continue
			}
			if err == nil {
				err = json.Unmarshal(data, &rec)
			}
			if err == nil && rec.ID != id {
				err = fmt.Errorf("record holds job %d", rec.ID)
			}
		}
		if err != nil {
			// Damage, or a new record a power loss tore before its
			// job was acknowledged: either way it is kept for a human.
			s.log.Error("unreadable job record set aside", "file", path, "err", err)
			if rerr := os.Rename(path, path+badSuffix); rerr != nil {
				return nil, fmt.Errorf("set aside %q: %w", path, rerr)
			}
			continue
		}
		recs = append(recs, &rec)
	}
	return recs, nil
}

// removeTemps deletes the temporary files a crash left in dir.
func removeTemps(dir string, isTemp func(name string) bool) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("read folder %q: %w", dir, err)
	}
	for _, e := range ents {
		if e.Type().IsRegular() && isTemp(e.Name()) {
			if err := os.Remove(filepath.Join(dir, e.Name())); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("remove temporary file: %w", err)
			}
		}
	}
	return nil
}

// readNextID returns the number stored in the next-id file, 0 if none.
func readNextID(path string) (int, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read next id: %w", err)
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil || n < 0 {
		return 0, fmt.Errorf("read next id: bad content %q", data)
	}
	return n, nil
}

// reserveIDs durably records that ids below limit may be in use.
func (s *Spool) reserveIDs(limit int) error {
	path := filepath.Join(s.dir, nextIDFile)
	if err := writeFileSync(path, []byte(strconv.Itoa(limit)+"\n")); err != nil {
		return fmt.Errorf("reserve job ids: %w", err)
	}
	return syncDir(s.dir)
}
