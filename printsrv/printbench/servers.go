package main

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"example.com/appliance/shared/benchkit"
)

const readyTimeout = 20 * time.Second

// target is one print server under test.
type target struct {
	name    string
	host    string // 127.0.0.1:port
	path    string // HTTP path that takes IPP requests for the queue
	uri     string // printer-uri of the queue
	lpQueue string // lp -d name; empty when lp cannot reach the server
	lpWhy   string // why not, when lpQueue is empty
	proc    *benchkit.Proc
	helpers []*benchkit.Proc // started for it, stopped after it (dbus-daemon)
}

// url returns the http URL requests are POSTed to.
func (t *target) url() string { return "http://" + t.host + t.path }

// stop stops the server and then its helpers.
func (t *target) stop() {
	if t.proc != nil {
		t.proc.Stop()
	}
	for i := len(t.helpers) - 1; i >= 0; i-- {
		t.helpers[i].Stop()
	}
}

// cpu returns the server's CPU time so far.
func (t *target) cpu() (benchkit.CPU, error) {
	c, err := benchkit.CPUTimes(t.proc.Pid())
	if err != nil {
		return benchkit.CPU{}, fmt.Errorf("%s: %w", t.name, err)
	}
	return c, nil
}

// Formats ippeveprinter is told to accept, as the brief for the comparison says.
const ippeveFormats = "application/pdf,text/plain,application/octet-stream"

// startIppeveprinter starts Debian's ippeveprinter with /bin/true as its
// print command, and a private D-Bus daemon it needs even with DNS-SD off.
func startIppeveprinter(dir string) (*target, error) {
	for _, bin := range []string{"dbus-daemon", "ippeveprinter"} {
		if _, err := lookPath(bin); err != nil {
			return nil, err
		}
	}
	bus := filepath.Join(dir, "bus")
	spool := filepath.Join(dir, "spool")
	if err := os.MkdirAll(spool, 0o755); err != nil {
		return nil, fmt.Errorf("ippeveprinter spool: %w", err)
	}
	dbus, err := benchkit.StartProc(logf, "dbus-daemon", nil, "dbus-daemon", "--session", "--address=unix:path="+bus, "--nofork", "--nopidfile")
	if err != nil {
		return nil, err
	}
	t := &target{name: "ippeveprinter", path: "/ipp/print", helpers: []*benchkit.Proc{dbus},
		lpWhy: "lp sends its requests for `/printers/NAME`, which ippeveprinter answers with client-error-not-found (it serves only `/ipp/print`)"}
	deadline := time.Now().Add(readyTimeout)
	for {
		if _, err := os.Stat(bus); err == nil {
			break
		}
		if err := dbus.Alive(); err != nil {
			return nil, err
		}
		if time.Now().After(deadline) {
			t.stop()
			return nil, fmt.Errorf("dbus-daemon made no socket %s in %v%s", bus, readyTimeout, dbus.Logs.Excerpt())
		}
		time.Sleep(20 * time.Millisecond)
	}
	var errs []string
	for range 3 {
		port, err := benchkit.FreePort()
		if err != nil {
			t.stop()
			return nil, err
		}
		p, err := benchkit.StartProc(logf, "ippeveprinter", []string{"DBUS_SYSTEM_BUS_ADDRESS=unix:path=" + bus},
			"ippeveprinter", "-c", "/bin/true", "-f", ippeveFormats, "-p", strconv.Itoa(port),
			"-r", "off", "-d", spool, "Bench")
		if err != nil {
			t.stop()
			return nil, err
		}
		t.host = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		t.uri = "ipp://" + t.host + t.path
		t.proc = p
		if err = waitIPP(t); err == nil {
			return t, nil
		}
		errs = append(errs, err.Error())
		p.Stop()
		t.proc = nil
	}
	t.stop()
	return nil, fmt.Errorf("start ippeveprinter: %s", strings.Join(errs, "; "))
}

// printsrvQueue is the queue the benchmark configures in printsrv.
const printsrvQueue = "bench"

// startPrintsrv starts the printsrv binary on a fresh state folder in dir,
// with a config that allows documents of maxJobBytes.
func startPrintsrv(bin, dir string, maxJobBytes int64) (*target, error) {
	if _, err := lookPath(bin); err != nil {
		return nil, err
	}
	state := filepath.Join(dir, "state")
	if err := os.MkdirAll(state, 0o755); err != nil {
		return nil, fmt.Errorf("printsrv state: %w", err)
	}
	var errs []string
	for range 3 {
		port, err := benchkit.FreePort()
		if err != nil {
			return nil, err
		}
		adminPort, err := benchkit.FreePort()
		if err != nil {
			return nil, err
		}
		host := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		admin := net.JoinHostPort("127.0.0.1", strconv.Itoa(adminPort))
		conf := filepath.Join(dir, "printsrv.toml")
		if err := os.WriteFile(conf, []byte(printsrvConfig(host, admin, state, maxJobBytes)), 0o644); err != nil {
			return nil, fmt.Errorf("printsrv config: %w", err)
		}
		p, err := benchkit.StartProc(logf, "printsrv", nil, bin, "-config", conf)
		if err != nil {
			return nil, err
		}
		t := &target{name: "printsrv", host: host, path: "/printers/" + printsrvQueue, lpQueue: printsrvQueue, proc: p}
		t.uri = "ipp://" + host + t.path
		if err = waitIPP(t); err == nil {
			return t, nil
		}
		errs = append(errs, err.Error())
		p.Stop()
	}
	return nil, fmt.Errorf("start printsrv: %s", strings.Join(errs, "; "))
}

// printsrvConfig is the config the benchmark gives printsrv: loopback
// listener, quiet logs, one queue, a fresh state folder, big documents
// allowed, everything else (the durable spool included) at its default.
func printsrvConfig(listen, admin, state string, maxJobBytes int64) string {
	return fmt.Sprintf(`# written by printbench
listen = ["tcp/%s"]
state_dir = %q
max_job_bytes = %d

[log]
level = "warn"

[admin]
listen = "tcp/%s"

# Prints instantly, like ippeveprinter with -c /bin/true.
[[printer]]
name = %q
formats = ["application/pdf", "text/plain"]
pages_per_minute = 0
media = ["iso_a4_210x297mm"]
`, listen, state, maxJobBytes, admin, printsrvQueue)
}

// waitIPP waits until t answers Get-Printer-Attributes with successful-ok.
func waitIPP(t *target) error {
	if err := benchkit.WaitTCP(t.proc, t.host, readyTimeout); err != nil {
		return err
	}
	c := newIPPClient(t, 1)
	defer c.close()
	var last error
	for range 50 {
		if err := t.proc.Alive(); err != nil {
			return err
		}
		if last = c.getPrinterAttributes(); last == nil {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("%s on %s: Get-Printer-Attributes: %w%s", t.name, t.host, last, t.proc.Logs.Excerpt())
}
