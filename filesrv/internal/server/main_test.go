package server_test

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"example.com/appliance/filesrv/internal/server"
	"example.com/appliance/shared/daemon"
	"example.com/appliance/shared/nettest"
)

func TestMainExitStatus(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.toml")
	os.WriteFile(bad, []byte("[[export]]\npath = \"relative\"\ndir = \"x\"\nclients = [\"127.0.0.1\"]\n"), 0o644)
	unknown := filepath.Join(dir, "unknown.toml")
	os.WriteFile(unknown, []byte("nfs_port = 2049\n"), 0o644)
	tests := []struct {
		name string
		args []string
		want int
		msg  string
	}{
		{"help", []string{"-help"}, daemon.ExitOK, "Usage: filesrv"},
		{"argument", []string{"extra"}, daemon.ExitUsage, `unexpected argument "extra"`},
		{"udp listen", []string{"-listen", "udp/127.0.0.1:0"}, daemon.ExitUsage, "NFS is served over tcp/ only"},
		{"small max-io", []string{"-max-io", "100"}, daemon.ExitUsage, "max_io"},
		{"bad export flag", []string{"-export", "export"}, daemon.ExitUsage, "export.path"},
		{"bad export", []string{"-config", bad}, daemon.ExitConfig, "export.path"},
		{"unknown key", []string{"-config", unknown}, daemon.ExitConfig, "nfs_port"},
		{"missing config", []string{"-config", filepath.Join(dir, "none.toml")}, daemon.ExitConfig, "none.toml"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stderr nettest.Buffer
			if got := server.Main(tt.args, &stderr, nil); got != tt.want {
				t.Errorf("exit status %d, want %d\n%s", got, tt.want, stderr.String())
			}
			if !strings.Contains(stderr.String(), tt.msg) {
				t.Errorf("stderr lacks %q:\n%s", tt.msg, stderr.String())
			}
		})
	}
}

// TestMainRunsAndStops runs Main with flags only, then stops it with SIGTERM.
func TestMainRunsAndStops(t *testing.T) {
	dir := t.TempDir()
	sig := make(chan os.Signal, 1)
	var stderr nettest.Buffer
	done := make(chan int, 1)
	go func() {
		done <- server.Main([]string{"-listen", "tcp/127.0.0.1:0", "-portmap", "none", "-admin", "none",
			"-state-dir", filepath.Join(dir, "state"), "-export", "/data=" + filepath.Join(dir, "data")}, &stderr, sig)
	}()
	nettest.Eventually(t, "ready", func() bool { return strings.Contains(stderr.String(), "msg=ready") })
	if _, err := os.Stat(filepath.Join(dir, "data")); err != nil {
		t.Errorf("export folder not created: %v", err)
	}
	sig <- syscall.SIGTERM
	if code := <-done; code != daemon.ExitOK {
		t.Errorf("exit status %d, want 0\n%s", code, stderr.String())
	}
}
