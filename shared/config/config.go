// Package config loads a daemon's TOML config file strictly, on top of the
// daemon's built-in defaults.
//
// Loading goes: the caller fills its struct with defaults, Load decodes the
// file over it (an unknown key, a value of the wrong type or a bad duration
// is an error naming the key and its line), then calls the struct's
// Validate, whose FieldError is located in the file the same way. Flags are
// applied by the caller afterwards.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"
	"time"

	toml "github.com/pelletier/go-toml/v2"
	"github.com/pelletier/go-toml/v2/unstable"
)

// MaxFileBytes bounds the size of a config file.
const MaxFileBytes = 1 << 20

// Validator is implemented by config structs that check their values.
type Validator interface {
	Validate() error
}

// FieldError is a bad value, named by its dotted key (e.g. limits.max_conns).
type FieldError struct {
	Key string
	Err error
}

// Error says which key is wrong and why.
func (e *FieldError) Error() string { return e.Key + ": " + e.Err.Error() }

// Unwrap returns the reason.
func (e *FieldError) Unwrap() error { return e.Err }

// Errorf returns a FieldError for key.
func Errorf(key, format string, args ...any) error {
	return &FieldError{Key: key, Err: fmt.Errorf(format, args...)}
}

// Load reads the file at path into dst, which holds the defaults. When dst
// is a Validator, it is validated too, also when path is empty.
func Load(path string, dst any) error {
	if path == "" {
		return validate("defaults", nil, dst)
	}
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("read config: %w", err)
	}
	defer f.Close()
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(io.LimitReader(f, MaxFileBytes+1)); err != nil {
		return fmt.Errorf("read config %s: %w", path, err)
	}
	if buf.Len() > MaxFileBytes {
		return fmt.Errorf("config %s: larger than %d bytes", path, MaxFileBytes)
	}
	return Decode(path, buf.Bytes(), dst)
}

// Decode is Load for a document already in memory; name labels errors.
func Decode(name string, data []byte, dst any) error {
	d := toml.NewDecoder(bytes.NewReader(data))
	d.DisallowUnknownFields()
	if err := d.Decode(dst); err != nil {
		return decodeError(name, data, err)
	}
	return validate(name, data, dst)
}

func validate(name string, data []byte, dst any) error {
	v, ok := dst.(Validator)
	if !ok {
		return nil
	}
	err := v.Validate()
	if err == nil {
		return nil
	}
	var fe *FieldError
	if errors.As(err, &fe) {
		if line := keyLine(data, fe.Key); line > 0 {
			return fmt.Errorf("config %s:%d: %w", name, line, err)
		}
	}
	return fmt.Errorf("config %s: %w", name, err)
}

var typeMismatch = regexp.MustCompile(`^toml: cannot decode TOML (\w+) into .* of type (\S+)$`)

func decodeError(name string, data []byte, err error) error {
	var de *toml.DecodeError
	if !errors.As(err, &de) {
		var sm *toml.StrictMissingError
		if errors.As(err, &sm) && len(sm.Errors) > 0 {
			de = &sm.Errors[0]
		} else {
			var bd *badDurationError
			if errors.As(err, &bd) {
				if key, line := bareValue(data, bd.text); line > 0 {
					return fmt.Errorf("config %s:%d: %s: %w", name, line, key, err)
				}
			}
			return fmt.Errorf("config %s: %w", name, err)
		}
	}
	row, _ := de.Position()
	msg := strings.TrimPrefix(de.Error(), "toml: ")
	if m := typeMismatch.FindStringSubmatch(de.Error()); m != nil {
		msg = fmt.Sprintf("wrong type: got %s, want %s", article(m[1]), goTypeName(m[2]))
	}
	if strings.HasPrefix(msg, "strict mode") || msg == "unknown field" || msg == "missing table" {
		msg = "unknown key"
	}
	if key := strings.Join(de.Key(), "."); key != "" {
		return fmt.Errorf("config %s:%d: %s: %s", name, row, key, msg)
	}
	return fmt.Errorf("config %s:%d: %s", name, row, msg)
}

func article(tomlKind string) string {
	switch tomlKind {
	case "integer", "inline", "array":
		return "an " + tomlKind
	}
	return "a " + tomlKind
}

// goTypeName says in TOML's words what a Go type takes.
func goTypeName(t string) string {
	switch {
	case strings.HasSuffix(t, "config.Duration"):
		return `a duration string such as "5s"`
	case strings.HasPrefix(t, "[]"):
		return "an array"
	case strings.HasPrefix(t, "int"), strings.HasPrefix(t, "uint"):
		return "an integer"
	case strings.HasPrefix(t, "float"):
		return "a number"
	case t == "string":
		return "a string"
	case t == "bool":
		return "true or false"
	case strings.HasPrefix(t, "struct"), strings.Contains(t, "."):
		return "a table"
	}
	return t
}

// keyLine returns the line on which a dotted key is set in data, or 0.
func keyLine(data []byte, key string) int {
	line := 0
	walkKeys(data, func(k string, l int, v *unstable.Node) bool {
		// A key set to an inline table holds the keys below it; a table header does not.
		if k == key || v != nil && strings.HasPrefix(key, k+".") {
			line = l
			return false
		}
		return true
	})
	return line
}

// bareValue finds the first key whose value is written bare (a number,
// a boolean, a date) as text: go-toml reports a TextUnmarshaler's error for
// such a value without saying where it is.
func bareValue(data []byte, text string) (key string, line int) {
	walkKeys(data, func(k string, l int, v *unstable.Node) bool {
		if v != nil && v.Kind != unstable.String && string(v.Data) == text {
			key, line = k, l
			return false
		}
		return true
	})
	return key, line
}

// walkKeys calls fn with each table header and key in data, dotted in
// full, its line and its value (nil for a header), until fn returns false.
func walkKeys(data []byte, fn func(key string, line int, value *unstable.Node) bool) {
	var p unstable.Parser
	p.Reset(data)
	var table []string
	for p.NextExpression() {
		e := p.Expression()
		var parts []string
		first := unstable.Range{}
		it := e.Key()
		for it.Next() {
			if len(parts) == 0 {
				first = it.Node().Raw
			}
			parts = append(parts, string(it.Node().Data))
		}
		line := p.Shape(first).Start.Line
		switch e.Kind {
		case unstable.Table, unstable.ArrayTable:
			table = parts
			if !fn(strings.Join(parts, "."), line, nil) {
				return
			}
		case unstable.KeyValue:
			full := strings.Join(append(append([]string{}, table...), parts...), ".")
			if !fn(full, line, e.Value()) {
				return
			}
		}
	}
}

// Duration is a time.Duration written as a string such as "5s" or "1m30s".
// It is a struct, not a time.Duration, so that a bare number in a config
// file is a type error rather than a count of nanoseconds.
type Duration struct{ time.Duration }

// NewDuration returns d as a Duration.
func NewDuration(d time.Duration) Duration { return Duration{d} }

// UnmarshalText parses a duration string.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return &badDurationError{text: string(b)}
	}
	if v < 0 {
		return fmt.Errorf("negative duration %q", b)
	}
	d.Duration = v
	return nil
}

type badDurationError struct{ text string }

func (e *badDurationError) Error() string {
	return fmt.Sprintf("bad duration %q (want a string such as \"5s\" or \"1m30s\")", e.text)
}

// MarshalText writes the duration as a string.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.Duration.String()), nil }

// String writes the duration as a string.
func (d Duration) String() string { return d.Duration.String() }

// Set parses a duration string, so a Duration can be a flag.Value.
func (d *Duration) Set(s string) error { return d.UnmarshalText([]byte(s)) }
