// Package daemon is the lifecycle every appliance daemon shares: the config
// sections they all have, structured logs, the admin HTTP listener with
// /metrics, /healthz and /readyz, and the signal handling that drains on
// SIGINT or SIGTERM and reloads on SIGHUP.
package daemon

import (
	"fmt"
	"log/slog"
	"strings"
	"time"

	"example.com/appliance/shared/config"
	"example.com/appliance/shared/listen"
	"example.com/appliance/shared/netsrv"
)

// Common is the part of a daemon's config that the shared core reads. A
// daemon's config struct embeds it, so its keys sit at the top of the file.
type Common struct {
	// ShutdownGrace is how long a drain may take after SIGINT or SIGTERM
	// before the remaining connections are closed. Default "10s".
	ShutdownGrace config.Duration `toml:"shutdown_grace"`
	Log           Log             `toml:"log"`    // [log]
	Admin         Admin           `toml:"admin"`  // [admin]
	Limits        Limits          `toml:"limits"` // [limits]
}

// Log configures the daemon's log on standard error.
type Log struct {
	// Level is debug, info, warn or error. Default "info". SIGHUP applies a new one.
	Level string `toml:"level"`
	// Format is text (logfmt) or json. Default "text".
	Format string `toml:"format"`
}

// Admin configures the admin HTTP listener.
type Admin struct {
	// Listen is a tcp/ or unix// address for /metrics, /healthz and
	// /readyz, or "" for none. Default: loopback, a port per daemon.
	Listen string `toml:"listen"`
}

// Limits bound what clients may use. SIGHUP applies new values to open
// connections too.
type Limits struct {
	// MaxConns is the number of connections served at once; more are
	// refused. 0 means no limit. Default 10000.
	MaxConns int `toml:"max_conns"`
	// ReadTimeout bounds the wait for a new connection's first request.
	// "0s" means none. Default "30s".
	ReadTimeout config.Duration `toml:"read_timeout"`
	// IdleTimeout bounds the wait for each later request. "0s" means none.
	// Default "5m". Once a request has begun, the rest of it must arrive
	// within ReadTimeout.
	IdleTimeout config.Duration `toml:"idle_timeout"`
	// WriteTimeout bounds each reply, cutting off clients that do not read.
	// Default "30s".
	WriteTimeout config.Duration `toml:"write_timeout"`
	// MaxMessageBytes is the largest request accepted. Default 65536.
	MaxMessageBytes int `toml:"max_message_bytes"`
}

// DefaultCommon returns the shared defaults, with the daemon's admin address.
func DefaultCommon(admin string) Common {
	return Common{
		ShutdownGrace: config.NewDuration(10 * time.Second),
		Log:           Log{Level: "info", Format: "text"},
		Admin:         Admin{Listen: admin},
		Limits: Limits{
			MaxConns:        10000,
			ReadTimeout:     config.NewDuration(30 * time.Second),
			IdleTimeout:     config.NewDuration(5 * time.Minute),
			WriteTimeout:    config.NewDuration(30 * time.Second),
			MaxMessageBytes: 65536,
		},
	}
}

// Validate checks the shared sections.
func (c *Common) Validate() error {
	if _, err := ParseLevel(c.Log.Level); err != nil {
		return &config.FieldError{Key: "log.level", Err: err}
	}
	if c.Log.Format != "text" && c.Log.Format != "json" {
		return config.Errorf("log.format", "unknown format %q (want text or json)", c.Log.Format)
	}
	if c.Admin.Listen != "" {
		if _, err := adminAddr(c.Admin.Listen); err != nil {
			return &config.FieldError{Key: "admin.listen", Err: err}
		}
	}
	if c.Limits.MaxConns < 0 {
		return config.Errorf("limits.max_conns", "must not be negative, got %d", c.Limits.MaxConns)
	}
	if c.Limits.MaxMessageBytes < 1 || c.Limits.MaxMessageBytes > 1<<30 {
		return config.Errorf("limits.max_message_bytes", "must be between 1 and 1073741824, got %d", c.Limits.MaxMessageBytes)
	}
	return nil
}

// Net returns the limits in the form netsrv takes.
func (l Limits) Net() netsrv.Limits {
	return netsrv.Limits{
		MaxConns:        l.MaxConns,
		ReadTimeout:     l.ReadTimeout.Duration,
		IdleTimeout:     l.IdleTimeout.Duration,
		WriteTimeout:    l.WriteTimeout.Duration,
		MaxMessageBytes: l.MaxMessageBytes,
	}
}

// ParseLevel reads a log level name.
func ParseLevel(s string) (slog.Level, error) {
	switch strings.ToLower(s) {
	case "debug":
		return slog.LevelDebug, nil
	case "info", "":
		return slog.LevelInfo, nil
	case "warn", "warning":
		return slog.LevelWarn, nil
	case "error":
		return slog.LevelError, nil
	}
	return 0, fmt.Errorf("unknown level %q (want debug, info, warn or error)", s)
}

// adminAddr parses the admin listener's address, which must be a stream.
func adminAddr(s string) (listen.Addr, error) {
	a, err := listen.Parse(s)
	if err != nil {
		return a, err
	}
	if !a.Stream() {
		return a, fmt.Errorf("%q is not a tcp/ or unix// address", s)
	}
	return a, nil
}
