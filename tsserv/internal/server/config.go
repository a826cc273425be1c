// Package server runs tsserv: its config, its sockets and its lifecycle on
// the shared core.
package server

import (
	"flag"

	"example.com/appliance/shared/config"
	"example.com/appliance/shared/daemon"
	"example.com/appliance/shared/listen"
	"example.com/appliance/tsserv/internal/timeproto"
)

// DefaultPort is the chapter's port.
const DefaultPort = "21567"

// DefaultAdmin is where tsserv's admin listener binds by default.
const DefaultAdmin = "tcp/127.0.0.1:9121"

// Config is tsserv's config file (configs/tsserv.toml documents each key).
type Config struct {
	daemon.Common
	// Listen lists the sockets to serve. Default: TCP and UDP on port 21567
	// on every interface, IPv4 and IPv6.
	Listen []string `toml:"listen"`
	// Format is the reply's time format: ctime, rfc3339 or unix. Default ctime.
	Format string `toml:"format"`
}

// Default returns the built-in config.
func Default() Config {
	return Config{
		Common: daemon.DefaultCommon(DefaultAdmin),
		Listen: []string{"tcp/:" + DefaultPort, "udp/:" + DefaultPort},
		Format: "ctime",
	}
}

// Validate checks every value.
func (c *Config) Validate() error {
	if err := c.Common.Validate(); err != nil {
		return err
	}
	if len(c.Listen) == 0 {
		return config.Errorf("listen", "no addresses: tsserv would serve nothing")
	}
	for _, a := range c.Listen {
		if _, err := listen.Parse(a); err != nil {
			return &config.FieldError{Key: "listen", Err: err}
		}
	}
	if _, err := timeproto.ParseFormat(c.Format); err != nil {
		return &config.FieldError{Key: "format", Err: err}
	}
	return nil
}

// NewFlags defines tsserv's flags on fs.
func NewFlags(fs *flag.FlagSet) *daemon.Flags[Config] {
	f := daemon.NewFlags(fs, Default, func(c *Config) *daemon.Common { return &c.Common })
	f.List("listen", "listen address, repeatable: tcp/host:port, udp/host:port, unix//path, unixgram//path (replaces the configured list)",
		func(c *Config, v []string) { c.Listen = v })
	f.String("format", "reply time format: ctime, rfc3339 or unix", func(c *Config, v string) { c.Format = v })
	return f
}
