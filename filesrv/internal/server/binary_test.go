package server_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"example.com/appliance/shared/nettest"
)

// buildFilesrv builds the filesrv binary into a temporary folder.
func buildFilesrv(t testing.TB) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "filesrv")
	cmd := exec.Command("go", "build", "-o", bin, "../..")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build filesrv: %v\n%s", err, out)
	}
	return bin
}

// writeConfig writes a filesrv config exporting dir as /export with no
// squashing, NFS on listen, no portmapper and no admin listener.
func writeConfig(t testing.TB, path, listen, stateDir, dir string) {
	t.Helper()
	cfg := fmt.Sprintf(`listen = [%q]
portmap = []
state_dir = %q
shutdown_grace = "5s"

[[export]]
path = "/export"
dir = %q
clients = ["127.0.0.0/8", "::1/128"]
squash = "none"

[admin]
listen = ""

[log]
level = "debug"
`, listen, stateDir, dir)
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
}

// proc is a filesrv process.
type proc struct {
	cmd  *exec.Cmd
	log  *nettest.Buffer
	addr string // the NFS address it logged
	done chan struct{}
}

var listenRE = regexp.MustCompile(`msg=listening .*addr=tcp/(\S+) .*programs="nfs`)

// startProc starts bin with args and waits until it is ready.
func startProc(t testing.TB, bin string, args ...string) *proc {
	t.Helper()
	p := &proc{cmd: exec.Command(bin, args...), log: new(nettest.Buffer), done: make(chan struct{})}
	pr, pw := io.Pipe()
	p.cmd.Stderr = pw
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		addr := ""
		for sc.Scan() {
			line := sc.Text()
			fmt.Fprintln(p.log, line)
			if m := listenRE.FindStringSubmatch(line); m != nil && addr == "" {
				addr = m[1]
			}
			if strings.Contains(line, "msg=ready") {
				ready <- addr
			}
		}
		io.Copy(io.Discard, pr)
	}()
	go func() {
		p.cmd.Wait()
		pw.Close()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		<-p.done
		if t.Failed() {
			t.Logf("filesrv log:\n%s", p.log.String())
		}
	})
	select {
	case p.addr = <-ready:
	case <-p.done:
		t.Fatalf("filesrv exited at start:\n%s", p.log.String())
	case <-time.After(30 * time.Second):
		t.Fatalf("filesrv not ready after 30s:\n%s", p.log.String())
	}
	return p
}

func (p *proc) signal(t testing.TB, sig syscall.Signal) {
	t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		t.Fatalf("filesrv still running 30s after %v", sig)
	}
}

// TestKillAfterCommit writes files with nfs-cp (UNSTABLE writes, then
// COMMIT at close), kills filesrv with SIGKILL, starts it again on the
// same state and checks the data with nfs-cat and on disk.
func TestKillAfterCommit(t *testing.T) {
	nfsCp := nettest.NeedTool(t, "nfs-cp")
	nfsCat := nettest.NeedTool(t, "nfs-cat")
	bin := buildFilesrv(t)
	dir := t.TempDir()
	export, state, cfg := filepath.Join(dir, "export"), filepath.Join(dir, "state"), filepath.Join(dir, "filesrv.toml")
	writeConfig(t, cfg, "tcp/127.0.0.1:0", state, export)
	p := startProc(t, bin, "-config", cfg)

	files := map[string][]byte{"/one.bin": randomBytes(t, 3<<20+5), "/two.txt": []byte("two\n")}
	if err := os.Mkdir(filepath.Join(export, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	files["/sub/three.bin"] = randomBytes(t, 70000)
	for name, data := range files {
		src := filepath.Join(t.TempDir(), "src")
		writeFile(t, src, data)
		mustTool(t, nfsCp, src, url(p.addr, name))
	}
	p.signal(t, syscall.SIGKILL)

	p2 := startProc(t, bin, "-config", cfg)
	for name, data := range files {
		if got := mustTool(t, nfsCat, url(p2.addr, name)); !bytes.Equal(got, data) {
			t.Errorf("%s after kill -9: %d bytes differ from the %d written", name, len(got), len(data))
		}
		if got, _ := os.ReadFile(filepath.Join(export, name)); !bytes.Equal(got, data) {
			t.Errorf("%s on disk after kill -9: %d bytes differ from the %d written", name, len(got), len(data))
		}
	}
	p2.signal(t, syscall.SIGTERM)
	if code := p2.cmd.ProcessState.ExitCode(); code != 0 {
		t.Errorf("exit status %d after SIGTERM, want 0", code)
	}
}

// freePort returns a loopback TCP port that was free a moment ago (the
// kernel rig and its restart hook need a fixed one).
func freePort(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	_, port, _ := net.SplitHostPort(l.Addr().String())
	return port
}

// TestKernelClient mounts filesrv with the real Linux NFS client, booted
// under QEMU by the shared kernel-mount rig: file operations, a 64 MiB
// file, a 10,000-file folder, and a restart and a kill -9 of filesrv while
// mounted (through the rig's server-hook.sh).
func TestKernelClient(t *testing.T) {
	if testing.Short() {
		t.Skip("boots a kernel under QEMU for minutes; skipped with -short")
	}
	rig := needRig(t, "kernel-mount/kernel-mount-test.sh")
	hook := needRig(t, "kernel-mount/server-hook.sh")
	bash := nettest.NeedTool(t, "bash")
	bin := buildFilesrv(t)
	dir := t.TempDir()
	port := freePort(t)
	export, state, cfg := filepath.Join(dir, "export"), filepath.Join(dir, "state"), filepath.Join(dir, "filesrv.toml")
	writeConfig(t, cfg, "tcp/127.0.0.1:"+port, state, export)
	srvDir := filepath.Join(dir, "srv")
	env := append(os.Environ(),
		"KMT_SRV_DIR="+srvDir,
		"KMT_SRV_CMD="+bin+" -config "+cfg,
		"KMT_SRV_PORT="+port,
		"KMT_HOOK="+hook,
		"KMT_NFILES=10000",
		"KMT_BIGMB=64",
	)
	runHook := func(action string) error {
		ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, bash, hook, action)
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		if err != nil {
			return fmt.Errorf("server-hook.sh %s: %w\n%s", action, err, out)
		}
		return nil
	}
	if err := runHook("start"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := runHook("stop"); err != nil {
			t.Error(err)
		}
		if t.Failed() {
			if b, err := os.ReadFile(filepath.Join(srvDir, "server.log")); err == nil {
				t.Logf("filesrv log (last 16 KiB):\n%s", tail(b, 16<<10))
			}
		}
	})

	// The rig's own limit (KMT_TIMEOUT) fits in what is left of go test's
	// -timeout, so a slow run fails with the rig's report, not a panic.
	budget := 25 * time.Minute
	if d, ok := t.Deadline(); ok {
		budget = min(budget, time.Until(d)-90*time.Second)
	}
	if budget < 5*time.Minute {
		t.Fatalf("only %v left before go test's -timeout; the rig needs minutes (run with -timeout 30m)", budget)
	}
	ctx, cancel := context.WithTimeout(context.Background(), budget+30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bash, rig, port, "/export")
	cmd.Env = append(env, fmt.Sprintf("KMT_TIMEOUT=%d", int(budget.Seconds())))
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var fails []string
	for _, line := range strings.Split(stdout.String(), "\n") {
		switch {
		case strings.HasPrefix(line, "FAIL "):
			fails = append(fails, line)
			t.Log(line)
		case strings.HasPrefix(line, "PASS "), strings.HasPrefix(line, "SKIP "),
			strings.HasPrefix(line, "RESULT "), strings.HasPrefix(line, "INFO "):
			t.Log(line)
		}
	}
	if err != nil || len(fails) > 0 || !strings.Contains(stdout.String(), "RESULT ") {
		t.Errorf("kernel-mount-test.sh: %v; %d FAIL lines\nstderr (last 8 KiB):\n%s", err, len(fails), tail(stderr.Bytes(), 8<<10))
	}
	// chown and the hook tests must run, not be skipped.
	for _, name := range []string{"chown", "restart_while_mounted", "kill_after_commit"} {
		if strings.Contains(stdout.String(), "SKIP "+name) {
			t.Errorf("%s was skipped", name)
		}
	}
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}
