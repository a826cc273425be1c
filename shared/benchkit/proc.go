package benchkit

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// ClockTicks is USER_HZ, the unit of the CPU times in /proc/<pid>/stat; it
// is 100 on every Linux.
const ClockTicks = 100

const stopTimeout = 10 * time.Second // from SIGTERM to SIGKILL

// Proc is one process a tool started: a server under test or a helper.
type Proc struct {
	Name string
	Logs *TailBuffer // the tail of its standard output and error

	cmd  *exec.Cmd
	logf func(format string, args ...any)
	done chan struct{} // closed when the process has exited
	err  error         // from Wait, valid once done is closed
}

// StartProc starts path with args, its output kept in a tail buffer, and
// env added to this program's environment when not nil. The process is
// killed if this program dies (on Linux). Warnings go to logf.
func StartProc(logf func(format string, args ...any), name string, env []string, path string, args ...string) (*Proc, error) {
	p := &Proc{Name: name, Logs: &TailBuffer{Max: 16 << 10}, logf: logf, done: make(chan struct{})}
	p.cmd = exec.Command(path, args...)
	p.cmd.Stdout = p.Logs
	p.cmd.Stderr = p.Logs
	if env != nil {
		p.cmd.Env = append(os.Environ(), env...)
	}
	p.cmd.SysProcAttr = ChildAttr()
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// Pid returns the process id.
func (p *Proc) Pid() int { return p.cmd.Process.Pid }

// Alive returns an error, with the end of the process's output, when the
// process has exited.
func (p *Proc) Alive() error {
	select {
	case <-p.done:
		return fmt.Errorf("%s exited: %w%s", p.Name, p.exitErr(), p.Logs.Excerpt())
	default:
		return nil
	}
}

// exitErr describes how the process exited; valid once done is closed.
func (p *Proc) exitErr() error {
	if p.err == nil {
		return errors.New("exit status 0")
	}
	return p.err
}

// Stop sends SIGTERM, waits, and kills the process after ten seconds.
func (p *Proc) Stop() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(stopTimeout):
		p.logf("warning: %s still running %v after SIGTERM: killing it", p.Name, stopTimeout)
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// CPU is a process's CPU time in clock ticks (1/ClockTicks s).
type CPU struct {
	Self     uint64 // utime + stime
	Children uint64 // cutime + cstime: exited children it waited for
}

// Sub returns c - o.
func (c CPU) Sub(o CPU) CPU { return CPU{c.Self - o.Self, c.Children - o.Children} }

// CPUTimes reads the CPU time of pid from /proc/<pid>/stat.
func CPUTimes(pid int) (CPU, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return CPU{}, fmt.Errorf("read cpu time: %w", err)
	}
	return ParseStatCPU(b)
}

// ParseStatCPU returns utime+stime and cutime+cstime from the text of
// /proc/<pid>/stat.
func ParseStatCPU(b []byte) (CPU, error) {
	// The command name (field 2) may hold anything: count from the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return CPU{}, errors.New("parse stat: no command name")
	}
	f := strings.Fields(string(b[i+1:]))
	const utime = 14 - 3 // then stime, cutime, cstime
	if len(f) < utime+4 {
		return CPU{}, fmt.Errorf("parse stat: %d fields", len(f)+2)
	}
	var v [4]uint64
	for k := range v {
		n, err := strconv.ParseUint(f[utime+k], 10, 64)
		if err != nil {
			return CPU{}, fmt.Errorf("parse stat field %d: %w", utime+k+3, err)
		}
		v[k] = n
	}
	return CPU{Self: v[0] + v[1], Children: v[2] + v[3]}, nil
}

// StatusKB returns a value of pid in KiB, such as "VmRSS" or "VmHWM", from
// /proc/<pid>/status.
func StatusKB(pid int, key string) (uint64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, fmt.Errorf("read memory: %w", err)
	}
	return ParseStatusKB(b, key)
}

// ParseStatusKB returns the value of key (e.g. "VmHWM") in KiB from the
// text of /proc/<pid>/status.
func ParseStatusKB(b []byte, key string) (uint64, error) {
	for line := range strings.Lines(string(b)) {
		rest, ok := strings.CutPrefix(line, key+":")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) != 2 || f[1] != "kB" {
			return 0, fmt.Errorf("parse status: bad %s line %q", key, strings.TrimSpace(line))
		}
		v, err := strconv.ParseUint(f[0], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("parse status %s: %w", key, err)
		}
		return v, nil
	}
	return 0, fmt.Errorf("parse status: no %s line", key)
}

// FreePort returns a loopback TCP port that was free a moment ago.
func FreePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// WaitTCP polls addr until it accepts a connection, p exits or timeout passes.
func WaitTCP(p *Proc, addr string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if err := p.Alive(); err != nil {
			return err
		}
		if c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond); err == nil {
			c.Close()
			return nil
		}
		time.Sleep(30 * time.Millisecond)
	}
	return fmt.Errorf("%s: nothing listening on %s after %v%s", p.Name, addr, timeout, p.Logs.Excerpt())
}

// TailBuffer keeps the last Max bytes written to it.
type TailBuffer struct {
	Max int

	mu  sync.Mutex
	buf []byte
}

// Write appends p, dropping the oldest bytes beyond Max.
func (t *TailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if over := len(t.buf) - t.Max; over > 0 {
		t.buf = append(t.buf[:0], t.buf[over:]...)
	}
	return len(p), nil
}

// Excerpt returns the kept output, its last 3000 bytes at most, indented,
// to end an error message with; "" when there is none.
func (t *TailBuffer) Excerpt() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := strings.TrimSpace(string(t.buf))
	if s == "" {
		return ""
	}
	if len(s) > 3000 {
		s = "..." + s[len(s)-3000:]
	}
	return "; its output ends:\n\t" + strings.ReplaceAll(s, "\n", "\n\t")
}
