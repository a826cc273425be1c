package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os/exec"
	"strconv"
	"syscall"
	"time"

	"example.com/appliance/shared/benchkit"
)

const (
	startAttempts = 3                // fresh ports tried before giving up
	readyTimeout  = 15 * time.Second // for a started server to answer
	stopTimeout   = 10 * time.Second // from SIGTERM to SIGKILL
)

// server is one timestamp server process under test.
type server struct {
	name string // as shown in the report
	addr string // 127.0.0.1:port, for TCP and UDP alike
	cmd  *exec.Cmd
	logs *benchkit.TailBuffer
	done chan struct{} // closed when the process has exited
	err  error         // from Wait, valid once done is closed

	stdin io.Closer // held open for the baseline, which exits on EOF
}

// command makes the command line of a server listening on addr.
type command func(addr string) (path string, args []string)

// tsservCommand starts the real tsserv binary.
func tsservCommand(bin string) command {
	return func(addr string) (string, []string) {
		return bin, []string{
			"-listen", "tcp/" + addr,
			"-listen", "udp/" + addr,
			"-admin", "none",
			"-log-level", "warn",
			"-max-conns", "20000",
		}
	}
}

// baselineCommand re-executes this program as the baseline server.
func baselineCommand(self string, lifetime time.Duration) command {
	return func(addr string) (string, []string) {
		return self, []string{"-serve-baseline", addr, "-serve-lifetime", lifetime.String()}
	}
}

// startServer starts a server on a free loopback port and waits until it
// answers on TCP and UDP. A port taken in between is retried with another.
func startServer(ctx context.Context, name string, mk command) (*server, error) {
	var errs []error
	for range startAttempts {
		port, err := freePort()
		if err != nil {
			return nil, fmt.Errorf("start %s: %w", name, err)
		}
		s, err := launch(ctx, name, net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), mk)
		if err == nil {
			return s, nil
		}
		errs = append(errs, err)
		if ctx.Err() != nil {
			break
		}
	}
	return nil, fmt.Errorf("start %s: %w", name, errors.Join(errs...))
}

func launch(ctx context.Context, name, addr string, mk command) (*server, error) {
	path, args := mk(addr)
	s := &server{name: name, addr: addr, logs: &benchkit.TailBuffer{Max: 16 << 10}, done: make(chan struct{})}
	s.cmd = exec.Command(path, args...)
	s.cmd.Stdout = s.logs
	s.cmd.Stderr = s.logs
	s.cmd.SysProcAttr = benchkit.ChildAttr() // on other systems the baseline still exits when its stdin closes
	stdin, err := s.cmd.StdinPipe()
	if err != nil {
		return nil, fmt.Errorf("stdin pipe: %w", err)
	}
	s.stdin = stdin
	if err := s.cmd.Start(); err != nil {
		stdin.Close()
		return nil, fmt.Errorf("run %s: %w", path, err)
	}
	go func() {
		s.err = s.cmd.Wait()
		close(s.done)
	}()
	if err := s.waitReady(ctx); err != nil {
		s.stop()
		return nil, fmt.Errorf("%s on %s: %w%s", path, addr, err, s.logs.Excerpt())
	}
	return s, nil
}

// waitReady polls until the server accepts a TCP connection and answers a
// UDP datagram, the process exits, ctx ends or readyTimeout passes.
func (s *server) waitReady(ctx context.Context) error {
	deadline := time.Now().Add(readyTimeout)
	tcpUp := false
	for attempt := 0; time.Now().Before(deadline); attempt++ {
		select {
		case <-s.done:
			return fmt.Errorf("exited before it was ready: %w", s.exitErr())
		case <-ctx.Done():
			return ctx.Err()
		default:
		}
		if !tcpUp {
			if c, err := net.DialTimeout("tcp", s.addr, 200*time.Millisecond); err == nil {
				c.Close()
				tcpUp = true
			}
		}
		if tcpUp && udpAnswers(s.addr) {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	if tcpUp {
		return fmt.Errorf("no UDP answer within %v", readyTimeout)
	}
	return fmt.Errorf("no TCP connection within %v", readyTimeout)
}

// udpAnswers sends one datagram to addr and reports whether a valid reply
// came back within 200ms.
func udpAnswers(addr string) bool {
	c, err := net.Dial("udp", addr)
	if err != nil {
		return false
	}
	defer c.Close()
	msg := []byte("tsbench ready?")
	if _, err := c.Write(msg); err != nil {
		return false
	}
	_ = c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	buf := make([]byte, 512)
	n, err := c.Read(buf)
	return err == nil && checkReply(buf[:n], msg)
}

// stop sends SIGTERM, waits for the exit, and kills the process if it has
// not exited within stopTimeout.
func (s *server) stop() {
	if s.stdin != nil {
		s.stdin.Close()
	}
	select {
	case <-s.done:
		return
	default:
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
		if s.err != nil {
			logf("warning: %s exited with %v after SIGTERM%s", s.name, s.err, s.logs.Excerpt())
		}
	case <-time.After(stopTimeout):
		logf("warning: %s still running %v after SIGTERM: killing it", s.name, stopTimeout)
		_ = s.cmd.Process.Kill()
		<-s.done
	}
}

// alive returns an error when the process has exited.
func (s *server) alive() error {
	select {
	case <-s.done:
		return fmt.Errorf("%s exited: %w%s", s.name, s.exitErr(), s.logs.Excerpt())
	default:
		return nil
	}
}

// exitErr describes how the process exited; valid once done is closed.
func (s *server) exitErr() error {
	if s.err == nil {
		return errors.New("exit status 0")
	}
	return s.err
}

// cpuTicks returns the user plus system CPU time the server has used, in
// clock ticks (1/benchkit.ClockTicks s), from /proc/<pid>/stat.
func (s *server) cpuTicks() (uint64, error) {
	c, err := benchkit.CPUTimes(s.cmd.Process.Pid)
	if err != nil {
		return 0, fmt.Errorf("cpu of %s: %w", s.name, err)
	}
	return c.Self, nil
}

// rssKB returns the server's resident set size in KiB, from /proc/<pid>/status.
func (s *server) rssKB() (uint64, error) {
	kb, err := benchkit.StatusKB(s.cmd.Process.Pid, "VmRSS")
	if err != nil {
		return 0, fmt.Errorf("rss of %s: %w", s.name, err)
	}
	return kb, nil
}

// freePort finds a loopback port that is free for both TCP and UDP.
func freePort() (int, error) {
	var lastErr error
	for range 20 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, fmt.Errorf("free port: %w", err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		pc, err := net.ListenPacket("udp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err != nil {
			lastErr = err
			continue
		}
		pc.Close()
		return port, nil
	}
	return 0, fmt.Errorf("free port: none free for TCP and UDP: %w", lastErr)
}
