package daemon

import (
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"example.com/appliance/shared/config"
	"example.com/appliance/shared/netsrv"
)

func TestDefaultCommonValidates(t *testing.T) {
	for _, admin := range []string{"tcp/127.0.0.1:9121", "tcp/[::1]:0", "unix//run/admin.sock", ""} {
		t.Run(admin, func(t *testing.T) {
			c := DefaultCommon(admin)
			if err := c.Validate(); err != nil {
				t.Errorf("DefaultCommon(%q).Validate() = %v", admin, err)
			}
			if c.Admin.Listen != admin {
				t.Errorf("Admin.Listen = %q, want %q", c.Admin.Listen, admin)
			}
		})
	}
	c := DefaultCommon("")
	want := Common{
		ShutdownGrace: config.NewDuration(10 * time.Second),
		Log:           Log{Level: "info", Format: "text"},
		Limits: Limits{MaxConns: 10000, ReadTimeout: config.NewDuration(30 * time.Second),
			IdleTimeout: config.NewDuration(5 * time.Minute), WriteTimeout: config.NewDuration(30 * time.Second),
			MaxMessageBytes: 65536},
	}
	if c != want {
		t.Errorf("DefaultCommon = %+v, want %+v", c, want)
	}
}

func TestCommonValidate(t *testing.T) {
	for _, tt := range []struct {
		name    string
		set     func(*Common)
		wantKey string // "" for valid
		wantMsg string
	}{
		{"level debug", func(c *Common) { c.Log.Level = "debug" }, "", ""},
		{"level upper case", func(c *Common) { c.Log.Level = "WARN" }, "", ""},
		{"level empty", func(c *Common) { c.Log.Level = "" }, "", ""},
		{"level unknown", func(c *Common) { c.Log.Level = "loud" }, "log.level", `unknown level "loud"`},
		{"format json", func(c *Common) { c.Log.Format = "json" }, "", ""},
		{"format unknown", func(c *Common) { c.Log.Format = "xml" }, "log.format", `unknown format "xml"`},
		{"format empty", func(c *Common) { c.Log.Format = "" }, "log.format", `unknown format ""`},
		{"format upper case", func(c *Common) { c.Log.Format = "JSON" }, "log.format", `unknown format "JSON"`},
		{"admin none", func(c *Common) { c.Admin.Listen = "" }, "", ""},
		{"admin unix", func(c *Common) { c.Admin.Listen = "unix//run/a.sock" }, "", ""},
		{"admin udp", func(c *Common) { c.Admin.Listen = "udp/127.0.0.1:9121" }, "admin.listen", "is not a tcp/ or unix// address"},
		{"admin unixgram", func(c *Common) { c.Admin.Listen = "unixgram//run/a" }, "admin.listen", "is not a tcp/ or unix// address"},
		{"admin no network", func(c *Common) { c.Admin.Listen = "127.0.0.1:9121" }, "admin.listen", "want network/address"},
		{"admin bad port", func(c *Common) { c.Admin.Listen = "tcp/:99999" }, "admin.listen", `bad port "99999"`},
		{"max_conns zero", func(c *Common) { c.Limits.MaxConns = 0 }, "", ""},
		{"max_conns negative", func(c *Common) { c.Limits.MaxConns = -1 }, "limits.max_conns", "must not be negative, got -1"},
		{"max_message_bytes 1", func(c *Common) { c.Limits.MaxMessageBytes = 1 }, "", ""},
		{"max_message_bytes 1GiB", func(c *Common) { c.Limits.MaxMessageBytes = 1 << 30 }, "", ""},
		{"max_message_bytes 0", func(c *Common) { c.Limits.MaxMessageBytes = 0 }, "limits.max_message_bytes", "got 0"},
		{"max_message_bytes negative", func(c *Common) { c.Limits.MaxMessageBytes = -5 }, "limits.max_message_bytes", "got -5"},
		{"max_message_bytes over 1GiB", func(c *Common) { c.Limits.MaxMessageBytes = 1<<30 + 1 }, "limits.max_message_bytes", "got 1073741825"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := DefaultCommon("tcp/127.0.0.1:9121")
			tt.set(&c)
			err := c.Validate()
			if tt.wantKey == "" {
				if err != nil {
					t.Errorf("Validate() = %v", err)
				}
				return
			}
			var fe *config.FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("Validate() = %v, want a FieldError for %s", err, tt.wantKey)
			}
			if fe.Key != tt.wantKey || !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("Validate() = %v (key %s), want key %s and %q", err, fe.Key, tt.wantKey, tt.wantMsg)
			}
		})
	}
}

// commonOnly is a daemon config with nothing but the shared sections.
type commonOnly struct {
	Common
}

// TestCommonInConfigFile checks that the shared keys sit at the top of a
// daemon's file and that their errors point at their lines.
func TestCommonInConfigFile(t *testing.T) {
	for _, tt := range []struct {
		name, doc, wantErr string
	}{
		{"valid", "shutdown_grace = \"3s\"\n[log]\nlevel = \"debug\"\n[limits]\nread_timeout = \"0s\"\n", ""},
		{"bad level", "[log]\nformat = \"json\"\nlevel = \"loud\"\n", `config c.toml:3: log.level: unknown level "loud"`},
		{"udp admin", "admin.listen = \"udp/127.0.0.1:1\"\n", `config c.toml:1: admin.listen: "udp/127.0.0.1:1" is not a tcp/ or unix// address`},
		{"negative max_conns", "[limits]\nmax_conns = -1\n", "config c.toml:2: limits.max_conns: must not be negative, got -1"},
		{"zero max_message_bytes", "limits.max_message_bytes = 0\n", "config c.toml:1: limits.max_message_bytes: must be between 1 and 1073741824, got 0"},
		{"bad grace", "shutdown_grace = \"soon\"\n", `config c.toml:1: shutdown_grace: bad duration "soon"`},
		{"unknown key", "[limits]\nmax_connections = 3\n", "config c.toml:2: limits.max_connections: unknown key"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := commonOnly{DefaultCommon("")}
			err := config.Decode("c.toml", []byte(tt.doc), &c)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				if c.ShutdownGrace != config.NewDuration(3*time.Second) || c.Log.Level != "debug" || c.Log.Format != "text" ||
					c.Limits.ReadTimeout.Duration != 0 || c.Limits.MaxConns != 10000 {
					t.Errorf("decoded %+v", c.Common)
				}
				return
			}
			if err == nil || !strings.HasPrefix(err.Error(), tt.wantErr) {
				t.Errorf("error %v, want %q", err, tt.wantErr)
			}
		})
	}
}

func TestLimitsNet(t *testing.T) {
	l := Limits{
		MaxConns:        7,
		ReadTimeout:     config.NewDuration(time.Second),
		IdleTimeout:     config.NewDuration(time.Minute),
		WriteTimeout:    config.NewDuration(time.Hour),
		MaxMessageBytes: 512,
	}
	want := netsrv.Limits{MaxConns: 7, ReadTimeout: time.Second, IdleTimeout: time.Minute, WriteTimeout: time.Hour, MaxMessageBytes: 512}
	if got := l.Net(); got != want {
		t.Errorf("Net() = %+v, want %+v", got, want)
	}
	if got := (Limits{}).Net(); got != (netsrv.Limits{}) {
		t.Errorf("zero Limits.Net() = %+v", got)
	}
	if got := DefaultCommon("").Limits.Net(); got.PacketWorkers != 0 || got.IdleTimeout != 5*time.Minute {
		t.Errorf("default Limits.Net() = %+v", got)
	}
}

func TestParseLevel(t *testing.T) {
	for _, tt := range []struct {
		in      string
		want    slog.Level
		wantErr bool
	}{
		{"debug", slog.LevelDebug, false},
		{"DEBUG", slog.LevelDebug, false},
		{"info", slog.LevelInfo, false},
		{"", slog.LevelInfo, false},
		{"warn", slog.LevelWarn, false},
		{"warning", slog.LevelWarn, false},
		{"Warning", slog.LevelWarn, false},
		{"error", slog.LevelError, false},
		{"err", 0, true},
		{"trace", 0, true},
		{" info", 0, true},
		{"4", 0, true},
	} {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseLevel(tt.in)
			if tt.wantErr {
				if err == nil || !strings.Contains(err.Error(), "want debug, info, warn or error") {
					t.Errorf("ParseLevel(%q) = %v, %v; want an error", tt.in, got, err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("ParseLevel(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
			}
		})
	}
}
