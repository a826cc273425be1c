package daemon

import (
	"errors"
	"flag"
	"fmt"
	"strings"

	"example.com/appliance/shared/config"
)

// Version is the appliance's version, set at build time with
// -ldflags "-X example.com/appliance/shared/daemon.Version=...".
var Version = "dev"

// ErrUsage is wrapped by Load when a flag's value is bad: a usage error
// (exit status 2), not a config error.
var ErrUsage = errors.New("command line")

// Flags are a daemon's command-line settings for a config of type C: each
// flag that is given overrides the config file. The flags every daemon has
// (-config, -admin, -log-level, -log-format, -max-conns, -shutdown-grace)
// are defined by NewFlags.
type Flags[C any] struct {
	// ConfigPath is the -config flag's value.
	ConfigPath string
	// ShowVersion is the -version flag: print Version and exit.
	ShowVersion bool

	fs       *flag.FlagSet
	defaults func() C
	common   func(*C) *Common
	apply    map[string]func(*C)
}

// NewFlags defines the shared flags on fs. defaults returns the built-in
// config and common finds the shared sections in it.
func NewFlags[C any](fs *flag.FlagSet, defaults func() C, common func(*C) *Common) *Flags[C] {
	f := &Flags[C]{fs: fs, defaults: defaults, common: common, apply: map[string]func(*C){}}
	fs.StringVar(&f.ConfigPath, "config", "", "config file (TOML); built-in defaults when empty")
	fs.BoolVar(&f.ShowVersion, "version", false, "print the version and exit")
	f.String("admin", `admin listener for /metrics, /healthz and /readyz ("none": none)`, func(c *C, v string) {
		if v == "none" {
			v = ""
		}
		common(c).Admin.Listen = v
	})
	f.String("log-level", "log level: debug, info, warn or error", func(c *C, v string) { common(c).Log.Level = v })
	f.String("log-format", "log format: text or json", func(c *C, v string) { common(c).Log.Format = v })
	f.Int("max-conns", "connections served at once (0: no limit)", func(c *C, v int) { common(c).Limits.MaxConns = v })
	var grace config.Duration
	fs.Var(&grace, "shutdown-grace", `drain period after SIGINT or SIGTERM, e.g. "10s"`)
	f.apply["shutdown-grace"] = func(c *C) { common(c).ShutdownGrace = grace }
	return f
}

// String defines a string flag that sets a config field.
func (f *Flags[C]) String(name, usage string, set func(*C, string)) {
	v := f.fs.String(name, "", usage)
	f.apply[name] = func(c *C) { set(c, *v) }
}

// Int defines an integer flag that sets a config field.
func (f *Flags[C]) Int(name, usage string, set func(*C, int)) {
	v := f.fs.Int(name, 0, usage)
	f.apply[name] = func(c *C) { set(c, *v) }
}

// List defines a repeatable flag whose values replace a config list.
func (f *Flags[C]) List(name, usage string, set func(*C, []string)) {
	var l listFlag
	f.fs.Var(&l, name, usage)
	f.apply[name] = func(c *C) { set(c, append([]string(nil), l...)) }
}

// Load builds the config in force: defaults, then the config file, then
// the flags that were given, validating each step.
func (f *Flags[C]) Load() (C, error) {
	c := f.defaults()
	if err := config.Load(f.ConfigPath, &c); err != nil {
		return c, err
	}
	given := false
	f.fs.Visit(func(fl *flag.Flag) {
		if apply := f.apply[fl.Name]; apply != nil {
			apply(&c)
			given = true
		}
	})
	if v, ok := any(&c).(config.Validator); ok && given {
		if err := v.Validate(); err != nil {
			return c, fmt.Errorf("%w: %w", ErrUsage, err)
		}
	}
	return c, nil
}

type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, " ") }
func (l *listFlag) Set(s string) error { *l = append(*l, s); return nil }
