package server

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/OpenPrinting/goipp"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/crypto/bcrypt"

	"example.com/appliance/printsrv/internal/ipp"
	"example.com/appliance/printsrv/internal/spool"
	"example.com/appliance/shared/daemon"
	"example.com/appliance/shared/listen"
	"example.com/appliance/shared/netsrv"
)

// Service is a running printsrv. It implements daemon.Service.
type Service struct {
	base    *daemon.Base
	reload  func() (Config, error)
	srv     *netsrv.Server
	metrics *metrics

	state atomic.Pointer[state] // what SIGHUP may change

	mu     sync.Mutex
	cfg    Config
	socks  []listen.Socket
	tls    []listen.Socket
	http   *http.Server
	spool  *spool.Spool
	admin  string
	failed chan error
	closed bool // Shutdown has closed the spool

	open     *ipp.OpenJobs // jobs waiting for documents, across reloads
	stop     chan struct{} // closed by Shutdown: ends the sweeper
	sweeping sync.WaitGroup
}

// state is the part of the config requests read, swapped whole on reload.
type state struct {
	handler     *ipp.Handler
	users       map[string]string // name -> secret as configured
	maxMessage  int64
	maxJobBytes int64
}

var _ daemon.Service = (*Service)(nil)

// metrics counts IPP operations.
type metrics struct {
	ops      *prometheus.CounterVec
	duration *prometheus.HistogramVec
	inFlight prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer, ns string) *metrics {
	m := &metrics{
		ops: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Name: "ipp_requests_total",
			Help: "IPP requests answered, by operation and status.",
		}, []string{"operation", "status"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: ns, Name: "ipp_request_duration_seconds",
			Help:    "Time to answer an IPP request, document upload included.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 4, 10),
		}, []string{"operation"}),
	}
	m.inFlight = prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: ns, Name: "ipp_requests_in_flight",
		Help: "IPP requests decoded and not yet answered (documents being received among them).",
	})
	reg.MustRegister(m.ops, m.duration, m.inFlight)
	return m
}

// New prepares a Service for cfg; reload re-reads the config on SIGHUP.
func New(cfg Config, base *daemon.Base, reload func() (Config, error)) *Service {
	srv := &netsrv.Server{Logger: base.Log, Metrics: base.Metrics}
	srv.SetLimits(cfg.Limits.Net())
	return &Service{base: base, reload: reload, srv: srv, cfg: cfg, metrics: newMetrics(base.Registry, base.Name),
		open: new(ipp.OpenJobs), stop: make(chan struct{})}
}

func (s *Service) newState(cfg Config, started time.Time) *state {
	h := &ipp.Handler{
		Spool:     s.spool,
		Default:   cfg.defaultPrinter(),
		Operators: slices.Clone(cfg.Operators),
		Log:       s.base.Log,
		AuthBasic: len(cfg.Auth.Users) > 0,
		Started:   started,
		Open:      s.open,
	}
	for _, p := range cfg.Printers {
		md := p.MediaDefault
		if md == "" {
			md = p.Media[0]
		}
		h.Printers = append(h.Printers, ipp.Printer{
			Name: p.Name, MakeAndModel: p.MakeAndModel, Location: p.Location, Info: p.Info,
			Formats: p.Formats, PagesPerMinute: p.PagesPerMinute, Color: p.Color, Duplex: p.Duplex,
			Media: p.Media, MediaDefault: md,
		})
	}
	users := map[string]string{}
	for _, u := range cfg.Auth.Users {
		n, secret, _ := strings.Cut(u, ":")
		users[n] = secret
	}
	return &state{handler: h, users: users, maxMessage: int64(cfg.Limits.MaxMessageBytes), maxJobBytes: cfg.MaxJobBytes}
}

// Start implements daemon.Service: it opens the spool, then the sockets.
func (s *Service) Start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	cfg := s.cfg
	var printers []spool.PrinterConfig
	for _, p := range cfg.Printers {
		printers = append(printers, spool.PrinterConfig{Name: p.Name, PagesPerMinute: p.PagesPerMinute,
			Tray: filepath.Join(cfg.StateDir, "tray", p.Name)})
	}
	sp, err := spool.Open(spool.Options{
		Dir: filepath.Join(cfg.StateDir, "spool"), Printers: printers,
		MaxJobBytes: cfg.MaxJobBytes, History: cfg.History.Duration, Logger: s.base.Log,
	})
	if err != nil {
		return fmt.Errorf("open spool: %w", err)
	}
	var tlsCfg *tls.Config
	if len(cfg.TLS.Listen) > 0 {
		if tlsCfg, err = loadTLS(cfg, s.base.Log); err != nil {
			sp.Close()
			return err
		}
	}
	socks, err := listen.Open(cfg.Listen)
	if err != nil {
		sp.Close()
		return err
	}
	tlsSocks, err := listen.Open(cfg.TLS.Listen)
	if err != nil {
		closeAll(socks)
		sp.Close()
		return err
	}
	admin, err := s.base.StartAdmin(cfg.Admin.Listen)
	if err != nil {
		closeAll(socks)
		closeAll(tlsSocks)
		sp.Close()
		return err
	}
	s.spool, s.socks, s.tls, s.admin = sp, socks, tlsSocks, admin
	s.state.Store(s.newState(cfg, time.Now()))
	s.http = &http.Server{
		Handler:           s,
		ReadHeaderTimeout: cfg.Limits.ReadTimeout.Duration,
		IdleTimeout:       cfg.Limits.IdleTimeout.Duration,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(s.base.Log.Handler(), slog.LevelDebug),
	}
	s.failed = make(chan error, len(socks)+len(tlsSocks))
	serve := func(so listen.Socket, l net.Listener, scheme string) {
		s.base.Log.Info("listening", "addr", so.Local(), "inherited", so.Inherited, "scheme", scheme)
		go func() {
			if err := s.http.Serve(l); !errors.Is(err, http.ErrServerClosed) && !errors.Is(err, netsrv.ErrServerClosed) {
				s.failed <- fmt.Errorf("serve %s: %w", so.Local(), err)
			}
		}()
	}
	for _, so := range socks {
		serve(so, s.srv.TrackListener(so.Listener), "ipp")
	}
	for _, so := range tlsSocks {
		serve(so, tls.NewListener(s.srv.TrackListener(so.Listener), tlsCfg), "ipps")
	}
	s.sweeping.Add(1)
	go s.sweep()
	return nil
}

// sweep closes, now and then, the jobs whose client stopped sending
// documents (see ipp.OperationTimeout).
func (s *Service) sweep() {
	defer s.sweeping.Done()
	t := time.NewTicker(ipp.OperationTimeout / 10)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case now := <-t.C:
			s.state.Load().handler.CloseStale(now)
		}
	}
}

func closeAll(socks []listen.Socket) {
	for _, so := range socks {
		so.Close()
	}
}

// Addrs returns the bound IPP addresses, e.g. tcp/127.0.0.1:40123.
func (s *Service) Addrs() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return daemon.Addrs(s.socks)
}

// TLSAddrs returns the bound IPPS addresses.
func (s *Service) TLSAddrs() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return daemon.Addrs(s.tls)
}

// AdminAddr returns the admin listener's bound address, or "".
func (s *Service) AdminAddr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.admin
}

// Spool returns the job store, for tests that look inside.
func (s *Service) Spool() *spool.Spool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.spool
}

// Reload implements daemon.Service: log level, limits, operators and
// users change at once; addresses, queues and the spool need a restart.
func (s *Service) Reload() error {
	cfg, err := s.reload()
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.base.Reload(cfg.Common)
	s.srv.SetLimits(cfg.Limits.Net())
	if !slices.Equal(cfg.Listen, s.cfg.Listen) || !slices.Equal(cfg.TLS.Listen, s.cfg.TLS.Listen) || cfg.Admin != s.cfg.Admin {
		s.base.Log.Warn("listen addresses changed; they take effect at the next restart")
		cfg.Listen, cfg.TLS.Listen, cfg.Admin = s.cfg.Listen, s.cfg.TLS.Listen, s.cfg.Admin
	}
	if cfg.StateDir != s.cfg.StateDir || cfg.History != s.cfg.History || cfg.MaxJobBytes != s.cfg.MaxJobBytes ||
		!printersEqual(cfg.Printers, s.cfg.Printers) || cfg.TLS.Cert != s.cfg.TLS.Cert || cfg.TLS.Key != s.cfg.TLS.Key {
		s.base.Log.Warn("queues, state_dir, history or max_job_bytes changed; they take effect at the next restart")
		cfg.StateDir, cfg.History, cfg.MaxJobBytes, cfg.Printers = s.cfg.StateDir, s.cfg.History, s.cfg.MaxJobBytes, s.cfg.Printers
		cfg.DefaultPrinter = s.cfg.DefaultPrinter
	}
	if s.spool != nil {
		old := s.state.Load()
		s.state.Store(s.newState(cfg, old.handler.Started))
	}
	s.cfg = cfg
	return nil
}

func printersEqual(a, b []Printer) bool {
	return slices.EqualFunc(a, b, func(x, y Printer) bool {
		return x.Name == y.Name && x.MakeAndModel == y.MakeAndModel && x.Location == y.Location && x.Info == y.Info &&
			slices.Equal(x.Formats, y.Formats) && x.PagesPerMinute == y.PagesPerMinute && x.Color == y.Color &&
			x.Duplex == y.Duplex && slices.Equal(x.Media, y.Media) && x.MediaDefault == y.MediaDefault
	})
}

// Shutdown implements daemon.Service: requests in flight finish (net/http's
// Shutdown), then the connection core closes what is left, then the spool.
func (s *Service) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	hs, sp := s.http, s.spool
	closed := s.closed
	s.closed = true
	s.mu.Unlock()
	if !closed {
		close(s.stop)
		s.sweeping.Wait()
	}
	var err error
	if hs != nil {
		err = hs.Shutdown(ctx)
	}
	if e := s.srv.Shutdown(ctx); err == nil {
		err = e
	}
	s.mu.Lock()
	closeAll(s.socks)
	closeAll(s.tls)
	s.mu.Unlock()
	if sp != nil && !closed {
		if e := sp.Close(); e != nil && err == nil {
			err = fmt.Errorf("close spool: %w", e)
		}
	}
	s.base.StopAdmin(ctx)
	return err
}

// Failed implements daemon.Service.
func (s *Service) Failed() <-chan error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.failed
}

// Grace returns the shutdown grace period in force.
func (s *Service) Grace() time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cfg.ShutdownGrace.Duration
}

// needsAuth lists the operations that need an authenticated user when
// [auth] has users: everything that creates or changes jobs or queues.
var needsAuth = map[goipp.Op]bool{
	goipp.OpPrintJob: true, goipp.OpValidateJob: true, goipp.OpCreateJob: true, goipp.OpSendDocument: true,
	goipp.OpCloseJob: true, goipp.OpCancelJob: true, goipp.OpCancelJobs: true, goipp.OpCancelMyJobs: true,
	goipp.OpHoldJob: true, goipp.OpReleaseJob: true, goipp.OpPausePrinter: true, goipp.OpResumePrinter: true,
	goipp.OpIdentifyPrinter: true,
}

// ServeHTTP answers IPP POSTs, and GETs of the pages printer-more-info
// and printer-icons name.
func (s *Service) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	st := s.state.Load()
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		s.serveGet(w, r, st)
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "GET, HEAD, POST")
		http.Error(w, "IPP wants POST", http.StatusMethodNotAllowed)
		return
	}
	if ct, _, _ := strings.Cut(r.Header.Get("Content-Type"), ";"); !strings.EqualFold(strings.TrimSpace(ct), "application/ipp") {
		http.Error(w, "Content-Type must be application/ipp", http.StatusBadRequest)
		return
	}
	start := time.Now()
	body := &limitReader{r: r.Body, n: st.maxMessage}
	var msg goipp.Message
	if err := msg.Decode(body); err != nil {
		code := http.StatusBadRequest
		if body.hit {
			code = http.StatusRequestEntityTooLarge
		}
		s.metrics.ops.WithLabelValues("undecodable", http.StatusText(code)).Inc()
		s.base.Log.Debug("undecodable IPP request", "remote", r.RemoteAddr, "err", err)
		http.Error(w, "bad IPP request: "+err.Error(), code)
		return
	}
	s.metrics.inFlight.Inc()
	defer s.metrics.inFlight.Dec()
	// The document follows the message: it may be as long as a job.
	body.n = st.maxJobBytes + 1<<20
	op := goipp.Op(msg.Code)
	opLabel := "other" // clients choose the code: keep the label set small
	if ipp.Supported(op) {
		opLabel = op.String()
	}
	user := ""
	if len(st.users) > 0 {
		u, p, ok := r.BasicAuth()
		switch {
		case ok && checkPassword(st.users[u], p):
			user = u
		case ok || needsAuth[op]:
			w.Header().Set("WWW-Authenticate", `Basic realm="printsrv"`)
			s.metrics.ops.WithLabelValues(opLabel, "unauthenticated").Inc()
			http.Error(w, "authentication required", http.StatusUnauthorized)
			return
		}
	}
	req := &ipp.Request{Msg: &msg, Doc: body, Host: r.Host, TLS: r.TLS != nil, User: user}
	resp := st.handler.Serve(r.Context(), req)
	status := goipp.Status(resp.Code)
	s.metrics.ops.WithLabelValues(opLabel, status.String()).Inc()
	s.metrics.duration.WithLabelValues(opLabel).Observe(time.Since(start).Seconds())
	buf := encodeBufs.Get().(*bytes.Buffer)
	defer putEncodeBuf(buf)
	err := resp.Encode(buf)
	b := buf.Bytes()
	if err != nil {
		s.base.Log.Error("encode IPP response", "op", op.String(), "err", err)
		http.Error(w, "cannot encode the response", http.StatusInternalServerError)
		return
	}
	lvl := slog.LevelDebug
	if ipp.IsInternal(status) {
		lvl = slog.LevelWarn
	}
	// Checked first: the arguments cost allocations even when not logged.
	if s.base.Log.Enabled(r.Context(), lvl) {
		s.base.Log.Log(r.Context(), lvl, "ipp request", "remote", r.RemoteAddr, "op", op.String(), "status", status.String(),
			"user", user, "duration", time.Since(start))
	}
	// Read a little of what the client may still be sending (a refused
	// document) so that it sees the answer rather than a reset.
	io.CopyN(io.Discard, body, 256<<10)
	w.Header().Set("Content-Type", "application/ipp")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.Write(b)
}

// encodeBufs hold encoded responses: a Get-Jobs or Get-Printer-Attributes
// answer is tens of kilobytes, which a fresh buffer reaches by growing
// and copying several times.
var encodeBufs = sync.Pool{New: func() any { return new(bytes.Buffer) }}

func putEncodeBuf(b *bytes.Buffer) {
	if b.Cap() > 1<<20 { // an unusually large answer: let it go
		return
	}
	b.Reset()
	encodeBufs.Put(b)
}

// serveGet answers the web pages the printer attributes point at.
func (s *Service) serveGet(w http.ResponseWriter, r *http.Request, st *state) {
	switch {
	case r.URL.Path == "/icon.png":
		w.Header().Set("Content-Type", "image/png")
		w.Write(iconPNG)
	case r.URL.Path == "/" || strings.HasPrefix(r.URL.Path, "/printers/") && !strings.HasSuffix(r.URL.Path, ".ppd"):
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		name := strings.TrimPrefix(r.URL.Path, "/printers/")
		for _, p := range st.handler.Printers {
			if r.URL.Path != "/" && p.Name != name {
				continue
			}
			ps, err := s.spool.Printer(p.Name)
			if err != nil {
				continue
			}
			fmt.Fprintf(w, "%s\t%s\t%s\tstate %d\tqueued %d\n", p.Name, p.MakeAndModel, p.Location, ps.State, ps.QueuedJobs)
		}
	default:
		http.NotFound(w, r)
	}
}

// checkPassword compares a password with a configured bcrypt hash (the
// form "htpasswd -nB" writes).
func checkPassword(hash, password string) bool {
	return hash != "" && bcrypt.CompareHashAndPassword([]byte(hash), []byte(password)) == nil
}

// limitReader reads at most n bytes and remembers hitting the limit.
type limitReader struct {
	r   io.Reader
	n   int64
	hit bool
}

func (l *limitReader) Read(p []byte) (int, error) {
	if l.n <= 0 {
		l.hit = true
		return 0, errTooLarge
	}
	if int64(len(p)) > l.n {
		p = p[:l.n]
	}
	n, err := l.r.Read(p)
	l.n -= int64(n)
	if err != nil && err != io.EOF {
		err = fmt.Errorf("%w: %w", ipp.ErrDocument, err)
	}
	return n, err
}

var errTooLarge = fmt.Errorf("request body too large: %w", spool.ErrTooLarge)

const usage = `Printsrv is the appliance's IPP print server: lp, lpstat, cancel, ipptool
and every IPP Everywhere client print to its queues, each a virtual printer
that "prints" into an output tray folder.

Usage: printsrv [flags]

With no flags it serves IPP on http://127.0.0.1:8631 (ipp://127.0.0.1:8631/printers/office
and .../printers/lab; the default queue also at /ipp/print), keeps its state in
./var/printsrv, and serves /metrics, /healthz and /readyz on http://127.0.0.1:9631.
Settings come from the built-in defaults, then -config FILE (TOML; see
configs/printsrv.toml for every key and its default), then the flags below.

Signals: SIGINT or SIGTERM drain and stop (a second one stops at once),
SIGHUP re-reads the config (log level, limits, operators and users).
Exit status: 0 stopped cleanly, 1 failed or forced to stop, 2 bad usage,
78 bad config.

Flags:
`

// Main runs printsrv with the command-line arguments args, logging to
// stderr, and returns its exit status. sig, when set, replaces the
// process's signals.
func Main(args []string, stderr io.Writer, sig <-chan os.Signal) int {
	return daemon.Main(daemon.Command[Config]{
		Name:     "printsrv",
		Usage:    usage,
		Examples: "  printsrv -listen tcp/:631 -state-dir /var/lib/printsrv\n  printsrv -config /etc/appliance/printsrv.toml\n  lp -h 127.0.0.1:8631 -d office file.pdf\n",
		Flags:    NewFlags,
		New: func(cfg Config, base *daemon.Base, reload func() (Config, error)) daemon.GracefulService {
			return New(cfg, base, reload)
		},
	}, args, stderr, sig)
}
