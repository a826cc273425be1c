// Printbench measures the print server printsrv against Debian's
// ippeveprinter (CUPS 2.4's sample IPP Everywhere printer, printing with
// /bin/true) on loopback, in one run.
//
// It reports accepted Print-Job requests per second, driven by ipptool over
// one connection and by a Go client (goipp over keep-alive HTTP) with 1 and
// 16 concurrent submitters, counting server-error-busy replies apart from
// accepted jobs; lp submissions per second; the server's CPU time per
// accepted job, read from /proc/<pid>/stat; and printsrv's peak resident
// memory (VmHWM) while a 1 GiB document streams in. The servers take turns
// (ABBA...) and the report gives medians and printsrv/ippeveprinter ratios,
// never absolute targets for timings.
//
// Usage, from the repository root:
//
//	go build -o bin/printsrv ./printsrv
//	go run ./printsrv/printbench -printsrv bin/printsrv -out docs/benchmarks.md
//
// The report is a Markdown section printed to standard output and, with
// -out, put between the <!-- BEGIN printbench --> and <!-- END printbench -->
// markers of the file (appended when they are absent; the rest of the file
// is kept). Printbench exits 0 when it ran, whether or not the targets were
// met, 1 when something failed to run and 2 on a usage error.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"example.com/appliance/shared/benchkit"
)

func main() { benchkit.Main("printbench", runMain) }

// logf writes a progress line to standard error.
var logf = benchkit.Logger("printbench")

// config is the parsed command line.
type config struct {
	printsrv     string
	out          string
	doc          string
	format       string
	tmp          string
	rounds       int
	ipptoolJobs  int
	slice        time.Duration
	workers      []int
	lpJobs       int
	bigBytes     int64
	maxJobBytes  int64
	baselineOnly bool
	args         []string
}

func parseFlags(args []string) (*config, error) {
	c := &config{args: args, workers: []int{1, 16}}
	fs := flag.NewFlagSet("printbench", flag.ContinueOnError)
	fs.StringVar(&c.printsrv, "printsrv", "./bin/printsrv", "`path` of the printsrv binary under test")
	fs.StringVar(&c.out, "out", "", "put the report section into this Markdown `file`")
	fs.StringVar(&c.doc, "doc", "../shared/ipptool/onepage-a4.pdf", "`document` each Print-Job sends")
	fs.StringVar(&c.format, "format", "application/pdf", "document-format of -doc")
	fs.StringVar(&c.tmp, "tmp", "", "`folder` for the servers' state (default: a new folder in $TMPDIR)")
	fs.IntVar(&c.rounds, "rounds", 8, "ABBA rounds of each throughput measurement (each server once per round)")
	fs.IntVar(&c.ipptoolJobs, "ipptool-jobs", 300, "Print-Job tests in each ipptool run")
	fs.DurationVar(&c.slice, "slice", time.Second, "length of one Go-client round per server")
	fs.IntVar(&c.lpJobs, "lp-jobs", 50, "sequential lp submissions per server (0 skips)")
	fs.Int64Var(&c.bigBytes, "big-bytes", 1<<30, "size of the streamed document for the memory test (0 skips)")
	fs.Int64Var(&c.maxJobBytes, "max-job-bytes", 2<<30, "printsrv's max_job_bytes in the benchmark's config")
	fs.BoolVar(&c.baselineOnly, "baseline-only", false, "measure only ippeveprinter (no printsrv needed)")
	if err := benchkit.ParseFlags(fs, args); err != nil {
		return nil, err
	}
	switch {
	case c.rounds < 1, c.ipptoolJobs < 1:
		return nil, benchkit.UsageError{Err: errors.New("-rounds and -ipptool-jobs must be positive")}
	case c.slice <= 0:
		return nil, benchkit.UsageError{Err: errors.New("-slice must be positive")}
	case c.lpJobs < 0, c.bigBytes < 0:
		return nil, benchkit.UsageError{Err: errors.New("-lp-jobs and -big-bytes must not be negative")}
	case !c.baselineOnly && c.printsrv == "":
		return nil, benchkit.UsageError{Err: errors.New("-printsrv is empty")}
	}
	if _, err := os.Stat(c.doc); err != nil {
		return nil, benchkit.UsageError{Err: fmt.Errorf("-doc: %w (run from the repository root)", err)}
	}
	return c, nil
}

// runMain is main without the exit.
func runMain(ctx context.Context, args []string, stdout io.Writer) error {
	c, err := parseFlags(args)
	if err != nil {
		return err
	}
	start := time.Now()
	tmp := c.tmp
	if tmp == "" {
		if tmp, err = os.MkdirTemp("", "printbench-"); err != nil {
			return fmt.Errorf("temp folder: %w", err)
		}
		defer os.RemoveAll(tmp)
	}
	doc, err := os.ReadFile(c.doc)
	if err != nil {
		return fmt.Errorf("read document: %w", err)
	}
	docAbs, err := filepath.Abs(c.doc)
	if err != nil {
		return fmt.Errorf("document path: %w", err)
	}

	r := &report{cfg: c, docBytes: len(doc)}
	if err := r.box.Probe(0, tmp); err != nil {
		return err
	}
	base, err := startIppeveprinter(filepath.Join(tmp, "ippeveprinter"))
	if err != nil {
		return err
	}
	defer base.stop()
	cand := base
	if !c.baselineOnly {
		if cand, err = startPrintsrv(c.printsrv, filepath.Join(tmp, "printsrv"), c.maxJobBytes); err != nil {
			return err
		}
		defer cand.stop()
	} else {
		// Compare ippeveprinter with a second ippeveprinter.
		if cand, err = startIppeveprinter(filepath.Join(tmp, "ippeveprinter-b")); err != nil {
			return err
		}
		cand.name = "ippeveprinter-b"
		defer cand.stop()
	}
	null, nullSrv, err := startNullServer()
	if err != nil {
		return err
	}
	defer nullSrv.stop()
	ceilingRounds := (c.rounds + 1) / 2
	r.names = [2]string{cand.name, base.name}
	targets := [2]*target{cand, base}
	logf("%s on %s (pid %d), %s on %s (pid %d)", cand.name, cand.host, cand.proc.Pid(), base.name, base.host, base.proc.Pid())

	// (a) ipptool, one connection.
	testFile := filepath.Join(tmp, "print-jobs.test")
	if err := writeIpptoolFile(testFile, c.ipptoolJobs, docAbs, c.format); err != nil {
		return err
	}
	ipptoolRun := func(t *target) (counts, time.Duration, error) {
		cn, wall, err := runIpptool(ctx, t, testFile)
		if got := cn.accepted + cn.busy + cn.failed; err == nil && got < uint64(c.ipptoolJobs) {
			cn.failed += uint64(c.ipptoolJobs) - got
			if cn.firstErr == "" {
				cn.firstErr = "no status in ipptool's output (request failed)"
			}
		}
		return cn, wall, err
	}
	row, err := measureRounds(ctx, fmt.Sprintf("ipptool, 1 connection, %d Print-Jobs per run", c.ipptoolJobs), targets, c.rounds, ipptoolRun)
	if err != nil {
		return err
	}
	row.serial = true
	if err := measureCeiling(ctx, row, null, ceilingRounds, ipptoolRun); err != nil {
		return err
	}
	r.rows = append(r.rows, row)

	// (a) Go client, 1 and 16 submitters.
	for _, w := range c.workers {
		clients := map[*target]*ippClient{cand: newIPPClient(cand, w), base: newIPPClient(base, w), null: newIPPClient(null, w)}
		// Untimed warm-up: connections up, caches warm.
		for _, cl := range clients {
			cl.printJobs(ctx, w, c.slice/4, doc, c.format)
		}
		name := fmt.Sprintf("Go client (goipp, keep-alive), %d submitter", w)
		if w > 1 {
			name += "s"
		}
		goRun := func(t *target) (counts, time.Duration, error) {
			s := time.Now()
			cn := clients[t].printJobs(ctx, w, c.slice, doc, c.format)
			return cn, time.Since(s), nil
		}
		row, err := measureRounds(ctx, name, targets, c.rounds, goRun)
		if err == nil {
			row.serial = w == 1
			err = measureCeiling(ctx, row, null, ceilingRounds, goRun)
		}
		for _, cl := range clients {
			cl.close()
		}
		if err != nil {
			return err
		}
		r.rows = append(r.rows, row)
	}

	// (b) lp.
	if c.lpJobs > 0 {
		row, err := measureLp(ctx, targets, c.lpJobs, c.rounds, docAbs)
		if err != nil {
			return err
		}
		r.lp = row
	}
	for _, t := range targets {
		if err := t.proc.Alive(); err != nil {
			return err
		}
	}
	cand.stop()
	base.stop()

	// (c) memory with a big streamed document, on a fresh printsrv.
	if c.bigBytes > 0 && !c.baselineOnly {
		res, err := measureBig(ctx, c, filepath.Join(tmp, "printsrv-big"))
		if err != nil {
			return err
		}
		r.big = res
	}
	if err := r.box.Probe(1, tmp); err != nil {
		return err
	}
	r.elapsed = time.Since(start)

	text := r.markdown()
	return benchkit.WriteReport(stdout, text, c.out, "printbench", text, logf)
}
