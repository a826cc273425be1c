package server

import (
	"strings"
	"testing"
)

func TestValidate(t *testing.T) {
	zero := uint32(0)
	tests := []struct {
		name string
		edit func(*Config)
		key  string // "" for valid
		msg  string
	}{
		{"defaults", func(*Config) {}, "", ""},
		{"ipv6 and every interface", func(c *Config) { c.Listen = []string{"tcp/:2049", "tcp/[::1]:2049"} }, "", ""},
		{"no portmapper", func(c *Config) { c.Portmap = nil }, "", ""},
		{"single address client", func(c *Config) { c.Exports[0].Clients = []string{"192.168.1.7", "fe80::/10"} }, "", ""},
		{"anonuid 0 on purpose", func(c *Config) { c.Exports[0].AnonUID = &zero }, "", ""},
		{"squash all", func(c *Config) { c.Exports[0].Squash = "all" }, "", ""},
		{"no listen", func(c *Config) { c.Listen = nil }, "listen", "serve nothing"},
		{"udp listen", func(c *Config) { c.Listen = []string{"udp/:2049"} }, "listen", "tcp/ only"},
		{"bad listen", func(c *Config) { c.Listen = []string{"2049"} }, "listen", ""},
		{"unix portmap", func(c *Config) { c.Portmap = []string{"unix//tmp/pm"} }, "portmap", "tcp/ and udp/"},
		{"no state dir", func(c *Config) { c.StateDir = "" }, "state_dir", "empty"},
		{"tiny max_io", func(c *Config) { c.MaxIO = 512 }, "max_io", "between 4096"},
		{"max_io over the record limit", func(c *Config) { c.MaxIO = 4 << 20 }, "limits.max_message_bytes", "full WRITE"},
		{"no exports", func(c *Config) { c.Exports = nil }, "export", "share nothing"},
		{"relative path", func(c *Config) { c.Exports[0].Path = "export" }, "export.path", "clean absolute"},
		{"unclean path", func(c *Config) { c.Exports[0].Path = "/export/../etc" }, "export.path", "clean absolute"},
		{"no dir", func(c *Config) { c.Exports[0].Dir = "" }, "export.dir", "empty"},
		{"no clients", func(c *Config) { c.Exports[0].Clients = nil }, "export.clients", "nobody could mount"},
		{"bad client", func(c *Config) { c.Exports[0].Clients = []string{"10.0.0.0/33"} }, "export.clients", "neither a CIDR prefix"},
		{"bad squash", func(c *Config) { c.Exports[0].Squash = "nobody" }, "export.squash", "root, all or none"},
		{"duplicate path", func(c *Config) { c.Exports = append(c.Exports, c.Exports[0]) }, "export.path", "exported twice"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Default()
			tt.edit(&c)
			err := c.Validate()
			if tt.key == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil || !strings.HasPrefix(err.Error(), tt.key+":") || !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("Validate = %v, want %s: ...%s...", err, tt.key, tt.msg)
			}
		})
	}
}

func TestAnonDefaults(t *testing.T) {
	var e ExportConfig // as an [[export]] table without anonuid or anongid
	if uid, gid := e.anon(); uid != 65534 || gid != 65534 {
		t.Errorf("anon() = %d, %d; want 65534, 65534", uid, gid)
	}
}
