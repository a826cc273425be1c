package server

import (
	"reflect"
	"testing"

	"example.com/appliance/shared/config"
)

// TestShippedConfig keeps configs/printsrv.toml, which documents every key
// with its default, in step with Default: it decodes to the defaults plus
// the appliance's two documented changes.
func TestShippedConfig(t *testing.T) {
	var got Config // zero, so every default must come from the file
	if err := config.Load("../../../configs/printsrv.toml", &got); err != nil {
		t.Fatal(err)
	}
	want := Default()
	want.Listen = []string{"tcp/:631"}
	want.StateDir = "/var/lib/printsrv"
	if !reflect.DeepEqual(got, want) {
		t.Errorf("configs/printsrv.toml decodes to\n%+v\nwant\n%+v", got, want)
	}
}

// TestConfigErrors checks that Validate names the key of each bad value.
func TestConfigErrors(t *testing.T) {
	tests := []struct {
		name string
		edit func(*Config)
		key  string
	}{
		{"no listeners", func(c *Config) { c.Listen = nil }, "listen"},
		{"udp listener", func(c *Config) { c.Listen = []string{"udp/:631"} }, "listen"},
		{"no printers", func(c *Config) { c.Printers = nil }, "printer"},
		{"bad name", func(c *Config) { c.Printers[0].Name = "a b" }, "printer[0].name"},
		{"duplicate", func(c *Config) { c.Printers[1].Name = c.Printers[0].Name }, "printer[1].name"},
		{"bad media", func(c *Config) { c.Printers[0].Media = []string{"a4"} }, "printer[0].media"},
		{"media default", func(c *Config) { c.Printers[1].MediaDefault = "na_letter_8.5x11in" }, "printer[1].media_default"},
		{"bad format", func(c *Config) { c.Printers[0].Formats = []string{"pdf"} }, "printer[0].formats"},
		{"default printer", func(c *Config) { c.DefaultPrinter = "nope" }, "default_printer"},
		{"max job bytes", func(c *Config) { c.MaxJobBytes = 0 }, "max_job_bytes"},
		{"bad user", func(c *Config) { c.Auth.Users = []string{"nopassword"} }, "auth.users"},
		{"password in the clear", func(c *Config) { c.Auth.Users = []string{"a:secret"} }, "auth.users"},
		{"cert without key", func(c *Config) { c.TLS.Cert = "/x.pem" }, "tls.cert"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Default()
			tt.edit(&c)
			err := c.Validate()
			var fe *config.FieldError
			if !asFieldError(err, &fe) || fe.Key != tt.key {
				t.Fatalf("Validate = %v, want an error about %s", err, tt.key)
			}
		})
	}
	c := Default()
	if err := c.Validate(); err != nil {
		t.Fatalf("the default config does not validate: %v", err)
	}
}

func asFieldError(err error, fe **config.FieldError) bool {
	e, ok := err.(*config.FieldError)
	*fe = e
	return ok
}
