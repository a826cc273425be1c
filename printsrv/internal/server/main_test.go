package server_test

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"example.com/appliance/printsrv/internal/server"
	"example.com/appliance/shared/daemon"
	"example.com/appliance/shared/nettest"
)

// TestMainExitCodes checks what Main returns for each kind of bad start,
// and that a good one runs until its signal.
func TestMainExitCodes(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.toml")
	os.WriteFile(bad, []byte("[[printer]]\nname = \"x\"\nmedia = [\"a4\"]\n"), 0o644)
	unknown := filepath.Join(dir, "unknown.toml")
	os.WriteFile(unknown, []byte("colour = true\n"), 0o644)
	tests := []struct {
		name   string
		args   []string
		code   int
		stderr string
	}{
		{"help", []string{"-help"}, daemon.ExitOK, "Usage: printsrv"},
		{"bad flag", []string{"-nope"}, daemon.ExitUsage, "flag provided but not defined"},
		{"argument", []string{"extra"}, daemon.ExitUsage, "unexpected argument"},
		{"bad media", []string{"-config", bad}, daemon.ExitConfig, "printer[0].media"},
		{"unknown key", []string{"-config", unknown}, daemon.ExitConfig, "colour"},
		{"bad listen flag", []string{"-listen", "udp/:631"}, daemon.ExitUsage, "listen"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stderr bytes.Buffer
			if code := server.Main(tt.args, &stderr, nil); code != tt.code {
				t.Fatalf("exit %d, want %d; stderr:\n%s", code, tt.code, stderr.String())
			}
			if !strings.Contains(stderr.String(), tt.stderr) {
				t.Errorf("stderr does not mention %q:\n%s", tt.stderr, stderr.String())
			}
		})
	}

	// A good start serves until SIGTERM, then exits 0.
	sig := make(chan os.Signal, 1)
	stderr := new(nettest.Buffer)
	done := make(chan int, 1)
	go func() {
		done <- server.Main([]string{"-listen", "tcp/127.0.0.1:0", "-admin", "none", "-state-dir", filepath.Join(dir, "state")}, stderr, sig)
	}()
	nettest.Eventually(t, "printsrv to be ready", func() bool { return strings.Contains(stderr.String(), "msg=ready") })
	sig <- syscall.SIGTERM
	if code := <-done; code != daemon.ExitOK {
		t.Fatalf("exit %d after SIGTERM; stderr:\n%s", code, stderr.String())
	}
}
