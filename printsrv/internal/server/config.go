// Package server runs printsrv: its config, its HTTP listeners for IPP and
// IPPS, authentication, and its lifecycle on the shared core.
package server

import (
	"flag"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"golang.org/x/crypto/bcrypt"

	"example.com/appliance/printsrv/internal/ipp"
	"example.com/appliance/shared/config"
	"example.com/appliance/shared/daemon"
	"example.com/appliance/shared/listen"
)

// DefaultListen is where printsrv serves IPP by default: an unprivileged
// loopback port for "make run". The appliance's config listens on 631.
const DefaultListen = "tcp/127.0.0.1:8631"

// DefaultAdmin is where printsrv's admin listener binds by default.
const DefaultAdmin = "tcp/127.0.0.1:9631"

// Config is printsrv's config file (configs/printsrv.toml documents each key).
type Config struct {
	daemon.Common
	// Listen lists the sockets that serve IPP over plain HTTP.
	Listen []string `toml:"listen"`
	// StateDir holds the spool, the output trays and the self-signed
	// certificate. Default "./var/printsrv".
	StateDir string `toml:"state_dir"`
	// DefaultPrinter names the default queue; "" means the first.
	DefaultPrinter string `toml:"default_printer"`
	// History is how long finished jobs stay visible. Default "24h".
	History config.Duration `toml:"history"`
	// MaxJobBytes bounds a job's documents, uncompressed. Default 256 MiB.
	MaxJobBytes int64 `toml:"max_job_bytes"`
	// Operators may cancel or hold anyone's jobs, cancel all jobs and
	// pause and resume queues.
	Operators []string `toml:"operators"`
	Auth      Auth     `toml:"auth"` // [auth]
	TLS       TLS      `toml:"tls"`  // [tls]
	// Printers are the queues, [[printer]] tables.
	Printers []Printer `toml:"printer"`
}

// Auth configures HTTP Basic authentication.
type Auth struct {
	// Users, "name:BCRYPT-HASH" as "htpasswd -nB name" prints; none turns
	// authentication off. With users, every request that creates or
	// changes a job or a queue needs a valid user.
	Users []string `toml:"users"`
}

// TLS configures IPPS.
type TLS struct {
	// Listen lists the sockets that serve IPP over TLS (ipps://).
	Listen []string `toml:"listen"`
	// Cert and Key are PEM files; both empty means a self-signed
	// certificate made at first start and kept in the state dir.
	Cert string `toml:"cert"`
	Key  string `toml:"key"`
}

// Printer is one queue.
type Printer struct {
	Name           string   `toml:"name"`
	MakeAndModel   string   `toml:"make_and_model"`
	Location       string   `toml:"location"`
	Info           string   `toml:"info"`
	Formats        []string `toml:"formats"`
	PagesPerMinute int      `toml:"pages_per_minute"`
	Color          bool     `toml:"color"`
	Duplex         bool     `toml:"duplex"`
	Media          []string `toml:"media"`
	MediaDefault   string   `toml:"media_default"`
}

// DefaultFormats are the document formats a queue accepts when its
// config names none.
var DefaultFormats = []string{"application/pdf", "application/postscript", "image/jpeg", "image/pwg-raster", "image/urf", "text/plain"}

// Default returns the built-in config: two example queues.
func Default() Config {
	return Config{
		Common:      daemon.DefaultCommon(DefaultAdmin),
		Listen:      []string{DefaultListen},
		StateDir:    "./var/printsrv",
		History:     config.NewDuration(24 * time.Hour),
		MaxJobBytes: 256 << 20,
		Operators:   []string{"root"},
		Auth:        Auth{Users: []string{}},
		TLS:         TLS{Listen: []string{}},
		Printers: []Printer{
			{
				Name: "office", MakeAndModel: "Appliance Office Laser", Location: "Office, first floor",
				Info: "Office printer", Formats: DefaultFormats, PagesPerMinute: 20, Duplex: true,
				Media:        []string{"iso_a4_210x297mm", "iso_a5_148x210mm", "na_letter_8.5x11in"},
				MediaDefault: "iso_a4_210x297mm",
			},
			{
				Name: "lab", MakeAndModel: "Appliance Lab Color", Location: "Lab",
				Info: "Lab color printer", Formats: DefaultFormats, PagesPerMinute: 10, Color: true,
				Media:        []string{"iso_a4_210x297mm", "iso_a3_297x420mm"},
				MediaDefault: "iso_a4_210x297mm",
			},
		},
	}
}

var (
	nameRE = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,127}$`)
	mimeRE = regexp.MustCompile(`^[a-z0-9][-a-z0-9.+]*/[a-z0-9][-a-z0-9.+]*$`)
	userRE = regexp.MustCompile(`^[^:\s]{1,255}$`)
)

// Validate checks every value.
func (c *Config) Validate() error {
	if err := c.Common.Validate(); err != nil {
		return err
	}
	if len(c.Listen)+len(c.TLS.Listen) == 0 {
		return config.Errorf("listen", "no addresses: printsrv would serve nothing")
	}
	for _, l := range []struct {
		key   string
		addrs []string
	}{{"listen", c.Listen}, {"tls.listen", c.TLS.Listen}} {
		for _, s := range l.addrs {
			a, err := listen.Parse(s)
			if err != nil {
				return &config.FieldError{Key: l.key, Err: err}
			}
			if !a.Stream() {
				return config.Errorf(l.key, "%q is not a tcp/ or unix// address: IPP runs over HTTP", s)
			}
		}
	}
	if c.StateDir == "" {
		return config.Errorf("state_dir", "must not be empty")
	}
	if c.History.Duration < 0 {
		return config.Errorf("history", "must not be negative")
	}
	if c.MaxJobBytes < 1 {
		return config.Errorf("max_job_bytes", "must be positive, got %d", c.MaxJobBytes)
	}
	for _, u := range c.Auth.Users {
		n, secret, ok := strings.Cut(u, ":")
		if !ok || !userRE.MatchString(n) || secret == "" {
			return config.Errorf("auth.users", "%q is not name:hash (make one with htpasswd -nB name)", u)
		}
		if _, err := bcrypt.Cost([]byte(secret)); err != nil {
			return config.Errorf("auth.users", "user %s: the password is not a bcrypt hash (make one with htpasswd -nB %s): %v", n, n, err)
		}
	}
	if (c.TLS.Cert == "") != (c.TLS.Key == "") {
		return config.Errorf("tls.cert", "tls.cert and tls.key go together")
	}
	if len(c.Printers) == 0 {
		return config.Errorf("printer", "no [[printer]]: printsrv needs at least one queue")
	}
	seen := map[string]bool{}
	for i := range c.Printers {
		p := &c.Printers[i]
		key := fmt.Sprintf("printer[%d]", i)
		if !nameRE.MatchString(p.Name) {
			return config.Errorf(key+".name", "%q is not a queue name (letters, digits, - _ and .; at most 127)", p.Name)
		}
		if seen[p.Name] {
			return config.Errorf(key+".name", "queue %q is defined twice", p.Name)
		}
		seen[p.Name] = true
		if len(p.MakeAndModel) > 127 || len(p.Location) > 127 || len(p.Info) > 127 {
			return config.Errorf(key, "make_and_model, location and info take at most 127 bytes")
		}
		for _, f := range p.Formats {
			if !mimeRE.MatchString(f) {
				return config.Errorf(key+".formats", "%q is not a MIME type", f)
			}
		}
		if p.PagesPerMinute < 0 {
			return config.Errorf(key+".pages_per_minute", "must not be negative")
		}
		if len(p.Media) == 0 {
			return config.Errorf(key+".media", "no media")
		}
		for _, m := range p.Media {
			if !ipp.ValidMedia(m) {
				return config.Errorf(key+".media", "%q is not a PWG media name such as iso_a4_210x297mm", m)
			}
		}
		if p.MediaDefault != "" && !slices.Contains(p.Media, p.MediaDefault) {
			return config.Errorf(key+".media_default", "%q is not in media", p.MediaDefault)
		}
	}
	if c.DefaultPrinter != "" && !seen[c.DefaultPrinter] {
		return config.Errorf("default_printer", "no queue named %q", c.DefaultPrinter)
	}
	return nil
}

// defaultPrinter returns the default queue's name.
func (c *Config) defaultPrinter() string {
	if c.DefaultPrinter != "" {
		return c.DefaultPrinter
	}
	return c.Printers[0].Name
}

// NewFlags defines printsrv's flags on fs.
func NewFlags(fs *flag.FlagSet) *daemon.Flags[Config] {
	f := daemon.NewFlags(fs, Default, func(c *Config) *daemon.Common { return &c.Common })
	f.List("listen", "IPP listen address, repeatable: tcp/host:port or unix//path (replaces the configured list)",
		func(c *Config, v []string) { c.Listen = v })
	f.String("state-dir", "folder for the spool, the output trays and the TLS certificate", func(c *Config, v string) { c.StateDir = v })
	f.String("default-printer", "the default queue", func(c *Config, v string) { c.DefaultPrinter = v })
	return f
}
