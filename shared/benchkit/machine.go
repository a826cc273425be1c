package benchkit

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"
)

// Main runs a tool's run function with a context that ends on SIGINT or
// SIGTERM and exits: 0 when it returned nil or flag.ErrHelp, 2 on a
// UsageError and 1 on any other error, printed after the tool's name.
func Main(tool string, run func(ctx context.Context, args []string, stdout io.Writer) error) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout)
	stop()
	var ue UsageError
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
	case errors.As(err, &ue):
		fmt.Fprintln(os.Stderr, tool+":", err)
		os.Exit(2)
	default:
		fmt.Fprintln(os.Stderr, tool+":", err)
		os.Exit(1)
	}
}

// UsageError is a bad command line: Main exits 2 on it.
type UsageError struct{ Err error }

// Error returns the message of the underlying error.
func (u UsageError) Error() string { return u.Err.Error() }

// Unwrap returns the underlying error.
func (u UsageError) Unwrap() error { return u.Err }

// ParseFlags parses args with fs, which must be set to
// flag.ContinueOnError. It returns flag.ErrHelp for -h, and a UsageError
// for a bad flag or for any argument left after the flags.
func ParseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return UsageError{err}
	}
	if fs.NArg() > 0 {
		return UsageError{fmt.Errorf("unexpected argument %q", fs.Arg(0))}
	}
	return nil
}

// Logger returns a function that writes a progress line, prefixed with the
// tool's name, to standard error.
func Logger(tool string) func(format string, args ...any) {
	return func(format string, args ...any) {
		fmt.Fprintf(os.Stderr, tool+": "+format+"\n", args...)
	}
}

// Stamp returns the current time as a report gives it: UTC, to the minute.
func Stamp() string { return time.Now().UTC().Format("2006-01-02 15:04 MST") }

// Machine describes this box for a report: kernel, CPUs and Go, as in
// "kernel 6.1.0-18-amd64, 2 CPUs (Intel Xeon), go1.26.0".
func Machine() string {
	s := fmt.Sprintf("kernel %s, %d CPUs", KernelRelease(), runtime.NumCPU())
	if m := CPUModel(); m != "" {
		s += fmt.Sprintf(" (%s)", m)
	}
	return s + ", " + runtime.Version()
}

// KernelRelease returns `uname -r`, "unknown" when it cannot be read.
func KernelRelease() string {
	b, err := os.ReadFile("/proc/sys/kernel/osrelease")
	if err != nil {
		return "unknown"
	}
	return strings.TrimSpace(string(b))
}

// CPUModel returns the first model name in /proc/cpuinfo, "" when there is
// none.
func CPUModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return ""
	}
	for line := range strings.Lines(string(b)) {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// FsyncProbe times n rounds of creating a file in dir, writing 4 KiB to it
// and fsyncing it, and returns the median: how expensive a durable write is
// on this box at the moment, to read the results by.
func FsyncProbe(dir string, n int) (time.Duration, error) {
	d, err := os.MkdirTemp(dir, "fsync-probe-")
	if err != nil {
		return 0, fmt.Errorf("fsync probe: %w", err)
	}
	defer os.RemoveAll(d)
	buf := make([]byte, 4096)
	var ts []float64
	for i := range n {
		start := time.Now()
		f, err := os.Create(filepath.Join(d, fmt.Sprint(i)))
		if err != nil {
			return 0, fmt.Errorf("fsync probe: %w", err)
		}
		_, err = f.Write(buf)
		if err == nil {
			err = f.Sync()
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return 0, fmt.Errorf("fsync probe: %w", err)
		}
		ts = append(ts, float64(time.Since(start)))
	}
	return time.Duration(Median(ts)), nil
}

// Box is the state of this shared box at the start (index 0) and at the
// end (index 1) of a run, to read the results by.
type Box struct {
	Fsync [2]time.Duration // FsyncProbe, median of 20
	Load  [2]string        // 1-minute load average
}

// Probe records the load average and the fsync probe in dir at the start
// (i = 0) or at the end (i = 1) of a run.
func (b *Box) Probe(i int, dir string) error {
	b.Load[i] = LoadAvg()
	var err error
	b.Fsync[i], err = FsyncProbe(dir, 20)
	return err
}

// Describe returns the sentence of a report that gives the probes, where
// the fsync probe ran in where (e.g. "the temp folder").
func (b *Box) Describe(where string) string {
	return fmt.Sprintf("creating, writing (4 KiB) and fsyncing a file in %s took %s at the start of the run and %s at the end (medians of 20); the 1-minute load average was %s at the start and %s at the end (%d CPUs).",
		where, MS(b.Fsync[0]), MS(b.Fsync[1]), b.Load[0], b.Load[1], runtime.NumCPU())
}

// LoadAvg returns the 1-minute load average from /proc/loadavg, "?" when
// it cannot be read.
func LoadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	if f := strings.Fields(string(b)); len(f) > 0 {
		return f[0]
	}
	return "?"
}
