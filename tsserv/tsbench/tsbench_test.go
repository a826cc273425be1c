package main

import (
	"bytes"
	"context"
	"errors"
	"math"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"example.com/appliance/shared/benchkit"
)

// TestMain lets the test binary stand in for tsbench when run re-executes
// itself as the baseline server.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == "-serve-baseline" {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		err := run(ctx, os.Args[1:], os.Stdout)
		stop()
		if err != nil {
			os.Stderr.WriteString("tsbench: " + err.Error() + "\n")
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestBaselineVsBaseline runs a very short bench of the baseline against a
// second baseline, all scenarios and a small memory test included.
func TestBaselineVsBaseline(t *testing.T) {
	if testing.Short() {
		t.Skip("starts two server processes and loads them for a few seconds")
	}
	out := filepath.Join(t.TempDir(), "docs", "bench.md")
	// Another tool's section, which tsbench must keep.
	other := "<!-- BEGIN printbench -->\nprint results\n<!-- END printbench -->\n"
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(out, []byte(other), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var stdout bytes.Buffer
	err := run(ctx, []string{
		"-baseline-only",
		"-duration", "200ms", "-warmup", "50ms", "-slice", "50ms",
		"-tcp-clients", "1,4", "-newconn-workers", "2", "-udp-clients", "4",
		"-idle-conns", "50",
		"-out", out,
	}, &stdout)
	if err != nil {
		t.Fatalf("run: %v\noutput:\n%s", err, stdout.String())
	}
	table := stdout.String()
	for _, want := range []string{
		"| scenario | server | req/s | p50 | p99 | CPU µs/req | req/s ratio | CPU ratio |",
		"| TCP, 1 persistent client | baseline-b |",
		"| TCP, 4 persistent clients | baseline-b |",
		"| TCP, new connection per request, 2 workers | baseline-b |",
		"| UDP, 4 clients | baseline-b |",
		"|  | baseline |",
		"| baseline-b | 50 |",
		"## Targets",
		"| 50 idle TCP connections: baseline-b RSS < 200 MB |",
		"not run", // no scenario has 64 clients
	} {
		if !strings.Contains(table, want) {
			t.Errorf("report lacks %q:\n%s", want, table)
		}
	}
	file, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(file), other+"\n<!-- BEGIN tsbench -->\n## Timestamp server") || !strings.HasSuffix(string(file), table+"<!-- END tsbench -->\n") {
		t.Errorf("-out file is not the other section, then header + report between tsbench's markers:\n%s", file)
	}
	for _, want := range []string{"uname -r", "nproc", "Go: go", "reproduce:"} {
		if !strings.Contains(string(file), want) {
			t.Errorf("-out header lacks %q", want)
		}
	}
}

func TestMissingServerFails(t *testing.T) {
	err := run(context.Background(), []string{"-tsserv", filepath.Join(t.TempDir(), "no-such-tsserv"), "-idle-conns", "0"}, &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), "start tsserv") {
		t.Fatalf("run with a missing binary: %v, want a start error", err)
	}
}

func TestFlags(t *testing.T) {
	for _, args := range [][]string{
		{"-duration", "0s"},
		{"-tcp-clients", "1,x"},
		{"-tcp-clients", "0"},
		{"-slice", "-1s"},
		{"-udp-clients", "-1"},
		{"extra"},
		{"-no-such-flag"},
	} {
		_, err := parseFlags(args)
		var ue benchkit.UsageError
		if !errors.As(err, &ue) {
			t.Errorf("parseFlags(%q) = %v, want a usage error", args, err)
		}
	}
	c, err := parseFlags([]string{"-tcp-clients", " 1, 64 ,1024", "-newconn-workers", "0"})
	if err != nil {
		t.Fatal(err)
	}
	sc := scenarios(c)
	if len(sc) != 4 || sc[1].clients != 64 || !sc[3].udp {
		t.Errorf("scenarios = %+v, want tcp 1, 64, 1024 and udp", sc)
	}
}

func TestHistogram(t *testing.T) {
	prev := -1
	for v := int64(0); v < 1<<24; v += 1 + v/97 {
		b := bucketOf(v)
		if b < prev {
			t.Fatalf("bucketOf(%d) = %d < bucketOf of a smaller value %d", v, b, prev)
		}
		prev = b
		if got := bucketValue(b); math.Abs(float64(got-v)) > float64(v)/64+1 {
			t.Fatalf("bucketValue(bucketOf(%d)) = %d, more than 1/64 off", v, got)
		}
	}
	if b := bucketOf(math.MaxInt64); b != numBuckets-1 {
		t.Errorf("bucketOf(max) = %d, want the last bucket %d", b, numBuckets-1)
	}

	var h histogram
	for i := 1; i <= 1000; i++ {
		h.record(time.Duration(i) * time.Microsecond)
	}
	var l latencies
	l.merge(&h)
	for _, c := range []struct {
		q    float64
		want time.Duration
	}{{0.5, 500 * time.Microsecond}, {0.99, 990 * time.Microsecond}, {1, 1000 * time.Microsecond}} {
		got := l.quantile(c.q)
		if math.Abs(float64(got-c.want)) > float64(c.want)/50 {
			t.Errorf("quantile(%v) = %v, want %v within 2%%", c.q, got, c.want)
		}
	}
	if got := (&latencies{}).quantile(0.5); got != 0 {
		t.Errorf("quantile of nothing = %v, want 0", got)
	}
}

func TestReplies(t *testing.T) {
	msg := []byte("tsbench 3 17\n")
	good := []byte("[Wed Nov 25 11:56:10 2026] tsbench 3 17\n")
	if !checkReply(good, msg) {
		t.Errorf("checkReply(%q) = false", good)
	}
	for _, bad := range []string{
		"[Wed Nov 25 11:56:10 2026] tsbench 3 18\n",
		"[Wed Nov 25 11:56:10 2026]tsbench 3 17\n",
		"Wed Nov 25 11:56:10 2026] tsbench 3 17\n",
		"[Wed Nov 25 11:56:10 2026] tsbench 3 17",
	} {
		if checkReply([]byte(bad), msg) {
			t.Errorf("checkReply(%q) = true", bad)
		}
	}
	now := []byte("[" + time.Now().Format(ctimeLayout) + "] x")
	if err := checkTime(now); err != nil {
		t.Errorf("checkTime(now): %v", err)
	}
	if err := checkTime([]byte("[Wed Nov 25 11:56:10 1999] x")); err == nil {
		t.Error("checkTime of 1999: no error")
	}
	udp := []byte("tsbench 3 17")
	if !stale([]byte("[Wed Nov 25 11:56:10 2026] tsbench 3 16"), udp) {
		t.Error("an earlier reply is not stale")
	}
	if stale([]byte("[Wed Nov 25 11:56:10 2026] tsbench 4 16"), udp) {
		t.Error("another worker's reply is stale")
	}
	m := newMessage(7)
	first := string(m.next(true))
	if got := first + string(m.next(false)); got != "tsbench 7 1\ntsbench 7 2" {
		t.Errorf("messages = %q", got)
	}
}

func TestRatios(t *testing.T) {
	slices := func(reqs ...uint64) []sliceStat {
		var s []sliceStat
		for _, r := range reqs {
			s = append(s, sliceStat{requests: r, elapsed: time.Second, cpuTicks: r / 10})
		}
		return s
	}
	a := &measurement{requests: 400, elapsed: 4 * time.Second, cpuTicks: 40, slices: slices(100, 100, 100, 100)}
	r := compareRate(a, a)
	if r.value != 1 || r.plusMinus != 0 || r.String() != "1.00 ±0.00" && r.String() != "1.00" {
		t.Errorf("a against itself: %+v %q", r, r)
	}
	b := &measurement{requests: 400, elapsed: 4 * time.Second, cpuTicks: 40, slices: slices(80, 120, 90, 110)}
	r = compareRate(a, b)
	if r.value != 1 || r.plusMinus <= 0 {
		t.Errorf("noisy b: %+v, want 1 with a positive ±", r)
	}
	if got := verdict(ratio{value: 1.1, plusMinus: 0.05, ok: true}, 1.2, false); got != "PASS" {
		t.Errorf("verdict 1.1±0.05 ≤ 1.2 = %q", got)
	}
	if got := verdict(ratio{value: 1.1, plusMinus: 0.2, ok: true}, 1.2, false); got != "PASS (within noise)" {
		t.Errorf("verdict 1.1±0.2 ≤ 1.2 = %q", got)
	}
	if got := verdict(ratio{value: 0.8, plusMinus: 0.05, ok: true}, 0.9, true); got != "**FAIL**" {
		t.Errorf("verdict 0.8±0.05 ≥ 0.9 = %q", got)
	}
	if got := compareCPU(&measurement{}, a); got.ok {
		t.Errorf("ratio with nothing measured: %+v", got)
	}
}
