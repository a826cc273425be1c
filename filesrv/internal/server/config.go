// Package server runs filesrv: its config, its exports, its RPC programs
// (NFSv3, MOUNT and the portmapper) and its lifecycle on the shared core.
package server

import (
	"flag"
	"fmt"
	"net/netip"
	"os"
	"path"
	"strconv"
	"strings"

	"example.com/appliance/filesrv/internal/export"
	"example.com/appliance/shared/config"
	"example.com/appliance/shared/daemon"
	"example.com/appliance/shared/listen"
)

// DefaultAdmin is where filesrv's admin listener binds by default.
const DefaultAdmin = "tcp/127.0.0.1:9123"

// The built-in defaults, for `make run`: unprivileged loopback ports and
// state under ./var. The appliance's config (configs/filesrv.toml) uses
// the standard ports 2049 and 111.
const (
	DefaultListen   = "tcp/127.0.0.1:12049"
	DefaultPortmap  = "127.0.0.1:12111"
	DefaultStateDir = "./var/filesrv"
	DefaultExport   = "./var/export"
	// DefaultMaxIO is the largest READ and WRITE: libnfs and Linux use 1 MiB.
	DefaultMaxIO = 1 << 20
	// rpcOverhead is room for the RPC and NFS headers around max_io bytes.
	rpcOverhead = 64 << 10
	// DefaultAnonID is nobody/nogroup.
	DefaultAnonID = 65534
)

// Config is filesrv's config file (configs/filesrv.toml documents each key).
type Config struct {
	daemon.Common
	// Listen lists the TCP sockets serving NFS and MOUNT (both on each).
	Listen []string `toml:"listen"`
	// Portmap lists the sockets of the portmapper (TCP and UDP); empty: none.
	Portmap []string `toml:"portmap"`
	// StateDir holds the file handle index.
	StateDir string `toml:"state_dir"`
	// MaxIO is the largest READ or WRITE, in bytes.
	MaxIO int `toml:"max_io"`
	// Exports are the shared folders.
	Exports []ExportConfig `toml:"export"`
}

// ExportConfig is one [[export]] table.
type ExportConfig struct {
	// Path is what clients mount, e.g. "/export".
	Path string `toml:"path"`
	// Dir is the folder shared; created if missing.
	Dir string `toml:"dir"`
	// ReadOnly refuses every change.
	ReadOnly bool `toml:"read_only"`
	// Clients are the addresses (CIDR prefixes or single addresses) that may mount.
	Clients []string `toml:"clients"`
	// Squash is root (uid 0 becomes anonuid), all (everyone does) or
	// none; "" (not in the file) means root.
	Squash string `toml:"squash"`
	// AnonUID and AnonGID are the squashed identity; nil (not in the
	// file) means 65534. Pointers, because an [[export]] table replaces
	// the default one whole and 0 (root) must not be what a missing key
	// gives.
	AnonUID *uint32 `toml:"anonuid"`
	AnonGID *uint32 `toml:"anongid"`
}

// anon returns the squashed identity, with the defaults for missing keys.
func (e *ExportConfig) anon() (uid, gid uint32) {
	uid, gid = DefaultAnonID, DefaultAnonID
	if e.AnonUID != nil {
		uid = *e.AnonUID
	}
	if e.AnonGID != nil {
		gid = *e.AnonGID
	}
	return uid, gid
}

func anonID() *uint32 {
	v := uint32(DefaultAnonID)
	return &v
}

// localExport is the built-in export (make run, -export): loopback
// clients only, and every client user, root included, acts as the user
// who runs filesrv. So a developer's files in it stay theirs and root on
// the same machine cannot write as anyone else; the appliance's config
// uses root squash instead.
func localExport(path, dir string) ExportConfig {
	uid, gid := uint32(os.Getuid()), uint32(os.Getgid())
	return ExportConfig{Path: path, Dir: dir, Clients: []string{"127.0.0.0/8", "::1/128"},
		Squash: "all", AnonUID: &uid, AnonGID: &gid}
}

// Default returns the built-in config.
func Default() Config {
	c := Config{
		Common:   daemon.DefaultCommon(DefaultAdmin),
		Listen:   []string{DefaultListen},
		Portmap:  []string{"tcp/" + DefaultPortmap, "udp/" + DefaultPortmap},
		StateDir: DefaultStateDir,
		MaxIO:    DefaultMaxIO,
		Exports:  []ExportConfig{localExport("/export", DefaultExport)},
	}
	c.Limits.MaxMessageBytes = DefaultMaxIO + rpcOverhead
	return c
}

// Validate checks every value.
func (c *Config) Validate() error {
	if err := c.Common.Validate(); err != nil {
		return err
	}
	if len(c.Listen) == 0 {
		return config.Errorf("listen", "no addresses: filesrv would serve nothing")
	}
	for _, a := range c.Listen {
		la, err := listen.Parse(a)
		if err != nil {
			return &config.FieldError{Key: "listen", Err: err}
		}
		if la.Network != "tcp" {
			return config.Errorf("listen", "%q: NFS is served over tcp/ only", a)
		}
	}
	for _, a := range c.Portmap {
		la, err := listen.Parse(a)
		if err != nil {
			return &config.FieldError{Key: "portmap", Err: err}
		}
		if la.Network != "tcp" && la.Network != "udp" {
			return config.Errorf("portmap", "%q: the portmapper is served over tcp/ and udp/ only", a)
		}
	}
	if c.StateDir == "" {
		return config.Errorf("state_dir", "empty: file handles must be kept somewhere")
	}
	if c.MaxIO < 4096 || c.MaxIO > 16<<20 {
		return config.Errorf("max_io", "must be between 4096 and 16777216, got %d", c.MaxIO)
	}
	if c.Limits.MaxMessageBytes < c.MaxIO+rpcOverhead {
		return config.Errorf("limits.max_message_bytes", "must be at least max_io + %d (%d), got %d: a full WRITE would not fit",
			rpcOverhead, c.MaxIO+rpcOverhead, c.Limits.MaxMessageBytes)
	}
	if len(c.Exports) == 0 {
		return config.Errorf("export", "no [[export]]: filesrv would share nothing")
	}
	seen := map[string]bool{}
	for i := range c.Exports {
		e := &c.Exports[i]
		if err := e.validate(); err != nil {
			return err
		}
		if seen[e.Path] {
			return config.Errorf("export.path", "%q is exported twice", e.Path)
		}
		seen[e.Path] = true
	}
	return nil
}

func (e *ExportConfig) validate() error {
	if !strings.HasPrefix(e.Path, "/") || path.Clean(e.Path) != e.Path {
		return config.Errorf("export.path", "%q: must be a clean absolute path such as /export", e.Path)
	}
	if e.Dir == "" {
		return config.Errorf("export.dir", "empty for export %s", e.Path)
	}
	if _, err := e.prefixes(); err != nil {
		return &config.FieldError{Key: "export.clients", Err: err}
	}
	if _, err := parseSquash(e.Squash); err != nil {
		return &config.FieldError{Key: "export.squash", Err: err}
	}
	return nil
}

// prefixes parses Clients; an address alone stands for itself.
func (e *ExportConfig) prefixes() ([]netip.Prefix, error) {
	if len(e.Clients) == 0 {
		return nil, fmt.Errorf("export %s: no clients: nobody could mount it", e.Path)
	}
	var out []netip.Prefix
	for _, s := range e.Clients {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			a, aerr := netip.ParseAddr(s)
			if aerr != nil {
				return nil, fmt.Errorf("export %s: %q is neither a CIDR prefix nor an address", e.Path, s)
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

func parseSquash(s string) (export.Squash, error) {
	switch s {
	case "root", "":
		return export.RootSquash, nil
	case "all":
		return export.AllSquash, nil
	case "none":
		return export.NoSquash, nil
	}
	return 0, fmt.Errorf("unknown squash %q (want root, all or none)", s)
}

// NewFlags defines filesrv's flags on fs.
func NewFlags(fs *flag.FlagSet) *daemon.Flags[Config] {
	f := daemon.NewFlags(fs, Default, func(c *Config) *daemon.Common { return &c.Common })
	f.List("listen", "NFS and MOUNT address, repeatable: tcp/host:port (replaces the configured list)",
		func(c *Config, v []string) { c.Listen = v })
	f.List("portmap", `portmapper address, repeatable: tcp/host:port, udp/host:port, or "none" (replaces the configured list)`,
		func(c *Config, v []string) {
			if len(v) == 1 && v[0] == "none" {
				v = nil
			}
			c.Portmap = v
		})
	f.String("state-dir", "folder for the file handle index", func(c *Config, v string) { c.StateDir = v })
	f.Int("max-io", "largest READ or WRITE in bytes", func(c *Config, v int) {
		c.MaxIO = v
		if need := v + rpcOverhead; c.Limits.MaxMessageBytes < need {
			c.Limits.MaxMessageBytes = need
		}
	})
	f.String("export", "share one folder instead of the configured exports: PATH=DIR, e.g. /export=/srv/export (loopback clients, who all act as the user running filesrv)",
		func(c *Config, v string) {
			p, d, _ := strings.Cut(v, "=")
			c.Exports = []ExportConfig{localExport(p, d)}
		})
	return f
}

// portOf returns the port of a bound address such as tcp/127.0.0.1:2049.
func portOf(bound string) uint32 {
	i := strings.LastIndexByte(bound, ':')
	if i < 0 {
		return 0
	}
	p, _ := strconv.ParseUint(bound[i+1:], 10, 16)
	return uint32(p)
}
