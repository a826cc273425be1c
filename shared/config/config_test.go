package config

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite golden files")

// testConfig is a daemon's config in small: top-level keys, a list and a
// table, with durations at both levels.
type testConfig struct {
	Name    string     `toml:"name"`
	Timeout Duration   `toml:"timeout"`
	Tags    []string   `toml:"tags"`
	Limits  testLimits `toml:"limits"`
}

type testLimits struct {
	MaxConns int      `toml:"max_conns"`
	Idle     Duration `toml:"idle"`
}

func defaults() testConfig {
	return testConfig{
		Name:    "default",
		Timeout: NewDuration(5 * time.Second),
		Tags:    []string{"a", "b"},
		Limits:  testLimits{MaxConns: 100, Idle: NewDuration(time.Minute)},
	}
}

func (c *testConfig) Validate() error {
	switch {
	case c.Name == "":
		return Errorf("name", "must not be empty")
	case c.Name == "plain":
		return errors.New("a plain error, for no key")
	case c.Limits.MaxConns < 0:
		return Errorf("limits.max_conns", "must not be negative, got %d", c.Limits.MaxConns)
	case c.Limits.Idle.Duration < c.Timeout.Duration:
		return Errorf("limits.idle", "must be at least the timeout (%s), got %s", c.Timeout, c.Limits.Idle)
	}
	return nil
}

// noValidate has no Validate method.
type noValidate struct {
	Name    string   `toml:"name"`
	Timeout Duration `toml:"timeout"`
}

func TestDecodeKeepsDefaults(t *testing.T) {
	for _, tt := range []struct {
		name, doc string
		want      func(*testConfig)
	}{
		{"empty", "", func(*testConfig) {}},
		{"comments only", "# nothing set\n\n# here\n", func(*testConfig) {}},
		{"one top-level key", `name = "x"`, func(c *testConfig) { c.Name = "x" }},
		{"one key in a table", "[limits]\nmax_conns = 5\n", func(c *testConfig) { c.Limits.MaxConns = 5 }},
		{"dotted key", "limits.max_conns = 0\n", func(c *testConfig) { c.Limits.MaxConns = 0 }},
		{"inline table", "limits = { idle = \"1h\" }\n", func(c *testConfig) { c.Limits.Idle = NewDuration(time.Hour) }},
		{"durations", "timeout = \"1m30s\"\n[limits]\nidle = \"2h\"\n", func(c *testConfig) {
			c.Timeout = NewDuration(90 * time.Second)
			c.Limits.Idle = NewDuration(2 * time.Hour)
		}},
		{"zero duration", "timeout = \"0s\"\n", func(c *testConfig) { c.Timeout = NewDuration(0) }},
		{"list replaced", `tags = ["x"]`, func(c *testConfig) { c.Tags = []string{"x"} }},
		{"empty list", `tags = []`, func(c *testConfig) { c.Tags = []string{} }},
		{"everything", "name = \"all\"\ntimeout = \"1s\"\ntags = [\"p\", \"q\", \"r\"]\n[limits]\nmax_conns = 7\nidle = \"1s\"\n",
			func(c *testConfig) {
				*c = testConfig{Name: "all", Timeout: NewDuration(time.Second), Tags: []string{"p", "q", "r"},
					Limits: testLimits{MaxConns: 7, Idle: NewDuration(time.Second)}}
			}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			want := defaults()
			tt.want(&want)
			got := defaults()
			if err := Decode("t.toml", []byte(tt.doc), &got); err != nil {
				t.Fatal(err)
			}
			if fmt.Sprintf("%#v", got) != fmt.Sprintf("%#v", want) {
				t.Errorf("decoded\n%#v\nwant\n%#v", got, want)
			}
			// Load reads a file the same way.
			path := filepath.Join(t.TempDir(), "c.toml")
			if err := os.WriteFile(path, []byte(tt.doc), 0o600); err != nil {
				t.Fatal(err)
			}
			got = defaults()
			if err := Load(path, &got); err != nil {
				t.Fatal(err)
			}
			if fmt.Sprintf("%#v", got) != fmt.Sprintf("%#v", want) {
				t.Errorf("loaded\n%#v\nwant\n%#v", got, want)
			}
		})
	}
}

// TestErrorsGolden loads each testdata/errors/*.toml and compares the error
// with the .golden file beside it. go test -run TestErrorsGolden -update
// rewrites them.
func TestErrorsGolden(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "errors", "*.toml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no test cases in testdata/errors")
	}
	for _, path := range files {
		name := strings.TrimSuffix(filepath.Base(path), ".toml")
		t.Run(name, func(t *testing.T) {
			c := defaults()
			err := Load(path, &c)
			if err == nil {
				t.Fatalf("Load(%s) succeeded: %+v", path, c)
			}
			got := err.Error() + "\n"
			golden := strings.TrimSuffix(path, ".toml") + ".golden"
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -update to write it)", err)
			}
			if got != string(want) {
				t.Errorf("Load(%s) error\n  %s want\n  %s", path, got, want)
			}
			// Decode labels the error with the name it is given.
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			c = defaults()
			err = Decode("other.toml", data, &c)
			if err == nil || err.Error()+"\n" != strings.Replace(string(want), path, "other.toml", 1) {
				t.Errorf("Decode(other.toml) error %v, want the golden text with the name other.toml", err)
			}
		})
	}
}

// TestErrorsNameKeyAndLine checks the promise behind the golden files: an
// error about a key names the key and the line it is set on.
func TestErrorsNameKeyAndLine(t *testing.T) {
	for _, tt := range []struct {
		name, doc, key string
		line           int
		detail         string
	}{
		{"unknown key", "name = \"x\"\n\nbogus = 1\n", "bogus", 3, "unknown key"},
		{"unknown key in table", "[limits]\nmax_conns = 1\nbogus = 1\n", "limits.bogus", 3, "unknown key"},
		{"unknown table", "name = \"x\"\n[bogus]\n", "bogus", 2, "unknown key"},
		{"wrong type", "\n\nname = true\n", "name", 3, "wrong type: got a boolean, want a string"},
		{"wrong type in table", "[limits]\n\nmax_conns = 1.5\n", "limits.max_conns", 3, "wrong type: got a float, want an integer"},
		{"bad duration", "timeout = \"soon\"\n", "timeout", 1, `bad duration "soon"`},
		{"bad duration in table", "name = \"x\"\n[limits]\nidle = \"5 minutes\"\n", "limits.idle", 3, `bad duration "5 minutes"`},
		{"negative duration", "\ntimeout = \"-1s\"\n", "timeout", 2, `negative duration "-1s"`},
		{"validate in table", "name = \"x\"\n[limits]\nidle = \"1h\"\nmax_conns = -1\n", "limits.max_conns", 4, "must not be negative, got -1"},
		{"validate dotted key at top level", "name = \"x\"\n\n\nlimits.max_conns = -1\n", "limits.max_conns", 4, "must not be negative, got -1"},
		{"validate quoted key", "\"limits\".'max_conns' = -1\n", "limits.max_conns", 1, "must not be negative"},
		{"validate spaced table", "[ limits ]\n  max_conns   =   -1\n", "limits.max_conns", 2, "must not be negative"},
		{"validate top level", "timeout = \"1s\"\nname = \"\"\n", "name", 2, "must not be empty"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := defaults()
			err := Decode("t.toml", []byte(tt.doc), &c)
			if err == nil {
				t.Fatal("no error")
			}
			want := fmt.Sprintf("config t.toml:%d: %s: ", tt.line, tt.key)
			if !strings.HasPrefix(err.Error(), want) || !strings.Contains(err.Error(), tt.detail) {
				t.Errorf("error %q, want %q followed by %q", err, want, tt.detail)
			}
		})
	}
}

func TestFieldError(t *testing.T) {
	err := Errorf("limits.max_conns", "must not be negative, got %d", -1)
	if got, want := err.Error(), "limits.max_conns: must not be negative, got -1"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	var fe *FieldError
	if !errors.As(fmt.Errorf("wrapped: %w", err), &fe) || fe.Key != "limits.max_conns" {
		t.Errorf("errors.As through a wrap: %v", fe)
	}
	inner := errors.New("inner")
	if !errors.Is(&FieldError{Key: "k", Err: inner}, inner) {
		t.Error("FieldError does not unwrap to its Err")
	}

	// A FieldError wrapped by Validate is still located in the file.
	c := wrappingValidator{}
	if err := Decode("w.toml", []byte("\nname = \"x\"\n"), &c); err == nil || !strings.HasPrefix(err.Error(), "config w.toml:2: context: name: bad") {
		t.Errorf("wrapped FieldError: %v", err)
	}
}

type wrappingValidator struct {
	Name string `toml:"name"`
}

func (w *wrappingValidator) Validate() error {
	return fmt.Errorf("context: %w", Errorf("name", "bad"))
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, data []byte) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	// Exactly MaxFileBytes: a valid document padded with a comment.
	doc := "name = \"big\"\n# "
	atLimit := append([]byte(doc), bytes.Repeat([]byte("x"), MaxFileBytes-len(doc)-1)...)
	atLimit = append(atLimit, '\n')
	overLimit := append(bytes.Clone(atLimit), '\n')

	for _, tt := range []struct {
		name    string
		path    string
		dst     any
		wantErr string // "" for success
		check   func(t *testing.T, dst any)
	}{
		{name: "empty path runs Validate on the defaults", path: "", dst: ptr(defaults()),
			check: func(t *testing.T, dst any) {
				if c := dst.(*testConfig); fmt.Sprint(*c) != fmt.Sprint(defaults()) {
					t.Errorf("defaults changed: %+v", *c)
				}
			}},
		{name: "empty path with bad defaults", path: "", dst: &testConfig{Name: "", Limits: testLimits{Idle: NewDuration(1)}},
			wantErr: "config defaults: name: must not be empty"},
		{name: "empty path with a plain Validate error", path: "", dst: &testConfig{Name: "plain"},
			wantErr: "config defaults: a plain error, for no key"},
		{name: "empty path without Validate", path: "", dst: &noValidate{}},
		{name: "missing file", path: filepath.Join(dir, "nope.toml"), dst: ptr(defaults()),
			wantErr: "read config: open " + filepath.Join(dir, "nope.toml") + ": no such file or directory"},
		{name: "directory", path: dir, dst: ptr(defaults()),
			wantErr: "read config " + dir + ": "},
		{name: "file at MaxFileBytes", path: write("at.toml", atLimit), dst: ptr(defaults()),
			check: func(t *testing.T, dst any) {
				if c := dst.(*testConfig); c.Name != "big" {
					t.Errorf("name = %q", c.Name)
				}
			}},
		{name: "file over MaxFileBytes", path: write("over.toml", overLimit), dst: ptr(defaults()),
			wantErr: fmt.Sprintf("config %s: larger than %d bytes", filepath.Join(dir, "over.toml"), MaxFileBytes)},
		{name: "no Validate", path: write("nv.toml", []byte("name = \"plain\"\ntimeout = \"3s\"\n")), dst: &noValidate{},
			check: func(t *testing.T, dst any) {
				if c := dst.(*noValidate); c.Name != "plain" || c.Timeout != NewDuration(3*time.Second) {
					t.Errorf("decoded %+v", *c)
				}
			}},
		{name: "no Validate, unknown key", path: write("nvu.toml", []byte("name = \"x\"\nport = 1\n")), dst: &noValidate{},
			wantErr: "config " + filepath.Join(dir, "nvu.toml") + ":2: port: unknown key"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := Load(tt.path, tt.dst)
			if tt.wantErr != "" {
				if err == nil || !strings.HasPrefix(err.Error(), tt.wantErr) {
					t.Fatalf("Load error %v, want one starting %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tt.check != nil {
				tt.check(t, tt.dst)
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

func TestKeyLine(t *testing.T) {
	doc := `# comment
name = "x"
timeout = "1s"
limits.idle = "1m"

[limits]
max_conns = 3

[servers.a]
port = 1

[[items]]
id = 1
[[items]]
id = 2
`
	for _, tt := range []struct {
		key  string
		want int
	}{
		{"name", 2},
		{"timeout", 3},
		{"limits.idle", 4},
		{"limits.max_conns", 7},
		{"limits", 6}, // the table header
		{"servers.a", 9},
		{"servers.a.port", 10},
		{"items.id", 13}, // the first one
		{"items", 12},
		{"nope", 0},
		{"limits.nope", 0},
		{"", 0},
		{"name.sub", 2}, // a key inside a value set as a whole
	} {
		t.Run(tt.key, func(t *testing.T) {
			if got := keyLine([]byte(doc), tt.key); got != tt.want {
				t.Errorf("keyLine(%q) = %d, want %d", tt.key, got, tt.want)
			}
		})
	}
	if got := keyLine(nil, "name"); got != 0 {
		t.Errorf("keyLine(nil) = %d", got)
	}
}

var durationTests = []struct {
	in      string
	want    time.Duration
	wantErr string
}{
	{in: "5s", want: 5 * time.Second},
	{in: "1m30s", want: 90 * time.Second},
	{in: "0s", want: 0},
	{in: "0", want: 0},
	{in: "-0s", want: 0},
	{in: "1.5h", want: 90 * time.Minute},
	{in: "300ms", want: 300 * time.Millisecond},
	{in: "1us", want: time.Microsecond},
	{in: "1µs", want: time.Microsecond},
	{in: "2562047h47m16.854775807s", want: time.Duration(1<<63 - 1)},
	{in: "", wantErr: `bad duration ""`},
	{in: "5", wantErr: `bad duration "5"`},
	{in: "1d", wantErr: `bad duration "1d"`},
	{in: "5 s", wantErr: `bad duration "5 s"`},
	{in: "forever", wantErr: `bad duration "forever"`},
	{in: "9999999h", wantErr: `bad duration "9999999h"`},
	{in: "-5s", wantErr: `negative duration "-5s"`},
	{in: "-1ns", wantErr: `negative duration "-1ns"`},
}

func TestDuration(t *testing.T) {
	for _, tt := range durationTests {
		t.Run(tt.in, func(t *testing.T) {
			d := NewDuration(42)
			err := d.UnmarshalText([]byte(tt.in))
			if tt.wantErr != "" {
				if err == nil || !strings.HasPrefix(err.Error(), tt.wantErr) {
					t.Errorf("UnmarshalText(%q) = %v (%v), want error %q", tt.in, err, d.Duration, tt.wantErr)
				}
				if d.Duration != 42 {
					t.Errorf("UnmarshalText(%q) failed but changed the value to %v", tt.in, d.Duration)
				}
				// Set, for flags, says the same.
				if err := d.Set(tt.in); err == nil || !strings.HasPrefix(err.Error(), tt.wantErr) {
					t.Errorf("Set(%q) = %v, want error %q", tt.in, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("UnmarshalText(%q): %v", tt.in, err)
			}
			if d.Duration != tt.want {
				t.Errorf("UnmarshalText(%q) = %v, want %v", tt.in, d.Duration, tt.want)
			}
			text, err := d.MarshalText()
			if err != nil || string(text) != tt.want.String() || d.String() != tt.want.String() {
				t.Errorf("MarshalText = %q, %v; String = %q; want %q", text, err, d.String(), tt.want.String())
			}
		})
	}
}

func TestDurationFlag(t *testing.T) {
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	fs.SetOutput(new(bytes.Buffer))
	d := NewDuration(time.Second)
	fs.Var(&d, "grace", "grace period")
	if err := fs.Parse([]string{"-grace", "1m30s"}); err != nil {
		t.Fatal(err)
	}
	if d != NewDuration(90*time.Second) {
		t.Errorf("-grace 1m30s gave %v", d)
	}
	if err := fs.Parse([]string{"-grace", "-1s"}); err == nil || !strings.Contains(err.Error(), `negative duration "-1s"`) {
		t.Errorf("-grace -1s: %v", err)
	}
}

func FuzzDurationUnmarshalText(f *testing.F) {
	for _, tt := range durationTests {
		f.Add(tt.in)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var d Duration
		err := d.UnmarshalText([]byte(s))
		if err != nil {
			if d.Duration != 0 {
				t.Errorf("UnmarshalText(%q) failed (%v) but set %v", s, err, d.Duration)
			}
			if !strings.Contains(err.Error(), strconv.Quote(s)) && !strings.Contains(err.Error(), fmt.Sprintf("%q", []byte(s))) {
				t.Errorf("UnmarshalText(%q) error %q does not quote the input", s, err)
			}
			return
		}
		if d.Duration < 0 {
			t.Fatalf("UnmarshalText(%q) = %v, negative", s, d.Duration)
		}
		if want, err := time.ParseDuration(s); err != nil || NewDuration(want) != d {
			t.Fatalf("UnmarshalText(%q) = %v, time.ParseDuration = %v, %v", s, d.Duration, want, err)
		}
		text, err := d.MarshalText()
		if err != nil {
			t.Fatal(err)
		}
		var back Duration
		if err := back.UnmarshalText(text); err != nil || back != d {
			t.Fatalf("UnmarshalText(%q) = %v, written %q, read back %v, %v", s, d.Duration, text, back.Duration, err)
		}
	})
}

var linePrefix = regexp.MustCompile(`^config fuzz\.toml:(\d+): `)

func FuzzDecode(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "errors", "*.toml"))
	for _, path := range files {
		data, err := os.ReadFile(path)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	for _, doc := range []string{
		"",
		"name = \"x\"\ntimeout = \"1m30s\"\ntags = [\"p\", \"q\"]\n[limits]\nmax_conns = 7\nidle = \"1h\"\n",
		"limits = { max_conns = -1 }\n",
		"[[limits]]\n",
		"name.x = 1\n",
		"timeout = 1979-05-27T07:32:00Z\n",
		"tags = [[1], {a = 1}]\n",
	} {
		f.Add([]byte(doc))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c := defaults()
		err := Decode("fuzz.toml", data, &c)
		if err == nil {
			if c.Validate() != nil {
				t.Fatalf("Decode accepted %q, but the result does not validate: %+v", data, c)
			}
			return
		}
		msg := err.Error()
		if !strings.HasPrefix(msg, "config ") {
			t.Fatalf("Decode(%q) error %q does not start with \"config \"", data, msg)
		}
		if m := linePrefix.FindStringSubmatch(msg); m != nil {
			line, _ := strconv.Atoi(m[1])
			if lines := bytes.Count(data, []byte("\n")) + 1; line < 1 || line > lines {
				t.Fatalf("Decode(%q) error %q names line %d of %d", data, msg, line, lines)
			}
		}
		// A second Decode of the same document gives the same error.
		c = defaults()
		if err2 := Decode("fuzz.toml", data, &c); err2 == nil || err2.Error() != msg {
			t.Fatalf("Decode(%q) error %q, then %v", data, msg, err2)
		}
	})
}
