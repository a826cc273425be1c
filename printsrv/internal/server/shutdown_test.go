package server_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/OpenPrinting/goipp"

	"example.com/appliance/shared/nettest"
)

// TestShutdownInFlight: a Print-Job whose document is still arriving when
// Shutdown begins is finished and answered; Shutdown then returns.
func TestShutdownInFlight(t *testing.T) {
	ts := startService(t)
	msg, _ := ippReq(goipp.OpPrintJob, ts.uri("/printers/office"), mimeAttr("text/plain")).EncodeBytes()
	pr, pw := io.Pipe()
	type result struct {
		resp *goipp.Message
		err  error
	}
	done := make(chan result, 1)
	go func() {
		res, err := http.Post("http://"+ts.Addr+"/printers/office", "application/ipp", pr)
		if err != nil {
			done <- result{nil, err}
			return
		}
		defer res.Body.Close()
		var m goipp.Message
		err = m.Decode(res.Body)
		done <- result{&m, err}
	}()
	pw.Write(msg)
	pw.Write([]byte("first half of the document\n"))
	nettest.Eventually(t, "the request to be in flight", func() bool { return ts.gauge(t, "printsrv_ipp_requests_in_flight") == 1 })

	shut := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		shut <- ts.Shutdown(ctx)
	}()
	// New connections are refused once the listener is closed.
	nettest.Eventually(t, "the listener to close", func() bool {
		c, err := net.Dial("tcp", ts.Addr)
		if err == nil {
			c.Close()
		}
		return err != nil
	})
	pw.Write([]byte("second half\n"))
	pw.Close()
	r := <-done
	if r.err != nil {
		t.Fatalf("in-flight request: %v", r.err)
	}
	if st := goipp.Status(r.resp.Code); st != goipp.StatusOk {
		t.Fatalf("in-flight Print-Job: %s", st)
	}
	if err := <-shut; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	http.DefaultClient.CloseIdleConnections()
}

// TestShutdownGraceOver: an upload that stalls past the grace period is
// cut off and Shutdown reports it.
func TestShutdownGraceOver(t *testing.T) {
	ts := startService(t)
	msg, _ := ippReq(goipp.OpPrintJob, ts.uri("/printers/office"), mimeAttr("text/plain")).EncodeBytes()
	c, err := net.Dial("tcp", ts.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "POST /printers/office HTTP/1.1\r\nHost: x\r\nContent-Type: application/ipp\r\nContent-Length: %d\r\n\r\n", len(msg)+1000)
	c.Write(msg)
	c.Write([]byte("only part of it"))
	nettest.Eventually(t, "the request to be in flight", func() bool { return ts.gauge(t, "printsrv_ipp_requests_in_flight") == 1 })
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := ts.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown = %v, want the grace period's end", err)
	}
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadAll(c); err != nil && !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("the stalled connection was not closed: %v", err)
	}
}

// TestCrashRecovery runs the built binary, kills it with SIGKILL after
// jobs were acknowledged, starts it again on the same state, and checks
// that every acknowledged job is there.
func TestCrashRecovery(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "printsrv")
	if out, err := exec.Command("go", "build", "-o", bin, "../..").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	state := filepath.Join(dir, "state")
	addr := freePort(t)
	cfg := filepath.Join(dir, "printsrv.toml")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`listen = ["tcp/%s"]
state_dir = %q
[admin]
listen = ""
[[printer]]
name = "slow"
media = ["iso_a4_210x297mm"]
formats = ["text/plain", "application/pdf"]
pages_per_minute = 1
`, addr, state)), 0o644)

	start := func() *exec.Cmd {
		cmd := exec.Command(bin, "-config", cfg)
		var log bytes.Buffer
		cmd.Stderr = &log
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			cmd.Process.Kill()
			cmd.Wait()
			if t.Failed() {
				t.Logf("printsrv log:\n%s", log.String())
			}
		})
		nettest.Eventually(t, "printsrv to listen", func() bool {
			c, err := net.Dial("tcp", addr)
			if err == nil {
				c.Close()
			}
			return err == nil
		})
		return cmd
	}
	url := "http://" + addr + "/printers/slow"
	uri := "ipp://" + addr + "/printers/slow"
	cmd := start()
	var ids []int
	for i := range 10 {
		m := ippReq(goipp.OpPrintJob, uri, mimeAttr("text/plain"))
		if i%3 == 0 {
			m.Groups = goipp.Groups{{Tag: goipp.TagOperationGroup, Attrs: m.Operation},
				{Tag: goipp.TagJobGroup, Attrs: goipp.Attributes{kw("job-hold-until", "indefinite")}}}
		}
		resp := ippDo(t, url, m, []byte(strings.Repeat(fmt.Sprintf("job %d\n", i), 100)))
		if st := goipp.Status(resp.Code); st != goipp.StatusOk {
			t.Fatalf("Print-Job %d: %s", i, st)
		}
		ids = append(ids, jobID(t, resp))
	}
	http.DefaultClient.CloseIdleConnections()
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()

	start()
	resp := ippDo(t, url, ippReq(goipp.OpGetJobs, uri, kw("which-jobs", "all"), kw("requested-attributes", "job-id", "job-state")), nil)
	got := map[int]bool{}
	for _, g := range resp.Groups {
		if g.Tag != goipp.TagJobGroup {
			continue
		}
		for _, a := range g.Attrs {
			if a.Name == "job-id" {
				got[int(a.Values[0].V.(goipp.Integer))] = true
			}
		}
	}
	for _, id := range ids {
		if !got[id] {
			t.Errorf("acknowledged job %d is gone after kill -9 and restart", id)
		}
	}
	http.DefaultClient.CloseIdleConnections()
}

// freePort finds a loopback port nobody listens on, for the binary.
func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}
