package daemon

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"
)

// GracefulService is a Service that knows its drain period, which a
// reload may change.
type GracefulService interface {
	Service
	Grace() time.Duration
}

// Command describes a daemon's command line for Main.
type Command[C any] struct {
	// Name is the program name, e.g. "tsserv".
	Name string
	// Usage is printed by -help before the flag list; Examples after it.
	Usage, Examples string
	// Flags defines the daemon's flags (NewFlags plus its own) on fs.
	Flags func(fs *flag.FlagSet) *Flags[C]
	// New builds the service for cfg; reload re-reads the config on SIGHUP.
	New func(cfg C, base *Base, reload func() (C, error)) GracefulService
}

// Main parses args, loads the config (defaults, then -config, then flags)
// and runs the daemon until a signal stops it, logging to stderr. sig,
// when set, replaces the process's signals. It returns the exit status:
// ExitUsage for a bad command line, ExitConfig for a bad config.
func Main[C any](cmd Command[C], args []string, stderr io.Writer, sig <-chan os.Signal) int {
	fs := flag.NewFlagSet(cmd.Name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, cmd.Usage)
		fs.PrintDefaults()
		if cmd.Examples != "" {
			fmt.Fprintf(stderr, "\nExamples:\n%s", cmd.Examples)
		}
	}
	flags := cmd.Flags(fs)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return ExitOK
		}
		return ExitUsage
	}
	if flags.ShowVersion {
		fmt.Println(Version)
		return ExitOK
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "%s: unexpected argument %q (see %s -help)\n", cmd.Name, fs.Arg(0), cmd.Name)
		return ExitUsage
	}
	cfg, err := flags.Load()
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", cmd.Name, err)
		if errors.Is(err, ErrUsage) {
			return ExitUsage
		}
		return ExitConfig
	}
	base := NewBase(cmd.Name, *flags.common(&cfg), stderr)
	svc := cmd.New(cfg, base, flags.Load)
	r := Runner{Log: base.Log, Service: svc, Grace: svc.Grace, Signals: sig, Ready: base.SetReady}
	return r.Run()
}
