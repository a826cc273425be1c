package daemon

import (
	"flag"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"example.com/appliance/shared/config"
)

// flagsConfig is a daemon's config: the shared sections and its own keys.
type flagsConfig struct {
	Common
	Name   string   `toml:"name"`
	Listen []string `toml:"listen"`
}

func flagsDefaults() flagsConfig {
	return flagsConfig{Common: DefaultCommon("tcp/127.0.0.1:9121"), Name: "builtin", Listen: []string{"default"}}
}

func (c *flagsConfig) Validate() error {
	if err := c.Common.Validate(); err != nil {
		return err
	}
	if c.Name == "" {
		return config.Errorf("name", "must not be empty")
	}
	return nil
}

func newFlags(t *testing.T, args ...string) (*Flags[flagsConfig], error) {
	t.Helper()
	fs := flag.NewFlagSet("testd", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	f := NewFlags(fs, flagsDefaults, func(c *flagsConfig) *Common { return &c.Common })
	f.List("listen", "listen address, repeatable", func(c *flagsConfig, v []string) { c.Listen = v })
	f.String("name", "the name", func(c *flagsConfig, v string) { c.Name = v })
	return f, fs.Parse(args)
}

func writeFile(t *testing.T, name, data string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

const flagsFile = `name = "from-file"
listen = ["file-1", "file-2"]
shutdown_grace = "20s"

[log]
level = "warn"
format = "json"

[limits]
max_conns = 5
`

func TestFlagsPrecedence(t *testing.T) {
	file := writeFile(t, "testd.toml", flagsFile)
	fromFile := func(c *flagsConfig) {
		c.Name = "from-file"
		c.Listen = []string{"file-1", "file-2"}
		c.ShutdownGrace = config.NewDuration(20 * time.Second)
		c.Log = Log{Level: "warn", Format: "json"}
		c.Limits.MaxConns = 5
	}
	for _, tt := range []struct {
		name string
		args []string
		want func(*flagsConfig)
	}{
		{"defaults", nil, func(*flagsConfig) {}},
		{"flags over defaults", []string{"-log-level", "debug", "-listen", "a"}, func(c *flagsConfig) {
			c.Log.Level = "debug"
			c.Listen = []string{"a"}
		}},
		{"file over defaults", []string{"-config", file}, fromFile},
		{"flags over file", []string{"-config", file, "-log-level", "debug", "-listen", "a", "-listen", "b"}, func(c *flagsConfig) {
			fromFile(c)
			c.Log.Level = "debug"
			c.Listen = []string{"a", "b"}
		}},
		{"every shared flag", []string{"-config", file, "-admin", "unix//run/testd.sock", "-log-level", "error",
			"-log-format", "text", "-max-conns", "0", "-shutdown-grace", "1m30s", "-name", "flag"}, func(c *flagsConfig) {
			fromFile(c)
			c.Admin.Listen = "unix//run/testd.sock"
			c.Log = Log{Level: "error", Format: "text"}
			c.Limits.MaxConns = 0
			c.ShutdownGrace = config.NewDuration(90 * time.Second)
			c.Name = "flag"
		}},
		{"admin none", []string{"-admin", "none"}, func(c *flagsConfig) { c.Admin.Listen = "" }},
		{"flag order does not matter", []string{"-listen", "b", "-config", file, "-listen", "a"}, func(c *flagsConfig) {
			fromFile(c)
			c.Listen = []string{"b", "a"}
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f, err := newFlags(t, tt.args...)
			if err != nil {
				t.Fatal(err)
			}
			want := flagsDefaults()
			tt.want(&want)
			got, err := f.Load()
			if err != nil {
				t.Fatal(err)
			}
			if got.Common != want.Common || got.Name != want.Name || !slices.Equal(got.Listen, want.Listen) {
				t.Errorf("Load() =\n%+v\nwant\n%+v", got, want)
			}
			// Load again, as on SIGHUP: the same result, and a list
			// flag's values are not shared with the first result.
			again, err := f.Load()
			if err != nil {
				t.Fatal(err)
			}
			if again.Common != got.Common || again.Name != got.Name || !slices.Equal(again.Listen, got.Listen) {
				t.Errorf("second Load() = %+v, first %+v", again, got)
			}
			if len(again.Listen) > 0 {
				again.Listen[0] = "changed"
				if third, _ := f.Load(); third.Listen[0] == "changed" {
					t.Error("Load results share the list flag's slice")
				}
			}
		})
	}
}

func TestFlagsReloadRereadsTheFile(t *testing.T) {
	file := writeFile(t, "testd.toml", flagsFile)
	f, err := newFlags(t, "-config", file, "-max-conns", "9")
	if err != nil {
		t.Fatal(err)
	}
	c, err := f.Load()
	if err != nil || c.Log.Level != "warn" || c.Limits.MaxConns != 9 {
		t.Fatalf("Load() = %+v, %v", c, err)
	}
	if err := os.WriteFile(file, []byte("[log]\nlevel = \"debug\"\n[limits]\nmax_conns = 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err = f.Load()
	if err != nil {
		t.Fatal(err)
	}
	if c.Log.Level != "debug" || c.Limits.MaxConns != 9 || c.Name != "builtin" {
		t.Errorf("after the file changed: level %q, max_conns %d (flag), name %q; want debug, 9, builtin", c.Log.Level, c.Limits.MaxConns, c.Name)
	}
	if err := os.WriteFile(file, []byte("[log]\nlevel = \"loud\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Load(); err == nil || !strings.HasPrefix(err.Error(), "config "+file+":2: log.level:") {
		t.Errorf("Load of a bad file: %v", err)
	}
}

func TestFlagsErrors(t *testing.T) {
	good := writeFile(t, "good.toml", flagsFile)
	bad := writeFile(t, "bad.toml", "name = \"x\"\n[limits]\nmax_conns = -3\n")
	for _, tt := range []struct {
		name     string
		args     []string
		parseErr string // an error from parsing the command line
		loadErr  string // an error from Load
	}{
		{name: "bad level flag", args: []string{"-log-level", "loud"}, loadErr: `command line: log.level: unknown level "loud"`},
		{name: "bad level flag over a file", args: []string{"-config", good, "-log-level", "loud"}, loadErr: "command line: log.level:"},
		{name: "bad format flag", args: []string{"-log-format", "xml"}, loadErr: "command line: log.format:"},
		{name: "negative max-conns", args: []string{"-max-conns", "-1"}, loadErr: "command line: limits.max_conns: must not be negative, got -1"},
		{name: "udp admin", args: []string{"-admin", "udp/127.0.0.1:1"}, loadErr: "command line: admin.listen:"},
		{name: "empty name", args: []string{"-name", ""}, loadErr: "command line: name: must not be empty"},
		{name: "bad file", args: []string{"-config", bad}, loadErr: "config " + bad + ":3: limits.max_conns: must not be negative, got -3"},
		{name: "bad file, good flag", args: []string{"-config", bad, "-max-conns", "3"}, loadErr: "config " + bad + ":3: limits.max_conns:"},
		{name: "missing file", args: []string{"-config", filepath.Join(t.TempDir(), "nope.toml")}, loadErr: "read config: "},
		{name: "bad grace", args: []string{"-shutdown-grace", "-1s"}, parseErr: `negative duration "-1s"`},
		{name: "grace not a duration", args: []string{"-shutdown-grace", "10"}, parseErr: `bad duration "10"`},
		{name: "max-conns not a number", args: []string{"-max-conns", "many"}, parseErr: "invalid value"},
		{name: "unknown flag", args: []string{"-verbose"}, parseErr: "not defined: -verbose"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f, err := newFlags(t, tt.args...)
			if tt.parseErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.parseErr) {
					t.Errorf("parse error %v, want %q", err, tt.parseErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if _, err := f.Load(); err == nil || !strings.HasPrefix(err.Error(), tt.loadErr) {
				t.Errorf("Load error %v, want one starting %q", err, tt.loadErr)
			}
		})
	}
}

func TestFlagsConfigPath(t *testing.T) {
	f, err := newFlags(t, "-config", "/etc/testd.toml")
	if err != nil {
		t.Fatal(err)
	}
	if f.ConfigPath != "/etc/testd.toml" {
		t.Errorf("ConfigPath = %q", f.ConfigPath)
	}
}
