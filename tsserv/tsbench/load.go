package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"example.com/appliance/shared/benchkit"
)

const (
	dialTimeout  = 5 * time.Second // for one connection
	stopGrace    = 5 * time.Second // for a request in flight when the time is up
	dialParallel = 64              // connections dialed at once when setting up
	errorBackoff = 10 * time.Millisecond
)

// measurement is what one scenario measured on one server.
type measurement struct {
	requests uint64        // completed in the timed slices
	elapsed  time.Duration // total of the timed slices
	cpuTicks uint64        // server CPU during the timed slices
	lat      latencies
	errors   uint64 // failed requests and broken connections
	lost     uint64 // UDP requests whose reply did not come in time
	firstErr error
	slices   []sliceStat
}

// rate returns completed requests per second.
func (m *measurement) rate() float64 {
	if m.elapsed <= 0 {
		return 0
	}
	return float64(m.requests) / m.elapsed.Seconds()
}

// cpuPerReq returns the server's CPU time per completed request in µs.
func (m *measurement) cpuPerReq() float64 {
	if m.requests == 0 {
		return 0
	}
	return float64(m.cpuTicks) * (1e6 / benchkit.ClockTicks) / float64(m.requests)
}

// workerStats is what one load goroutine counted.
type workerStats struct {
	hist     histogram
	errors   uint64
	lost     uint64
	firstErr error
}

func (w *workerStats) fail(err error) {
	w.errors++
	if w.firstErr == nil {
		w.firstErr = err
	}
}

// errLost marks a UDP request whose reply did not come in time.
var errLost = errors.New("reply lost")

// requester does one request and reports how it went. A non-nil error other
// than errLost ends the worker when fatal is true.
type requester interface {
	do() (fatal bool, err error)
}

// The states of a gate.
const (
	gateClosed  int32 = iota
	gateWarmup        // open, requests not counted
	gateMeasure       // open, requests counted
	gateStopped
)

// gate lets a load's workers send requests only while it is open, and
// counts the requests in flight so that a slice can wait for them.
type gate struct {
	state    atomic.Int32
	inflight atomic.Int64
	mu       sync.Mutex    // for changes of state and wake
	wake     chan struct{} // closed when the gate opens or stops
}

func newGate() *gate {
	return &gate{wake: make(chan struct{})}
}

// enter waits until the gate is open and counts a request in flight. It
// returns whether the request is measured, and false for ok once stopped.
func (g *gate) enter() (measure, ok bool) {
	for {
		g.inflight.Add(1)
		switch g.state.Load() {
		case gateMeasure:
			return true, true
		case gateWarmup:
			return false, true
		}
		g.inflight.Add(-1)
		g.mu.Lock()
		st, wake := g.state.Load(), g.wake
		g.mu.Unlock()
		switch st {
		case gateStopped:
			return false, false
		case gateClosed:
			<-wake
		}
	}
}

func (g *gate) leave() { g.inflight.Add(-1) }

// set changes the state, waking waiting workers when it opens or stops.
func (g *gate) set(st int32) {
	g.mu.Lock()
	defer g.mu.Unlock()
	old := g.state.Swap(st)
	if old == gateClosed && st != gateClosed {
		close(g.wake)
	} else if old != gateClosed && st == gateClosed {
		g.wake = make(chan struct{})
	}
}

// drain waits until no request is in flight, polling, for at most limit.
func (g *gate) drain(limit time.Duration) bool {
	deadline := time.Now().Add(limit)
	for g.inflight.Load() > 0 {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(200 * time.Microsecond)
	}
	return true
}

// load is one server's side of a scenario: closed-loop workers, one per
// requester, sending only while the load's gate is open.
type load struct {
	s       *server
	reqs    []requester
	unblock func() // bounds requests stuck on a server that stopped answering
	cleanup func() // closes connections and sockets

	gate  *gate
	done  atomic.Uint64 // measured requests completed
	stats []workerStats
	wg    sync.WaitGroup
	m     measurement
}

func (l *load) start() {
	l.gate = newGate()
	l.stats = make([]workerStats, len(l.reqs))
	for i, r := range l.reqs {
		l.wg.Go(func() {
			st := &l.stats[i]
			for {
				measure, ok := l.gate.enter()
				if !ok {
					return
				}
				t0 := time.Now()
				fatal, err := r.do()
				lat := time.Since(t0)
				// Count before leaving the gate, so that a drained slice
				// has counted all its requests.
				switch {
				case err == nil:
					if measure {
						st.hist.record(lat)
						l.done.Add(1)
					}
				case errors.Is(err, errLost):
					if measure {
						st.lost++
					}
					err = nil
				case l.gate.state.Load() == gateStopped && isTimeout(err):
					l.gate.leave()
					return // cut off by unblock
				default:
					st.fail(err)
				}
				l.gate.leave()
				if err != nil {
					if fatal {
						return
					}
					time.Sleep(errorBackoff)
				}
			}
		})
	}
}

// sliceStat is what one timed slice measured.
type sliceStat struct {
	requests uint64
	elapsed  time.Duration
	cpuTicks uint64
}

// slice opens the gate for d, closes it and waits for the requests in
// flight. When measuring it records the requests completed, the time from
// opening to the end of the drain and the server's CPU time over it.
func (l *load) slice(ctx context.Context, measure bool, d time.Duration) error {
	var cpu0 uint64
	var err error
	if measure {
		if cpu0, err = l.s.cpuTicks(); err != nil {
			return err
		}
	}
	n0 := l.done.Load()
	t0 := time.Now()
	if measure {
		l.gate.set(gateMeasure)
	} else {
		l.gate.set(gateWarmup)
	}
	err = sleepCtx(ctx, d)
	l.gate.set(gateClosed)
	if err != nil {
		return err
	}
	if !l.gate.drain(stopGrace) {
		if err := l.s.alive(); err != nil {
			return err
		}
		return fmt.Errorf("%s: requests still unanswered %v after the end of a slice", l.s.name, stopGrace)
	}
	if !measure {
		return nil
	}
	cpu1, err := l.s.cpuTicks()
	if err != nil {
		return err
	}
	st := sliceStat{requests: l.done.Load() - n0, elapsed: time.Since(t0), cpuTicks: cpu1 - cpu0}
	l.m.slices = append(l.m.slices, st)
	l.m.requests += st.requests
	l.m.elapsed += st.elapsed
	l.m.cpuTicks += st.cpuTicks
	return nil
}

// finish stops the workers and returns what they measured.
func (l *load) finish() *measurement {
	l.gate.set(gateStopped)
	if l.unblock != nil {
		l.unblock()
	}
	l.wg.Wait()
	if l.cleanup != nil {
		l.cleanup()
	}
	m := &l.m
	for i := range l.stats {
		st := &l.stats[i]
		m.lat.merge(&st.hist)
		m.errors += st.errors
		m.lost += st.lost
		if m.firstErr == nil {
			m.firstErr = st.firstErr
		}
	}
	return m
}

// compare runs one scenario on two servers at once, taking turns: each
// warms up for warmup, then gets duration in slices of at most slice, in
// the order ABBAABBA..., so that both see the same changes of machine load.
func compare(ctx context.Context, loads [2]*load, warmup, duration, slice time.Duration) (res [2]*measurement, err error) {
	started := 0
	defer func() {
		for _, l := range loads[:started] {
			m := l.finish()
			if err == nil {
				err = l.s.alive()
			}
			for i := range res {
				if loads[i] == l {
					res[i] = m
				}
			}
		}
		if err != nil {
			res = [2]*measurement{}
		}
	}()
	for _, l := range loads {
		l.start()
		started++
	}
	for _, l := range loads {
		if warmup > 0 {
			if err := l.slice(ctx, false, warmup); err != nil {
				return res, err
			}
		}
	}
	n := int((duration + slice - 1) / slice)
	for k := range n {
		d := min(slice, duration-time.Duration(k)*slice)
		order := loads
		if k%2 == 1 {
			order = [2]*load{loads[1], loads[0]}
		}
		for _, l := range order {
			if err := l.slice(ctx, true, d); err != nil {
				return res, err
			}
		}
	}
	return res, nil
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// checkReply reports whether reply is "[" + a 24-byte ctime + "] " + msg.
func checkReply(reply, msg []byte) bool {
	return len(reply) == len(msg)+27 && reply[0] == '[' && reply[25] == ']' && reply[26] == ' ' &&
		bytes.Equal(reply[27:], msg)
}

// checkTime reports whether the reply's timestamp parses as a ctime within
// a day of now; done once per worker, checkReply does the rest.
func checkTime(reply []byte) error {
	t, err := time.ParseInLocation(ctimeLayout, string(reply[1:25]), time.Local)
	if err != nil {
		return fmt.Errorf("bad timestamp in reply %q: %w", reply, err)
	}
	if d := time.Since(t); d > 25*time.Hour || d < -25*time.Hour {
		return fmt.Errorf("timestamp %q is %v off", reply[1:25], d.Round(time.Second))
	}
	return nil
}

// badReply describes a reply that does not answer msg.
func badReply(reply, msg []byte) error {
	const max = 120
	if len(reply) > max {
		reply = reply[:max]
	}
	return fmt.Errorf("bad reply %q to %q", reply, msg)
}

// message builds the request of a worker: "tsbench <id> <seq>".
type message struct {
	prefix []byte
	buf    []byte
	seq    uint64
}

func newMessage(id int) *message {
	return &message{prefix: []byte("tsbench " + strconv.Itoa(id) + " ")}
}

// next returns the next request, with a trailing newline when nl is set.
func (m *message) next(nl bool) []byte {
	m.seq++
	m.buf = strconv.AppendUint(append(m.buf[:0], m.prefix...), m.seq, 10)
	if nl {
		m.buf = append(m.buf, '\n')
	}
	return m.buf
}

// tcpClient is a persistent connection sending one line at a time.
type tcpClient struct {
	c       net.Conn
	br      *bufio.Reader
	msg     *message
	checked bool
}

func (t *tcpClient) do() (bool, error) {
	msg := t.msg.next(true)
	if _, err := t.c.Write(msg); err != nil {
		return true, fmt.Errorf("write: %w", err)
	}
	reply, err := t.br.ReadSlice('\n')
	if err != nil {
		return true, fmt.Errorf("read: %w", err)
	}
	if !checkReply(reply, msg) {
		return true, badReply(reply, msg)
	}
	if !t.checked {
		t.checked = true
		if err := checkTime(reply); err != nil {
			return true, err
		}
	}
	return false, nil
}

// dialAll opens n TCP connections to addr, dialParallel at a time; when
// hello is set each sends one line and reads the reply before the next is
// dialed, so that the server is surely serving it. On error the connections
// already open are closed.
func dialAll(ctx context.Context, addr string, n int, hello bool) ([]net.Conn, error) {
	conns := make([]net.Conn, n)
	errs := make([]error, n)
	next := atomic.Int64{}
	var failed atomic.Bool
	var wg sync.WaitGroup
	for range min(n, dialParallel) {
		wg.Go(func() {
			d := net.Dialer{Timeout: dialTimeout}
			for !failed.Load() && ctx.Err() == nil {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				c, err := d.DialContext(ctx, "tcp", addr)
				if err == nil && hello {
					err = helloConn(c, i)
					if err != nil {
						c.Close()
					}
				}
				if err != nil {
					errs[i] = fmt.Errorf("connection %d of %d: %w", i+1, n, err)
					failed.Store(true)
					return
				}
				conns[i] = c
			}
		})
	}
	wg.Wait()
	err := errors.Join(errs...)
	if err == nil {
		err = ctx.Err()
	}
	if err != nil {
		closeAll(conns)
		return nil, err
	}
	return conns, nil
}

func helloConn(c net.Conn, i int) error {
	_ = c.SetDeadline(time.Now().Add(dialTimeout))
	msg := newMessage(i).next(true)
	if _, err := c.Write(msg); err != nil {
		return fmt.Errorf("write: %w", err)
	}
	reply, err := bufio.NewReaderSize(c, 256).ReadSlice('\n')
	if err != nil {
		return fmt.Errorf("read: %w", err)
	}
	if !checkReply(reply, msg) {
		return badReply(reply, msg)
	}
	return c.SetDeadline(time.Time{})
}

func closeAll(conns []net.Conn) {
	for _, c := range conns {
		if c != nil {
			c.Close()
		}
	}
}

// tcpLoad sets up clients persistent connections, each sending a line and
// waiting for its reply in a loop.
func tcpLoad(ctx context.Context, s *server, clients int) (*load, error) {
	conns, err := dialAll(ctx, s.addr, clients, false)
	if err != nil {
		return nil, fmt.Errorf("connect: %w", err)
	}
	l := &load{s: s, reqs: make([]requester, clients), cleanup: func() { closeAll(conns) }}
	for i, c := range conns {
		l.reqs[i] = &tcpClient{c: c, br: bufio.NewReaderSize(c, 4096), msg: newMessage(i)}
	}
	l.unblock = func() {
		until := time.Now().Add(stopGrace)
		for _, c := range conns {
			_ = c.SetDeadline(until)
		}
	}
	return l, nil
}

// newConnClient dials, sends one line, reads the reply and closes, per request.
type newConnClient struct {
	addr   string
	dialer net.Dialer
	msg    *message
	br     *bufio.Reader
}

func (n *newConnClient) do() (bool, error) {
	c, err := n.dialer.Dial("tcp", n.addr)
	if err != nil {
		return false, fmt.Errorf("dial: %w", err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(stopGrace))
	msg := n.msg.next(true)
	if _, err := c.Write(msg); err != nil {
		return false, fmt.Errorf("write: %w", err)
	}
	n.br.Reset(c)
	reply, err := n.br.ReadSlice('\n')
	if err != nil {
		return false, fmt.Errorf("read: %w", err)
	}
	if !checkReply(reply, msg) {
		return false, badReply(reply, msg)
	}
	return false, nil
}

// newConnLoad sets up workers clients each opening a new connection for
// every request.
func newConnLoad(s *server, workers int) *load {
	l := &load{s: s, reqs: make([]requester, workers)}
	for i := range l.reqs {
		l.reqs[i] = &newConnClient{
			addr:   s.addr,
			dialer: net.Dialer{Timeout: dialTimeout},
			msg:    newMessage(i),
			br:     bufio.NewReaderSize(nil, 512),
		}
	}
	return l
}

// udpClient is a connected UDP socket sending one datagram at a time; a
// reply not back within timeout counts as lost, and a late reply to an
// earlier request is skipped.
type udpClient struct {
	c       *net.UDPConn
	msg     *message
	buf     []byte
	timeout time.Duration
	checked bool
}

func (u *udpClient) do() (bool, error) {
	msg := u.msg.next(false)
	if _, err := u.c.Write(msg); err != nil {
		return false, fmt.Errorf("write: %w", err)
	}
	if err := u.c.SetReadDeadline(time.Now().Add(u.timeout)); err != nil {
		return true, fmt.Errorf("deadline: %w", err)
	}
	for {
		n, err := u.c.Read(u.buf)
		if err != nil {
			if isTimeout(err) {
				return false, errLost
			}
			return false, fmt.Errorf("read: %w", err)
		}
		reply := u.buf[:n]
		if checkReply(reply, msg) {
			break
		}
		if stale(reply, msg) {
			continue
		}
		return false, badReply(reply, msg)
	}
	if !u.checked {
		u.checked = true
		if err := checkTime(u.buf[:len(msg)+27]); err != nil {
			return true, err
		}
	}
	return false, nil
}

// stale reports whether reply answers an earlier request of the same
// worker than msg: same "tsbench <id> " prefix, other sequence number.
func stale(reply, msg []byte) bool {
	if len(reply) < 27 || reply[0] != '[' {
		return false
	}
	i := bytes.LastIndexByte(msg, ' ')
	return bytes.HasPrefix(reply[27:], msg[:i+1])
}

// udpLoad sets up clients UDP sockets, each sending a datagram and waiting
// for its reply in a loop.
func udpLoad(s *server, clients int, timeout time.Duration) (*load, error) {
	raddr, err := net.ResolveUDPAddr("udp", s.addr)
	if err != nil {
		return nil, fmt.Errorf("resolve: %w", err)
	}
	socks := make([]*net.UDPConn, 0, clients)
	closeSocks := func() {
		for _, c := range socks {
			c.Close()
		}
	}
	l := &load{s: s, reqs: make([]requester, clients), cleanup: closeSocks}
	for i := range l.reqs {
		c, err := net.DialUDP("udp", nil, raddr)
		if err != nil {
			closeSocks()
			return nil, fmt.Errorf("udp socket %d: %w", i+1, err)
		}
		socks = append(socks, c)
		l.reqs[i] = &udpClient{c: c, msg: newMessage(i), buf: make([]byte, 2048), timeout: timeout}
	}
	return l, nil
}

// idleResult is the memory of a server holding many idle connections.
type idleResult struct {
	conns    int
	beforeKB uint64 // VmRSS before connecting
	afterKB  uint64 // VmRSS holding the connections
}

// idleSettle is how long the connections sit idle before VmRSS is read.
const idleSettle = 500 * time.Millisecond

// benchIdle opens n connections to s, each answering one request, reads the
// server's VmRSS while they are idle, and closes them.
func benchIdle(ctx context.Context, s *server, n int) (*idleResult, error) {
	if err := checkFDLimit(n); err != nil {
		return nil, err
	}
	r := &idleResult{conns: n}
	var err error
	if r.beforeKB, err = s.rssKB(); err != nil {
		return nil, err
	}
	conns, err := dialAll(ctx, s.addr, n, true)
	if err != nil {
		return nil, fmt.Errorf("open %d idle connections: %w", n, err)
	}
	defer closeAll(conns)
	if err := sleepCtx(ctx, idleSettle); err != nil {
		return nil, err
	}
	if r.afterKB, err = s.rssKB(); err != nil {
		return nil, err
	}
	return r, s.alive()
}

// checkFDLimit fails early when this process may not open n connections.
func checkFDLimit(n int) error {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return fmt.Errorf("fd limit: %w", err)
	}
	if need := uint64(n) + 64; lim.Cur < need {
		return fmt.Errorf("fd limit %d too low for %d idle connections (raise ulimit -n to %d)", lim.Cur, n, need)
	}
	return nil
}

// logf prints a progress line to stderr.
var logf = benchkit.Logger("tsbench")
