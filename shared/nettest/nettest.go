// Package nettest holds what the daemons' tests share, in the manner of
// net/http/httptest: finding the external clients (nc, socat, python3,
// CUPS and libnfs tools) that interop tests drive.
package nettest

import (
	"bytes"
	"os"
	"os/exec"
	"sync"
	"testing"
)

// NeedTool returns the path of an external program a test drives. When it
// is missing the test is skipped on a developer's machine but fails when
// CI is set, where a skipped interop test would hide a missing install step.
func NeedTool(t testing.TB, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err == nil {
		return path
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("%s is needed by this test and CI is set: %v (install it in .ci/run)", name, err)
	}
	t.Skipf("%s not found (%v); this test fails instead of skipping when CI is set", name, err)
	return ""
}

// Buffer is a bytes.Buffer that a logger may write to from any goroutine
// while a test reads it.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write appends p.
func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

// String returns what has been written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
