package server

import (
	"reflect"
	"testing"

	"example.com/appliance/shared/config"
)

// TestShippedConfigIsTheDefaults keeps configs/tsserv.toml, which documents
// every key with its default, in step with Default.
func TestShippedConfigIsTheDefaults(t *testing.T) {
	var got Config // zero, so every default must come from the file
	if err := config.Load("../../../configs/tsserv.toml", &got); err != nil {
		t.Fatal(err)
	}
	if want := Default(); !reflect.DeepEqual(got, want) {
		t.Errorf("configs/tsserv.toml decodes to\n%+v\nbuilt-in defaults are\n%+v", got, want)
	}
}
