package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// result is one timed operation on one server.
type result struct {
	secs  float64 // wall time of the operation
	items float64 // bytes moved, or operations done
	cpu   uint64  // server CPU ticks around it
	err   error
}

// rate returns items per second.
func (r result) rate() float64 {
	if r.err != nil || r.secs <= 0 {
		return 0
	}
	return r.items / r.secs
}

// phase is one row of the report: an operation done once per round on
// each server.
type phase struct {
	name    string // as shown in the report
	unit    string // of the rate: "MB/s", "files/s", ...
	scale   float64
	cpuUnit string // "s/GiB" or "µs/op"
	do      func(ctx context.Context, s *server, round int) (secs, items float64, err error)
	// syncedCreate: each item is a CREATE, which filesrv makes durable
	// before it answers and ganesha does not (see report.go).
	syncedCreate bool
}

// bench holds what the phases share.
type bench struct {
	cfg     *config
	ops     string // path of nfsops.py
	src     string // the big local file
	srcHash [sha256.Size]byte
}

// phases returns the rows, in the order they run within a round.
func (b *bench) phases() []phase {
	c := b.cfg
	big := float64(int64(c.bigMiB) << 20)
	bigName := func(k int) string { return fmt.Sprintf("big-%d.bin", k) }
	dirName := func(k int) string { return fmt.Sprintf("small-%d", k) }
	return []phase{
		{name: fmt.Sprintf("sequential write %d MiB (nfs-cp)", c.bigMiB), unit: "MB/s", scale: 1e-6, cpuUnit: "s/GiB",
			do: func(ctx context.Context, s *server, k int) (float64, float64, error) {
				secs, err := timeCmd(ctx, nil, "nfs-cp", b.src, s.url(bigName(k)))
				return secs, big, err
			}},
		{name: fmt.Sprintf("sequential read %d MiB (nfs-cat)", c.bigMiB), unit: "MB/s", scale: 1e-6, cpuUnit: "s/GiB",
			do: func(ctx context.Context, s *server, k int) (float64, float64, error) {
				devnull, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
				if err != nil {
					return 0, 0, fmt.Errorf("open %s: %w", os.DevNull, err)
				}
				defer devnull.Close()
				secs, err := timeCmd(ctx, devnull, "nfs-cat", s.url(bigName(k)))
				if err == nil && k == 0 {
					err = b.verify(ctx, s, bigName(k)) // untimed: the server must return what was written
				}
				return secs, big, err
			}},
		{name: fmt.Sprintf("create %d files of %d bytes (1 process)", c.files, c.smallBytes), unit: "files/s", scale: 1, cpuUnit: "µs/op", syncedCreate: true,
			do: func(ctx context.Context, s *server, k int) (float64, float64, error) {
				if _, err := b.nfsops(ctx, s, "mkdir", dirName(k)); err != nil {
					return 0, 0, err
				}
				return b.nfsopsTimed(ctx, s, c.files, "create", dirName(k), strconv.Itoa(c.files), strconv.Itoa(c.smallBytes))
			}},
		{name: fmt.Sprintf("stat %d files (1 process)", c.files), unit: "files/s", scale: 1, cpuUnit: "µs/op",
			do: func(ctx context.Context, s *server, k int) (float64, float64, error) {
				return b.nfsopsTimed(ctx, s, c.files, "stat", dirName(k), strconv.Itoa(c.files))
			}},
		{name: fmt.Sprintf("remove %d files (1 process)", c.files), unit: "files/s", scale: 1, cpuUnit: "µs/op",
			do: func(ctx context.Context, s *server, k int) (float64, float64, error) {
				return b.nfsopsTimed(ctx, s, c.files, "rm", dirName(k), strconv.Itoa(c.files))
			}},
		{name: fmt.Sprintf("list a %d-entry directory %d times (1 process, readdir)", c.listEntries, listTimes), unit: "entries/s", scale: 1, cpuUnit: "µs/entry",
			do: func(ctx context.Context, s *server, k int) (float64, float64, error) {
				return b.nfsopsTimed(ctx, s, listTimes*c.listEntries, "list", listDir, strconv.Itoa(listTimes))
			}},
	}
}

// listTimes is how often the listing row reads the folder in one run: a
// single listing of 10,000 entries takes well under 0.1 s, too short to
// stand out of this box's scheduling noise.
const listTimes = 5

// listDir is the folder of the listing row, made once per server.
const listDir = "list"

// setup makes the listing folder on s; it is not timed.
func (b *bench) setup(ctx context.Context, s *server) (time.Duration, error) {
	start := time.Now()
	if _, err := b.nfsops(ctx, s, "mkdir", listDir); err != nil {
		return 0, err
	}
	if _, _, err := b.nfsopsTimed(ctx, s, b.cfg.listEntries, "create", listDir, strconv.Itoa(b.cfg.listEntries), "0"); err != nil {
		return 0, err
	}
	return time.Since(start), nil
}

// cleanup removes what round k left on s; it is not timed.
func (b *bench) cleanup(ctx context.Context, s *server, k int) error {
	var errs []error
	if _, err := b.nfsops(ctx, s, "unlink", fmt.Sprintf("big-%d.bin", k)); err != nil {
		errs = append(errs, err)
	}
	if _, err := b.nfsops(ctx, s, "rmtree", fmt.Sprintf("small-%d", k)); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// opsReply is what nfsops.py prints.
type opsReply struct {
	Op      string  `json:"op"`
	Count   int     `json:"count"`
	Seconds float64 `json:"seconds"`
}

// nfsops runs the helper once against s.
func (b *bench) nfsops(ctx context.Context, s *server, args ...string) (*opsReply, error) {
	cmd := exec.CommandContext(ctx, "python3", append([]string{b.ops, s.url("")}, args...)...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("nfsops %s: %w: %s", strings.Join(args, " "), err, tail(errOut.String(), 500))
	}
	var r opsReply
	if err := json.Unmarshal(out.Bytes(), &r); err != nil {
		return nil, fmt.Errorf("nfsops %s: bad output %q: %w", strings.Join(args, " "), tail(out.String(), 200), err)
	}
	return &r, nil
}

// nfsopsTimed runs the helper and returns its own timing of the operation
// (after the mount), checking that it did want items.
func (b *bench) nfsopsTimed(ctx context.Context, s *server, want int, args ...string) (float64, float64, error) {
	r, err := b.nfsops(ctx, s, args...)
	if err != nil {
		return 0, 0, err
	}
	if r.Count != want {
		return r.Seconds, float64(r.Count), fmt.Errorf("nfsops %s: %d items, want %d", strings.Join(args, " "), r.Count, want)
	}
	return r.Seconds, float64(r.Count), nil
}

// timeCmd runs a client tool and returns its wall time.
func timeCmd(ctx context.Context, stdout *os.File, name string, args ...string) (float64, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	var errOut bytes.Buffer
	cmd.Stderr = &errOut
	if stdout != nil {
		cmd.Stdout = stdout
	}
	start := time.Now()
	err := cmd.Run()
	secs := time.Since(start).Seconds()
	if err != nil {
		return secs, fmt.Errorf("%s: %w: %s", name, err, tail(errOut.String(), 500))
	}
	return secs, nil
}

// verify reads rel back from s and compares it with the source file.
func (b *bench) verify(ctx context.Context, s *server, rel string) error {
	cmd := exec.CommandContext(ctx, "nfs-cat", s.url(rel))
	h := sha256.New()
	cmd.Stdout = h
	var errOut bytes.Buffer
	cmd.Stderr = &errOut
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("verify nfs-cat: %w: %s", err, tail(errOut.String(), 500))
	}
	if !bytes.Equal(h.Sum(nil), b.srcHash[:]) {
		return errors.New("verify: the file read back differs from the one written")
	}
	return nil
}

// makeSource writes n pseudo-random bytes to name and returns their hash.
func makeSource(name string, n int64) ([sha256.Size]byte, error) {
	var sum [sha256.Size]byte
	f, err := os.Create(name)
	if err != nil {
		return sum, fmt.Errorf("source file: %w", err)
	}
	h := sha256.New()
	rng := rand.NewChaCha8([32]byte{'n', 'f', 's', 'b', 'e', 'n', 'c', 'h'})
	w := io.MultiWriter(f, h)
	if _, err := io.CopyN(w, rng, n); err != nil {
		f.Close()
		return sum, fmt.Errorf("source file: %w", err)
	}
	if err := f.Close(); err != nil {
		return sum, fmt.Errorf("source file: %w", err)
	}
	copy(sum[:], h.Sum(nil))
	return sum, nil
}
