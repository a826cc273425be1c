package server_test

import (
	"bytes"
	"context"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/OpenPrinting/goipp"
	"go.uber.org/goleak"

	"example.com/appliance/printsrv/internal/server"
	"example.com/appliance/printsrv/internal/spool"
	"example.com/appliance/shared/daemon"
	"example.com/appliance/shared/nettest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// testService is a printsrv Service running in this process on a
// loopback port, with its state in a temporary directory.
type testService struct {
	*server.Service
	Base  *daemon.Base
	Log   *nettest.Buffer
	State string // state_dir
	Addr  string // 127.0.0.1:port of the IPP listener

	mu   sync.Mutex
	next server.Config
}

// me is the user the CUPS tools run as, an operator in the test config.
func me(t testing.TB) string {
	t.Helper()
	u, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	return u.Username
}

// testConfig is the config of the tests: two instant queues.
func testConfig(t testing.TB, state string) server.Config {
	cfg := server.Default()
	cfg.Listen = []string{"tcp/127.0.0.1:0"}
	cfg.Admin.Listen = ""
	cfg.Log.Level = "debug"
	cfg.StateDir = state
	cfg.Operators = []string{me(t)}
	for i := range cfg.Printers {
		cfg.Printers[i].PagesPerMinute = 0 // print at once: the tests wait for completion
		// 4x6 photo paper lets ipptool's JPEG tests run too.
		cfg.Printers[i].Media = append(cfg.Printers[i].Media, "na_index-4x6_4x6in")
	}
	return cfg
}

// startService starts a Service after applying each edit to the config,
// and shuts it down at the end of the test.
func startService(t testing.TB, edits ...func(*server.Config)) *testService {
	t.Helper()
	ts := &testService{Log: new(nettest.Buffer), State: t.TempDir()}
	cfg := testConfig(t, ts.State)
	for _, e := range edits {
		e(&cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("test config: %v", err)
	}
	ts.next = cfg
	ts.Base = daemon.NewBase("printsrv", cfg.Common, ts.Log)
	ts.Service = server.New(cfg, ts.Base, func() (server.Config, error) {
		ts.mu.Lock()
		defer ts.mu.Unlock()
		return ts.next, nil
	})
	nettest.StartService(t, ts, ts.Log)
	if addrs := ts.Addrs(); len(addrs) > 0 {
		ts.Addr = strings.TrimPrefix(addrs[0], "tcp/")
	}
	return ts
}

// uri returns an ipp:// URI for a path on the service.
func (ts *testService) uri(path string) string { return "ipp://" + ts.Addr + path }

// waitJob waits until the job satisfies cond, for what the spool does in
// its own time (printing).
func (ts *testService) waitJob(t testing.TB, id int, what string, cond func(spool.Job) bool) spool.Job {
	t.Helper()
	var j spool.Job
	nettest.Eventually(t, what, func() bool {
		var ok bool
		j, ok = ts.Spool().Job(id)
		return ok && cond(j)
	})
	return j
}

// cupsEnv is the environment for the CUPS command-line tools: a home of
// their own, so that the host's client.conf and lpoptions do not apply.
func cupsEnv(t testing.TB, addr string) []string {
	home := t.TempDir()
	env := []string{"HOME=" + home, "CUPS_SERVER=" + addr, "PATH=" + os.Getenv("PATH"), "LANG=C", "LC_ALL=C",
		"USER=" + me(t), "LOGNAME=" + me(t), "CUPS_ENCRYPTION=Never"}
	return env
}

// runTool runs a CUPS tool and returns its stdout; a failure is fatal.
func runTool(t testing.TB, env []string, stdin string, name string, args ...string) string {
	t.Helper()
	out, errOut, err := tryTool(t, env, stdin, name, args...)
	if err != nil {
		t.Fatalf("%s %q: %v\nstdout:\n%s\nstderr:\n%s", filepath.Base(name), args, err, out, errOut)
	}
	return out
}

func tryTool(t testing.TB, env []string, stdin string, name string, args ...string) (string, string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = env
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	return stdout.String(), stderr.String(), err
}

// ippDo sends one IPP request over HTTP and decodes the response.
func ippDo(t testing.TB, url string, m *goipp.Message, doc []byte) *goipp.Message {
	t.Helper()
	b, err := m.EncodeBytes()
	if err != nil {
		t.Fatal(err)
	}
	res, err := http.Post(url, "application/ipp", bytes.NewReader(append(b, doc...)))
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("HTTP %s", res.Status)
	}
	var resp goipp.Message
	if err := resp.Decode(res.Body); err != nil {
		t.Fatalf("decode response: %v", err)
	}
	return &resp
}

// ippReq builds a request with the usual operation attributes.
func ippReq(op goipp.Op, printerURI string, attrs ...goipp.Attribute) *goipp.Message {
	m := goipp.NewRequest(goipp.MakeVersion(2, 0), op, 1)
	m.Operation.Add(goipp.MakeAttribute("attributes-charset", goipp.TagCharset, goipp.String("utf-8")))
	m.Operation.Add(goipp.MakeAttribute("attributes-natural-language", goipp.TagLanguage, goipp.String("en")))
	if printerURI != "" {
		m.Operation.Add(goipp.MakeAttribute("printer-uri", goipp.TagURI, goipp.String(printerURI)))
	}
	m.Operation.Add(goipp.MakeAttribute("requesting-user-name", goipp.TagName, goipp.String("alice")))
	for _, a := range attrs {
		m.Operation.Add(a)
	}
	return m
}

func findAttr(m *goipp.Message, group goipp.Tag, name string) (goipp.Attribute, bool) {
	for _, g := range m.Groups {
		if g.Tag != group {
			continue
		}
		for _, a := range g.Attrs {
			if a.Name == name {
				return a, true
			}
		}
	}
	return goipp.Attribute{}, false
}

func jobID(t testing.TB, m *goipp.Message) int {
	t.Helper()
	a, ok := findAttr(m, goipp.TagJobGroup, "job-id")
	if !ok {
		t.Fatalf("no job-id in the response (status %s)", goipp.Status(m.Code))
	}
	return int(a.Values[0].V.(goipp.Integer))
}

// trayFiles lists what a queue's output tray holds.
func trayFiles(t testing.TB, state, printer string) []string {
	t.Helper()
	ents, _ := os.ReadDir(filepath.Join(state, "tray", printer))
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}

// metricOps returns printsrv_ipp_requests_total for one operation and status.
func (ts *testService) metricOps(t testing.TB, op, status string) float64 {
	t.Helper()
	mfs, err := ts.Base.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "printsrv_ipp_requests_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["operation"] == op && labels["status"] == status {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

// gauge returns the value of an unlabelled gauge.
func (ts *testService) gauge(t testing.TB, name string) float64 {
	t.Helper()
	mfs, err := ts.Base.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) == 1 {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	t.Fatalf("gauge %s not found", name)
	return 0
}

// reloadWith makes the next Reload return the config after edit, then reloads.
func (ts *testService) reloadWith(t testing.TB, edit func(*server.Config)) {
	t.Helper()
	ts.mu.Lock()
	edit(&ts.next)
	err := ts.next.Validate()
	ts.mu.Unlock()
	if err != nil {
		t.Fatalf("reload config: %v", err)
	}
	if err := ts.Reload(); err != nil {
		t.Fatalf("Reload: %v", err)
	}
}
