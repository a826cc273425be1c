package spool

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestReadJournal reads entries back and stops at the first one that does
// not check out, whatever the damage.
func TestReadJournal(t *testing.T) {
	var b []byte
	b = appendEntry(b, entryRecord, 1, []byte(`{"ID":1}`))
	b = appendEntry(b, entryRecord, 2, []byte(`{"ID":2}`))
	b = appendEntry(b, entryPurge, 1, nil)
	whole := len(b)
	tests := []struct {
		name    string
		data    []byte
		entries int
	}{
		{"whole", b, 3},
		{"torn length", b[:whole-2], 2},
		{"torn header", append(append([]byte(nil), b...), 0, 0, 0), 3},
		{"zeroed tail", append(append([]byte(nil), b...), make([]byte, 4096)...), 3},
		{"flipped bit", func() []byte { c := bytes.Clone(b); c[whole-1] ^= 1; return c }(), 2},
		{"huge length", append(append([]byte(nil), b...), 0x7f, 0xff, 0xff, 0xff, 0, 0, 0, 0), 3},
		{"empty", nil, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ents, n := readJournal(tt.data)
			if len(ents) != tt.entries {
				t.Fatalf("%d entries, want %d", len(ents), tt.entries)
			}
			if tt.entries == 3 && n != whole {
				t.Errorf("read %d bytes, want %d", n, whole)
			}
		})
	}
	bodies, purged := latest(readJournalEntries(b))
	if len(bodies) != 1 || string(bodies[2]) != `{"ID":2}` || !purged[1] {
		t.Errorf("latest: %d bodies (2: %s), purged %v", len(bodies), bodies[2], purged)
	}
}

func readJournalEntries(b []byte) []journalEntry {
	ents, _ := readJournal(b)
	return ents
}

// FuzzJournal feeds damaged journals to the reader: it never panics and
// never reads past what it returns.
func FuzzJournal(f *testing.F) {
	var b []byte
	b = appendEntry(b, entryRecord, 7, []byte(`{"ID":7}`))
	b = appendEntry(b, entryPurge, 7, nil)
	f.Add(b)
	f.Add(b[:len(b)-3])
	f.Add([]byte{0, 0, 0, 9, 1, 2, 3, 4})
	f.Fuzz(func(t *testing.T, data []byte) {
		ents, n := readJournal(data)
		if n > len(data) || n < 0 {
			t.Fatalf("read %d of %d bytes", n, len(data))
		}
		var again []byte
		for _, e := range ents {
			again = appendEntry(again, e.kind, e.id, e.body)
		}
		if !bytes.Equal(again, data[:n]) {
			t.Fatal("entries do not encode back to what was read")
		}
	})
}

// TestJournalTornTail reopens a spool whose journal a crash left with a
// torn last entry: the jobs before it are there, the torn one is not,
// and the spool goes on appending after them.
func TestJournalTornTail(t *testing.T) {
	opts := testOptions(t)
	s := open(t, opts)
	if err := s.Pause("p"); err != nil {
		t.Fatal(err)
	}
	a := submit(t, s, JobSpec{}, psDoc(1), "")
	b := submit(t, s, JobSpec{}, psDoc(1), "")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(opts.Dir, journalFile)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// A third job's entry, torn: written, never synced, never acknowledged.
	torn := appendEntry(nil, entryRecord, b.ID+1, []byte(`{"ID":`+itoa(b.ID+1)+`}`))
	if err := os.WriteFile(path, append(data, torn[:len(torn)-3]...), 0o600); err != nil {
		t.Fatal(err)
	}
	s2 := open(t, opts)
	if err := s2.Pause("p"); err != nil {
		t.Fatal(err)
	}
	for _, id := range []int{a.ID, b.ID} {
		if _, ok := s2.Job(id); !ok {
			t.Errorf("job %d lost", id)
		}
	}
	if _, ok := s2.Job(b.ID + 1); ok {
		t.Error("the torn job was loaded")
	}
	c := submit(t, s2, JobSpec{}, psDoc(1), "")
	if err := s2.Close(); err != nil {
		t.Fatal(err)
	}
	s3 := open(t, opts)
	for _, id := range []int{a.ID, b.ID, c.ID} {
		if _, ok := s3.Job(id); !ok {
			t.Errorf("job %d lost after the second reopening", id)
		}
	}
}

// TestJournalLegacyRecords opens a spool of an earlier version, with one
// record file per job: the jobs load, go into the journal, and the files
// go.
func TestJournalLegacyRecords(t *testing.T) {
	opts := testOptions(t)
	s := open(t, opts)
	if err := s.Pause("p"); err != nil {
		t.Fatal(err)
	}
	j := submit(t, s, JobSpec{Hold: true}, psDoc(1), "")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// Turn the spool into an old one: the record as a file, no journal.
	rec, ok := journalRecord(t, opts.Dir, j.ID)
	if !ok {
		t.Fatal("no record in the journal")
	}
	data, err := json.Marshal(rec)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(s.recordPath(j.ID), data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(opts.Dir, journalFile)); err != nil {
		t.Fatal(err)
	}
	s2 := open(t, opts)
	if got, ok := s2.Job(j.ID); !ok || got.State != PendingHeld {
		t.Fatalf("job of the old spool: %+v, %v", got, ok)
	}
	if _, err := os.Stat(s.recordPath(j.ID)); !os.IsNotExist(err) {
		t.Errorf("record file after Open: %v", err)
	}
	if _, ok := journalRecord(t, opts.Dir, j.ID); !ok {
		t.Error("job not in the journal")
	}
}

// TestJournalPurgeStays checks that a purged job does not come back when
// the spool is reopened, before and after the journal is compacted.
func TestJournalPurgeStays(t *testing.T) {
	opts := testOptions(t)
	clk := withHistory(&opts, time.Minute)
	s := open(t, opts)
	j := submit(t, s, JobSpec{}, psDoc(1), "")
	waitState(t, s, j.ID, Completed)
	clk.Add(2 * time.Minute)
	if n := s.Purge(); n != 1 {
		t.Fatalf("purged %d", n)
	}
	if _, ok := journalRecord(t, opts.Dir, j.ID); ok {
		t.Error("purged job still in the journal")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	for range 2 { // the first Open compacts
		s := open(t, opts)
		if _, ok := s.Job(j.ID); ok {
			t.Fatal("purged job back after reopening")
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
}
