package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"example.com/appliance/shared/benchkit"
)

// server is one NFSv3 server under test, reachable through libnfs URLs.
type server struct {
	name   string
	base   string // nfs://127.0.0.1/export
	query  string // ?nfsport=P&mountport=Q&version=3
	pid    int
	proc   *benchkit.Proc // when this tool started the server itself
	stopFn func() error   // how to stop it otherwise
	dir    string         // exported folder
}

// url returns the libnfs URL of rel under the export root ("" for the root).
func (s *server) url(rel string) string {
	if rel == "" {
		return s.base + s.query
	}
	return s.base + "/" + strings.TrimPrefix(rel, "/") + s.query
}

// alive returns an error when the server process is gone.
func (s *server) alive() error {
	if s.proc != nil {
		return s.proc.Alive()
	}
	if _, err := os.Stat(fmt.Sprintf("/proc/%d", s.pid)); err != nil {
		return fmt.Errorf("%s (pid %d) is gone", s.name, s.pid)
	}
	return nil
}

// cpu returns the server's CPU time so far.
func (s *server) cpu() (benchkit.CPU, error) {
	c, err := benchkit.CPUTimes(s.pid)
	if err != nil {
		return benchkit.CPU{}, fmt.Errorf("%s: %w", s.name, err)
	}
	return c, nil
}

// stop stops the server.
func (s *server) stop() {
	if s.proc != nil {
		s.proc.Stop()
		return
	}
	if s.stopFn != nil {
		if err := s.stopFn(); err != nil {
			logf("warning: stop %s: %v", s.name, err)
		}
	}
}

// startGanesha starts nfs-ganesha with the rig's ganesha-up.sh, exporting
// a fresh folder under dir.
func startGanesha(ctx context.Context, rig, dir string) (*server, error) {
	run, export := filepath.Join(dir, "run"), filepath.Join(dir, "export")
	var lastErr error
	for range 3 {
		nfsPort, err := benchkit.FreePort()
		if err != nil {
			return nil, err
		}
		mountPort, err := benchkit.FreePort()
		if err != nil {
			return nil, err
		}
		if nfsPort == mountPort {
			continue
		}
		cmd := exec.CommandContext(ctx, "bash", filepath.Join(rig, "ganesha-up.sh"), run, export, strconv.Itoa(nfsPort), strconv.Itoa(mountPort))
		var out, errOut bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errOut
		if err := cmd.Run(); err != nil {
			lastErr = fmt.Errorf("ganesha-up.sh: %w: %s", err, tail(errOut.String(), 2000))
			continue
		}
		env, err := readEnv(filepath.Join(run, "env"))
		if err != nil {
			return nil, err
		}
		pid, err := strconv.Atoi(env["GANESHA_PID"])
		if err != nil {
			return nil, fmt.Errorf("ganesha-up.sh: bad GANESHA_PID %q in %s/env", env["GANESHA_PID"], run)
		}
		s := &server{name: "nfs-ganesha", base: env["URL_BASE"], query: env["URL_QUERY"], pid: pid, dir: export}
		s.stopFn = func() error {
			out, err := exec.Command("bash", filepath.Join(rig, "ganesha-down.sh"), run).CombinedOutput()
			if err != nil {
				return fmt.Errorf("ganesha-down.sh: %w: %s", err, tail(string(out), 1000))
			}
			return nil
		}
		return s, nil
	}
	return nil, fmt.Errorf("start nfs-ganesha: %w", lastErr)
}

// readEnv reads the KEY=VALUE lines ganesha-up.sh writes.
func readEnv(name string) (map[string]string, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, fmt.Errorf("read ganesha env: %w", err)
	}
	defer f.Close()
	m := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), "=")
		if ok {
			m[k] = strings.Trim(v, "'")
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read ganesha env: %w", err)
	}
	return m, nil
}

// filesrvExport is the path clients mount from filesrv.
const filesrvExport = "/export"

// startFilesrv starts the filesrv binary exporting a fresh folder under
// dir read-write to loopback, root not squashed, everything else (the
// durability of writes included) at its default.
func startFilesrv(ctx context.Context, bin, dir string) (*server, error) {
	if _, err := exec.LookPath(bin); err != nil {
		return nil, fmt.Errorf("find filesrv: %w", err)
	}
	export, state := filepath.Join(dir, "export"), filepath.Join(dir, "state")
	for _, d := range []string{export, state} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("filesrv folders: %w", err)
		}
	}
	var errs []string
	for range 3 {
		var ports [3]int
		for i := range ports {
			p, err := benchkit.FreePort()
			if err != nil {
				return nil, err
			}
			ports[i] = p
		}
		if ports[0] == ports[1] || ports[1] == ports[2] || ports[0] == ports[2] {
			continue
		}
		conf := filepath.Join(dir, "filesrv.toml")
		if err := os.WriteFile(conf, []byte(filesrvConfig(ports, state, export)), 0o644); err != nil {
			return nil, fmt.Errorf("filesrv config: %w", err)
		}
		p, err := benchkit.StartProc(logf, "filesrv", nil, bin, "-config", conf)
		if err != nil {
			return nil, err
		}
		s := &server{name: "filesrv", base: "nfs://127.0.0.1" + filesrvExport, pid: p.Pid(), proc: p, dir: export,
			query: fmt.Sprintf("?nfsport=%d&mountport=%d&version=3", ports[0], ports[0])}
		if err := waitNFS(ctx, s, p, fmt.Sprintf("127.0.0.1:%d", ports[0])); err != nil {
			errs = append(errs, err.Error())
			p.Stop()
			continue
		}
		return s, nil
	}
	return nil, fmt.Errorf("start filesrv: %s", strings.Join(errs, "; "))
}

// filesrvConfig is the config the benchmark gives filesrv: NFS+MOUNT,
// portmapper and admin on free loopback ports, quiet logs, one export.
func filesrvConfig(ports [3]int, state, export string) string {
	return fmt.Sprintf(`# written by nfsbench
listen = ["tcp/127.0.0.1:%d"]
portmap = ["tcp/127.0.0.1:%d"]
state_dir = %q

[log]
level = "warn"

[admin]
listen = "tcp/127.0.0.1:%d"

[[export]]
path = %q
dir = %q
clients = ["127.0.0.0/8"]
squash = "none"
`, ports[0], ports[1], state, ports[2], filesrvExport, export)
}

// waitNFS waits until the server accepts connections and nfs-ls of the
// export root works.
func waitNFS(ctx context.Context, s *server, p *benchkit.Proc, addr string) error {
	if err := benchkit.WaitTCP(p, addr, readyTimeout); err != nil {
		return err
	}
	var last string
	deadline := time.Now().Add(readyTimeout)
	for time.Now().Before(deadline) {
		if err := p.Alive(); err != nil {
			return err
		}
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		out, err := exec.CommandContext(cctx, "nfs-ls", s.url("")).CombinedOutput()
		cancel()
		if err == nil {
			return nil
		}
		last = fmt.Sprintf("%v: %s", err, strings.TrimSpace(string(out)))
		time.Sleep(200 * time.Millisecond)
	}
	return fmt.Errorf("%s: nfs-ls %s never worked: %s%s", s.name, s.url(""), last, p.Logs.Excerpt())
}

const readyTimeout = 20 * time.Second

// tail returns the last n bytes of s.
func tail(s string, n int) string {
	s = strings.TrimSpace(s)
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}
