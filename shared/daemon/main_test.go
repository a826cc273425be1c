package daemon

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

type graceful struct{ *fakeService }

func (graceful) Grace() time.Duration { return time.Second }

// TestMainExitStatus drives Main as each daemon's main does.
func TestMainExitStatus(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "bad.toml")
	if err := os.WriteFile(bad, []byte("nme = \"x\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		args   []string
		want   int
		stderr string
	}{
		{"help", []string{"-help"}, ExitOK, "Usage: testd"},
		{"unknown flag", []string{"-nope"}, ExitUsage, "flag provided but not defined"},
		{"argument", []string{"extra"}, ExitUsage, `testd: unexpected argument "extra"`},
		{"bad config", []string{"-config", bad}, ExitConfig, "nme"},
		{"runs until a signal", []string{"-admin", "none"}, ExitOK, "msg=ready"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stderr strings.Builder
			sig := make(chan os.Signal, 1)
			svc := &fakeService{failed: make(chan error)}
			cmd := Command[flagsConfig]{
				Name:     "testd",
				Usage:    "Usage: testd [flags]\n",
				Examples: "  testd -config x.toml\n",
				Flags: func(fs *flag.FlagSet) *Flags[flagsConfig] {
					return NewFlags(fs, flagsDefaults, func(c *flagsConfig) *Common { return &c.Common })
				},
				New: func(cfg flagsConfig, base *Base, reload func() (flagsConfig, error)) GracefulService {
					// Started means ready: stop it at once.
					sig <- syscall.SIGTERM
					return graceful{svc}
				},
			}
			if got := Main(cmd, tc.args, &stderr, sig); got != tc.want {
				t.Errorf("exit status %d, want %d; stderr:\n%s", got, tc.want, stderr.String())
			}
			if !strings.Contains(stderr.String(), tc.stderr) {
				t.Errorf("stderr lacks %q:\n%s", tc.stderr, stderr.String())
			}
		})
	}
}
