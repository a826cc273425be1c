// Tsbench measures the timestamp daemon tsserv against a minimal Go server
// doing the same work, on loopback, in one run.
//
// For each scenario (TCP with 1, 64 and 1024 persistent clients, TCP with a
// new connection per request, UDP with 64 clients) it reports requests per
// second, p50 and p99 latency and the server's CPU time per request, read
// from /proc/<pid>/stat; it also reports the resident memory of each server
// holding 10,000 idle TCP connections. Both servers run as separate
// processes at the same time and take turns, so both see the same machine.
// The baseline is this program itself, re-executed with -serve-baseline.
//
// Usage:
//
//	go run ./tsserv/tsbench -tsserv ./bin/tsserv -out docs/benchmarks.md
//
// The report is a Markdown table printed to standard output and, with -out,
// put with a header between the <!-- BEGIN tsbench --> and
// <!-- END tsbench --> markers of a file (appended when they are absent; the
// rest of the file is kept). Tsbench exits 0 when it ran, whether or not
// tsserv met its targets, 1 when something failed to run and 2 on a usage
// error.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"example.com/appliance/shared/benchkit"
)

func main() { benchkit.Main("tsbench", run) }

// config is the parsed command line.
type config struct {
	tsserv         string
	out            string
	baselineOnly   bool
	duration       time.Duration
	warmup         time.Duration
	slice          time.Duration
	tcpClients     []int
	newConnWorkers int
	udpClients     int
	udpTimeout     time.Duration
	idleConns      int
	args           []string // as given, for the report

	serveBaseline string // hidden: run as the baseline server on this address
	serveLifetime time.Duration
}

// hiddenFlags are for the re-executed baseline and left out of -help.
var hiddenFlags = map[string]bool{"serve-baseline": true, "serve-lifetime": true}

func parseFlags(args []string) (*config, error) {
	c := &config{args: args}
	fs := flag.NewFlagSet("tsbench", flag.ContinueOnError)
	fs.StringVar(&c.tsserv, "tsserv", "./bin/tsserv", "`path` of the tsserv binary under test")
	fs.StringVar(&c.out, "out", "", "also put the report between the tsbench markers of this Markdown `file` (the rest is kept)")
	fs.BoolVar(&c.baselineOnly, "baseline-only", false, "bench the baseline against a second baseline instead of tsserv (no tsserv needed)")
	fs.DurationVar(&c.duration, "duration", 3*time.Second, "timed phase of each scenario, per server")
	fs.DurationVar(&c.warmup, "warmup", 500*time.Millisecond, "untimed warm-up before each timed phase")
	fs.DurationVar(&c.slice, "slice", 250*time.Millisecond, "the servers take turns in slices this long, ABBA..., until each had -duration")
	clients := fs.String("tcp-clients", "1,64,1024", "comma-separated `counts` of persistent TCP clients, one scenario each")
	fs.IntVar(&c.newConnWorkers, "newconn-workers", 16, "concurrent clients opening a new TCP connection per request (0 skips)")
	fs.IntVar(&c.udpClients, "udp-clients", 64, "UDP clients, each with its own socket (0 skips)")
	fs.DurationVar(&c.udpTimeout, "udp-timeout", 200*time.Millisecond, "wait for a UDP reply before counting it lost")
	fs.IntVar(&c.idleConns, "idle-conns", 10000, "idle TCP connections held for the memory test (0 skips)")
	fs.StringVar(&c.serveBaseline, "serve-baseline", "", "run as the baseline server on this `address` (internal)")
	fs.DurationVar(&c.serveLifetime, "serve-lifetime", 30*time.Minute, "exit the baseline server after this long (internal)")
	fs.Usage = func() {
		w := fs.Output()
		fmt.Fprintf(w, "Usage: tsbench [flags]\n\nTsbench measures tsserv against a minimal Go timestamp server.\n\nFlags:\n")
		fs.VisitAll(func(f *flag.Flag) {
			if hiddenFlags[f.Name] {
				return
			}
			name, usage := flag.UnquoteUsage(f)
			if name != "" {
				name = " " + name
			}
			fmt.Fprintf(w, "  -%s%s\n    \t%s", f.Name, name, usage)
			if f.DefValue != "" && f.DefValue != "false" && f.DefValue != "0" {
				fmt.Fprintf(w, " (default %s)", f.DefValue)
			}
			fmt.Fprintln(w)
		})
	}
	if err := benchkit.ParseFlags(fs, args); err != nil {
		return nil, err
	}
	if c.serveBaseline != "" {
		return c, nil
	}
	for f := range strings.SplitSeq(*clients, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		n, err := strconv.Atoi(f)
		if err != nil || n < 1 {
			return nil, benchkit.UsageError{Err: fmt.Errorf("-tcp-clients: bad count %q", f)}
		}
		c.tcpClients = append(c.tcpClients, n)
	}
	switch {
	case c.duration <= 0:
		return nil, benchkit.UsageError{Err: errors.New("-duration must be positive")}
	case c.warmup < 0:
		return nil, benchkit.UsageError{Err: errors.New("-warmup must not be negative")}
	case c.slice <= 0:
		return nil, benchkit.UsageError{Err: errors.New("-slice must be positive")}
	case c.newConnWorkers < 0, c.udpClients < 0, c.idleConns < 0:
		return nil, benchkit.UsageError{Err: errors.New("client counts must not be negative")}
	case c.udpTimeout <= 0:
		return nil, benchkit.UsageError{Err: errors.New("-udp-timeout must be positive")}
	case !c.baselineOnly && c.tsserv == "":
		return nil, benchkit.UsageError{Err: errors.New("-tsserv is empty: give the binary, or -baseline-only")}
	}
	return c, nil
}

// scenario is one load pattern, run on each server.
type scenario struct {
	name    string // as shown in the report
	clients int    // 64 for the scenarios with targets
	udp     bool
	setup   func(ctx context.Context, s *server) (*load, error)
}

func scenarios(c *config) []scenario {
	var list []scenario
	for _, n := range c.tcpClients {
		name := fmt.Sprintf("TCP, %d persistent clients", n)
		if n == 1 {
			name = "TCP, 1 persistent client"
		}
		list = append(list, scenario{name: name, clients: n, setup: func(ctx context.Context, s *server) (*load, error) {
			return tcpLoad(ctx, s, n)
		}})
	}
	if n := c.newConnWorkers; n > 0 {
		list = append(list, scenario{name: fmt.Sprintf("TCP, new connection per request, %d workers", n), setup: func(_ context.Context, s *server) (*load, error) {
			return newConnLoad(s, n), nil
		}})
	}
	if n := c.udpClients; n > 0 {
		list = append(list, scenario{name: fmt.Sprintf("UDP, %d clients", n), clients: n, udp: true, setup: func(_ context.Context, s *server) (*load, error) {
			return udpLoad(s, n, c.udpTimeout)
		}})
	}
	return list
}

// runScenario sets up the scenario's load on both servers and runs it,
// the server going first alternating from one scenario to the next.
func runScenario(ctx context.Context, c *config, sc scenario, servers [2]*server, first int) ([2]*measurement, error) {
	var loads [2]*load
	for _, i := range []int{first, 1 - first} {
		l, err := sc.setup(ctx, servers[i])
		if err != nil {
			for _, l := range loads {
				if l != nil && l.cleanup != nil {
					l.cleanup()
				}
			}
			return [2]*measurement{}, fmt.Errorf("%s, %s: %w", servers[i].name, sc.name, err)
		}
		loads[i] = l
	}
	res, err := compare(ctx, [2]*load{loads[first], loads[1-first]}, c.warmup, c.duration, c.slice)
	if err != nil {
		return res, fmt.Errorf("%s: %w", sc.name, err)
	}
	if first == 1 {
		res[0], res[1] = res[1], res[0]
	}
	return res, nil
}

// pause lets a server settle between two measurements.
const pause = 200 * time.Millisecond

// run is main without the exit: it parses args, runs the benchmark and
// writes the report to stdout and the -out file.
func run(ctx context.Context, args []string, stdout io.Writer) error {
	c, err := parseFlags(args)
	if err != nil {
		return err
	}
	if c.serveBaseline != "" {
		return serveBaseline(ctx, c.serveBaseline, c.serveLifetime)
	}
	start := time.Now()
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find own binary for the baseline: %w", err)
	}
	// The baseline lives a little longer than this run can: bounded either way.
	lifetime := time.Duration(len(scenarios(c))*2)*(c.warmup+c.duration+time.Minute) + 10*time.Minute

	r := &report{cfg: c, scenarios: scenarios(c), candidate: "tsserv"}
	candCmd := tsservCommand(c.tsserv)
	if c.baselineOnly {
		r.candidate = "baseline-b"
		candCmd = baselineCommand(self, lifetime)
	}
	cand, err := startServer(ctx, r.candidate, candCmd)
	if err != nil {
		return err
	}
	defer cand.stop()
	base, err := startServer(ctx, "baseline", baselineCommand(self, lifetime))
	if err != nil {
		return err
	}
	defer base.stop()
	servers := [2]*server{cand, base}
	logf("%s on %s (pid %d), baseline on %s (pid %d)", cand.name, cand.addr, cand.cmd.Process.Pid, base.addr, base.cmd.Process.Pid)

	// Memory first, while both servers are fresh.
	if c.idleConns > 0 {
		for i, s := range servers {
			res, err := benchIdle(ctx, s, c.idleConns)
			if err != nil {
				return fmt.Errorf("%s, %d idle connections: %w", s.name, c.idleConns, err)
			}
			r.idle[i] = res
			logf("%-10s %d idle connections: VmRSS %.1f MB (%.1f MB before)", s.name, res.conns, benchkit.MB(res.afterKB), benchkit.MB(res.beforeKB))
		}
		// Let both servers finish closing before anything is timed.
		if err := sleepCtx(ctx, idleSettle); err != nil {
			return err
		}
	}

	r.results = make([][2]*measurement, len(r.scenarios))
	for si, sc := range r.scenarios {
		res, err := runScenario(ctx, c, sc, servers, si%2)
		if err != nil {
			return err
		}
		r.results[si] = res
		for i, m := range res {
			logf("%-46s %-10s %9.0f req/s  p50 %8s  p99 %8s  %6.1f µs CPU/req  failed %d  lost %d",
				sc.name, servers[i].name, m.rate(), micros(m.lat.quantile(0.5)), micros(m.lat.quantile(0.99)),
				m.cpuPerReq(), m.errors, m.lost)
		}
		if err := sleepCtx(ctx, pause); err != nil {
			return err
		}
	}
	r.elapsed = time.Since(start)

	text := r.markdown()
	if err := benchkit.WriteReport(stdout, text, c.out, "tsbench", r.header()+text, logf); err != nil {
		return err
	}
	return r.failures()
}
