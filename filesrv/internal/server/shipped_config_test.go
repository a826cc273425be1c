package server

import (
	"os"
	"reflect"
	"regexp"
	"testing"

	"example.com/appliance/shared/config"
)

const shipped = "../../../configs/filesrv.toml"

// appliance returns the built-in defaults with the changes that
// configs/filesrv.toml makes for the appliance, each documented there.
func appliance() Config {
	c := Default()
	c.Listen = []string{"tcp/:2049"}
	c.Portmap = []string{"tcp/:111", "udp/:111"}
	c.StateDir = "/var/lib/filesrv"
	c.Exports[0].Dir = "/srv/export"
	c.Exports[0].Squash = "root"
	c.Exports[0].AnonUID, c.Exports[0].AnonGID = anonID(), anonID()
	c.Exports[0].Clients = []string{"127.0.0.0/8", "::1/128", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7"}
	return c
}

// TestShippedConfig keeps configs/filesrv.toml in step with Default: it
// decodes to the defaults plus the appliance's documented changes.
func TestShippedConfig(t *testing.T) {
	var got Config // zero, so every value must come from the file
	if err := config.Load(shipped, &got); err != nil {
		t.Fatal(err)
	}
	if want := appliance(); !reflect.DeepEqual(got, want) {
		t.Errorf("configs/filesrv.toml decodes to\n%+v\nwant\n%+v", got, want)
	}
}

// TestShippedConfigNamesEveryKey checks that each key of the file
// format appears in configs/filesrv.toml, so none goes undocumented.
func TestShippedConfigNamesEveryKey(t *testing.T) {
	data, err := os.ReadFile(shipped)
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	var walk func(reflect.Type)
	walk = func(ty reflect.Type) {
		for i := range ty.NumField() {
			f := ty.Field(i)
			if f.Anonymous {
				walk(f.Type)
				continue
			}
			keys = append(keys, f.Tag.Get("toml"))
			switch f.Type.Kind() {
			case reflect.Struct:
				if f.Type != reflect.TypeFor[config.Duration]() {
					walk(f.Type)
				}
			case reflect.Slice:
				if f.Type.Elem().Kind() == reflect.Struct {
					walk(f.Type.Elem())
				}
			}
		}
	}
	walk(reflect.TypeFor[Config]())
	for _, k := range keys {
		re := regexp.MustCompile(`(?m)^(` + regexp.QuoteMeta(k) + ` =|\[\[?` + regexp.QuoteMeta(k) + `\]\]?$)`)
		if !re.Match(data) {
			t.Errorf("key %q is not in %s", k, shipped)
		}
	}
}

// TestDefaultValidates checks the built-in config.
func TestDefaultValidates(t *testing.T) {
	c := Default()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
}
