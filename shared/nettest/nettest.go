// Package nettest holds what the daemons' tests share, in the manner of
// net/http/httptest: finding the external clients (nc, socat, python3,
// CUPS and libnfs tools) that interop tests drive.
package nettest

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"
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

// Eventually waits until cond holds, checking it every few milliseconds,
// for what a test cannot wait for directly (a server's own bookkeeping);
// after 20 s it fails the test, naming what it waited for.
func Eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up after 20s waiting for %s", what)
		}
		<-tick.C
	}
}

// NeedRoot skips a test that needs root (why says for what) on a
// developer's machine, and fails it when CI is set: .ci/run runs as root,
// so a skip there would hide a test that never ran.
func NeedRoot(t testing.TB, why string) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("this test needs root (%s) and CI is set", why)
	}
	t.Skipf("needs root: %s", why)
}

// NeedShared returns the absolute path of rel, a file or folder in the
// ../shared material beside the project (sample documents, test rigs),
// given from the repository's root. Tests name it from their package
// folder, so NeedShared walks up to find it. When it is missing the test
// is skipped on a developer's machine but fails when CI is set.
func NeedShared(t testing.TB, rel string) string {
	t.Helper()
	dir, err := os.Getwd()
	for err == nil {
		if _, serr := os.Stat(filepath.Join(dir, "go.mod")); serr == nil {
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			err = errors.New("no go.mod above the test's folder")
		}
		dir = parent
	}
	p := filepath.Join(filepath.Dir(dir), "shared", rel)
	if err == nil {
		_, err = os.Stat(p)
	}
	if err == nil {
		return p
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("../shared/%s is needed by this test and CI is set: %v (the shared material sits beside the repository)", rel, err)
	}
	t.Skipf("../shared/%s not found (%v); this test fails instead of skipping when CI is set", rel, err)
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

// Dial connects to addr for a test, with a 10s deadline so a broken server
// fails the test instead of hanging it; the connection closes at cleanup.
func Dial(t testing.TB, network, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial(network, addr)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	t.Cleanup(func() { c.Close() })
	return c
}

// RoundTrip sends msg on c and fails the test unless one read brings back want.
func RoundTrip(t testing.TB, c net.Conn, msg, want string) {
	t.Helper()
	if _, err := io.WriteString(c, msg); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, len(want)+100)
	n, err := c.Read(buf)
	if err != nil {
		t.Fatalf("reply to %q: %v", msg, err)
	}
	if got := string(buf[:n]); got != want {
		t.Fatalf("reply %q, want %q", got, want)
	}
}

// Get fetches url with c and returns the status, body and header.
func Get(t testing.TB, c *http.Client, url string) (int, string, http.Header) {
	t.Helper()
	res, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res.StatusCode, string(body), res.Header
}

// Service is the part of a daemon's service that StartService drives
// (daemon.Service).
type Service interface {
	Start() error
	Shutdown(ctx context.Context) error
	Failed() <-chan error
}

// StartService starts svc and, at the end of the test, shuts it down and
// checks that it neither failed nor overran the shutdown; if the test
// failed it prints log, the service's log.
func StartService(t testing.TB, svc Service, log *Buffer) {
	t.Helper()
	if err := svc.Start(); err != nil {
		t.Fatalf("Start: %v\nlog:\n%s", err, log.String())
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := svc.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown at cleanup: %v", err)
		}
		select {
		case err := <-svc.Failed():
			t.Errorf("serving failed: %v", err)
		default:
		}
		if t.Failed() {
			t.Logf("server log:\n%s", log.String())
		}
	})
}
