// Nfsbench measures the NFSv3 file server filesrv against nfs-ganesha 4.3
// (VFS FSAL, started by the rig in ../shared/rigs/ganesha) on loopback, in
// one run, with libnfs as the client of both.
//
// It reports sequential write and read of a big file (nfs-cp, nfs-cat),
// create, stat and remove of many small files and the listing of a big
// directory (one process over one mount, through libnfs's shared library),
// and the server's CPU time per GiB moved or per operation, read from
// /proc/<pid>/stat. Both servers export a fresh folder on the same file
// system and run at the same time; they take turns operation by operation,
// in ABBA order from round to round, and the report gives medians and
// filesrv/ganesha ratios, never absolute targets for timings.
//
// Usage, from the repository root:
//
//	go build -o bin/filesrv ./filesrv
//	go run ./filesrv/nfsbench -filesrv bin/filesrv -out docs/benchmarks.md
//
// The report is a Markdown section printed to standard output and, with
// -out, put between the <!-- BEGIN nfsbench --> and <!-- END nfsbench -->
// markers of the file (appended when they are absent; the rest of the file
// is kept). Nfsbench exits 0 when it ran, whether or not the targets were
// met, 1 when something failed to run and 2 on a usage error.
package main

import (
	"context"
	_ "embed"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	"example.com/appliance/shared/benchkit"
)

//go:embed nfsops.py
var nfsopsPy []byte

func main() { benchkit.Main("nfsbench", runMain) }

// logf writes a progress line to standard error.
var logf = benchkit.Logger("nfsbench")

// config is the parsed command line.
type config struct {
	filesrv      string
	out          string
	rig          string
	tmp          string
	rounds       int
	bigMiB       int
	files        int
	smallBytes   int
	listEntries  int
	baselineOnly bool
	args         []string
}

func parseFlags(args []string) (*config, error) {
	c := &config{args: args}
	fs := flag.NewFlagSet("nfsbench", flag.ContinueOnError)
	fs.StringVar(&c.filesrv, "filesrv", "./bin/filesrv", "`path` of the filesrv binary under test")
	fs.StringVar(&c.out, "out", "", "put the report section into this Markdown `file`")
	fs.StringVar(&c.rig, "rig", "../shared/rigs/ganesha", "`folder` of the ganesha rig (ganesha-up.sh, ganesha-down.sh)")
	fs.StringVar(&c.tmp, "tmp", "", "`folder` for both exports, on one file system (default: a new folder in /var/tmp)")
	fs.IntVar(&c.rounds, "rounds", 7, "rounds; each runs every operation once on each server, ABBA")
	fs.IntVar(&c.bigMiB, "big-mib", 512, "size of the sequentially written and read file, MiB")
	fs.IntVar(&c.files, "files", 5000, "small files created, stat'ed and removed per round")
	fs.IntVar(&c.smallBytes, "small-bytes", 4096, "size of each small file")
	fs.IntVar(&c.listEntries, "list-entries", 10000, "entries of the listed directory")
	fs.BoolVar(&c.baselineOnly, "baseline-only", false, "measure nfs-ganesha against a second nfs-ganesha (no filesrv needed)")
	if err := benchkit.ParseFlags(fs, args); err != nil {
		return nil, err
	}
	switch {
	case c.rounds < 1, c.bigMiB < 1, c.files < 1, c.listEntries < 1:
		return nil, benchkit.UsageError{Err: errors.New("-rounds, -big-mib, -files and -list-entries must be positive")}
	case c.smallBytes < 0:
		return nil, benchkit.UsageError{Err: errors.New("-small-bytes must not be negative")}
	case !c.baselineOnly && c.filesrv == "":
		return nil, benchkit.UsageError{Err: errors.New("-filesrv is empty")}
	}
	if _, err := os.Stat(filepath.Join(c.rig, "ganesha-up.sh")); err != nil {
		return nil, benchkit.UsageError{Err: fmt.Errorf("-rig: %w (run from the repository root)", err)}
	}
	return c, nil
}

// runMain is main without the exit.
func runMain(ctx context.Context, args []string, stdout io.Writer) error {
	c, err := parseFlags(args)
	if err != nil {
		return err
	}
	for _, bin := range []string{"nfs-cp", "nfs-cat", "nfs-ls", "python3"} {
		if _, err := exec.LookPath(bin); err != nil {
			return fmt.Errorf("find %s (apt-get install libnfs-utils python3): %w", bin, err)
		}
	}
	start := time.Now()
	tmp := c.tmp
	if tmp == "" {
		// /var/tmp rather than /tmp: a tmpfs /tmp would not be the disk a
		// file server writes to, and the big files would fill memory.
		if tmp, err = os.MkdirTemp("/var/tmp", "nfsbench-"); err != nil {
			return fmt.Errorf("temp folder: %w", err)
		}
		defer os.RemoveAll(tmp)
	}
	b := &bench{cfg: c, ops: filepath.Join(tmp, "nfsops.py"), src: filepath.Join(tmp, "big.src")}
	if err := os.WriteFile(b.ops, nfsopsPy, 0o755); err != nil {
		return fmt.Errorf("write nfsops.py: %w", err)
	}
	if b.srcHash, err = makeSource(b.src, int64(c.bigMiB)<<20); err != nil {
		return err
	}

	base, err := startGanesha(ctx, c.rig, filepath.Join(tmp, "ganesha"))
	if err != nil {
		return err
	}
	defer base.stop()
	var cand *server
	if c.baselineOnly {
		if cand, err = startGanesha(ctx, c.rig, filepath.Join(tmp, "ganesha-b")); err != nil {
			return err
		}
		cand.name = "nfs-ganesha-b"
	} else if cand, err = startFilesrv(ctx, c.filesrv, filepath.Join(tmp, "filesrv")); err != nil {
		return err
	}
	defer cand.stop()
	servers := [2]*server{cand, base}
	logf("%s (pid %d) at %s, %s (pid %d) at %s", cand.name, cand.pid, cand.url(""), base.name, base.pid, base.url(""))

	r := &report{cfg: c, names: [2]string{cand.name, base.name}, phases: b.phases()}
	if err := r.box.Probe(0, tmp); err != nil {
		return err
	}
	r.runs = make([][2][]result, len(r.phases))
	for i, s := range servers {
		d, err := b.setup(ctx, s)
		if err != nil {
			r.setupErr[i] = err
			logf("%s: setup failed: %v", s.name, err)
			continue
		}
		r.setup[i] = d
		logf("%s: made the %d-entry directory in %v", s.name, c.listEntries, d.Round(time.Millisecond))
	}
	for k := range c.rounds {
		for j, p := range r.phases {
			order := []int{0, 1}
			if (k+j)%2 == 1 {
				order = []int{1, 0}
			}
			for _, i := range order {
				res := runPhase(ctx, servers[i], p, k)
				r.runs[j][i] = append(r.runs[j][i], res)
				if ctx.Err() != nil {
					return ctx.Err()
				}
			}
		}
		for _, s := range servers {
			if err := s.alive(); err == nil {
				if err := b.cleanup(ctx, s, k); err != nil {
					logf("%s: cleanup of round %d: %v", s.name, k, err)
				}
			}
		}
	}
	for i, s := range servers {
		if err := s.alive(); err != nil {
			r.died[i] = err
		}
	}
	if err := r.box.Probe(1, tmp); err != nil {
		return err
	}
	r.elapsed = time.Since(start)

	text := r.markdown()
	return benchkit.WriteReport(stdout, text, c.out, "nfsbench", text, logf)
}

// runPhase runs one operation on one server, reading its CPU time around it.
func runPhase(ctx context.Context, s *server, p phase, k int) result {
	if err := s.alive(); err != nil {
		return result{err: err}
	}
	// Untimed: write back what earlier phases (of either server) left
	// dirty, so that no operation pays for another's data.
	syscall.Sync()
	before, err := s.cpu()
	if err != nil {
		return result{err: err}
	}
	secs, items, err := p.do(ctx, s, k)
	res := result{secs: secs, items: items, err: err}
	if after, cerr := s.cpu(); cerr == nil {
		res.cpu = after.Sub(before).Self
	}
	if res.err == nil {
		if aerr := s.alive(); aerr != nil {
			res.err = aerr
		}
	}
	if res.err != nil {
		logf("%-48s %-14s round %d: FAILED: %v", p.name, s.name, k, res.err)
	} else {
		logf("%-48s %-14s round %d: %10.1f %-9s %6.2f s server CPU", p.name, s.name, k, res.rate()*p.scale, p.unit, float64(res.cpu)/benchkit.ClockTicks)
	}
	return res
}
