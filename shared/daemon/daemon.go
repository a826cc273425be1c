package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"example.com/appliance/shared/listen"
	"example.com/appliance/shared/netsrv"
)

// Exit codes, as service managers read them.
const (
	ExitOK      = 0  // stopped cleanly
	ExitFailure = 1  // failed while running, or forced to stop
	ExitUsage   = 2  // bad command line
	ExitConfig  = 78 // bad config file (EX_CONFIG): restarting will not help
)

// Base holds what every daemon builds from its Common config: the logger
// with its reloadable level, the metrics registry, the server metrics and
// the admin listener.
type Base struct {
	Name     string               // the daemon's name, the metrics' namespace
	Log      *slog.Logger         // the daemon's logger, with daemon=Name
	Level    *slog.LevelVar       // Log's level, changed by Reload
	Registry *prometheus.Registry // what /metrics serves
	Metrics  *netsrv.Metrics      // the connection core's metrics, on Registry

	format string // the log format in use
	ready  atomic.Bool
	admin  *http.Server
	done   chan struct{} // closed when the admin server stops
}

// NewBase sets up logging to w and metrics for the named daemon.
func NewBase(name string, c Common, w io.Writer) *Base {
	b := &Base{Name: name, Level: new(slog.LevelVar), Registry: prometheus.NewRegistry(), format: c.Log.Format}
	lvl, _ := ParseLevel(c.Log.Level) // validated already
	b.Level.Set(lvl)
	opts := &slog.HandlerOptions{Level: b.Level}
	var h slog.Handler = slog.NewTextHandler(w, opts)
	if c.Log.Format == "json" {
		h = slog.NewJSONHandler(w, opts)
	}
	b.Log = slog.New(h).With("daemon", name)
	b.Log.Info("starting", "version", Version, "pid", os.Getpid())
	b.Registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	b.Metrics = netsrv.NewMetrics(b.Registry, name)
	return b
}

// Reload applies what SIGHUP may change in the shared sections: the log
// level. The log format changes at the next start.
func (b *Base) Reload(c Common) {
	if c.Log.Format != b.format {
		b.Log.Warn("log.format changed; it takes effect at the next restart", "format", b.format, "new_format", c.Log.Format)
	}
	lvl, _ := ParseLevel(c.Log.Level)
	if b.Level.Level() != lvl {
		b.Log.Info("log level changed", "new_level", lvl.String())
		b.Level.Set(lvl)
	}
}

// SetReady marks the daemon ready (or not) for /readyz.
func (b *Base) SetReady(ok bool) { b.ready.Store(ok) }

// StartAdmin serves /metrics, /healthz and /readyz on addr ("" for none)
// and returns the address it is bound to.
func (b *Base) StartAdmin(addr string) (string, error) {
	if addr == "" {
		return "", nil
	}
	a, err := adminAddr(addr)
	if err != nil {
		return "", fmt.Errorf("admin listener: %w", err)
	}
	s, err := listen.Listen(a)
	if err != nil {
		return "", fmt.Errorf("admin listener: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(b.Registry, promhttp.HandlerOpts{ErrorLog: slog.NewLogLogger(b.Log.Handler(), slog.LevelWarn)}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !b.ready.Load() {
			http.Error(w, "not ready", http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, "ready\n")
	})
	b.admin = &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 5 * time.Second,
		IdleTimeout:       time.Minute,
		ErrorLog:          slog.NewLogLogger(b.Log.Handler(), slog.LevelDebug),
	}
	b.done = make(chan struct{})
	go func() {
		defer close(b.done)
		if err := b.admin.Serve(s.Listener); err != nil && !errors.Is(err, http.ErrServerClosed) {
			b.Log.Error("admin listener failed", "err", err)
		}
	}()
	local := s.Local()
	b.Log.Info("admin listening", "addr", local, "paths", "/metrics /healthz /readyz")
	return local, nil
}

// StopAdmin closes the admin listener.
func (b *Base) StopAdmin(ctx context.Context) {
	if b.admin == nil {
		return
	}
	b.admin.Shutdown(ctx)
	<-b.done
}

// Service is a daemon's running part, driven by Run.
type Service interface {
	// Start opens the sockets and starts serving. The daemon is ready
	// when it returns nil.
	Start() error
	// Reload re-reads the config and applies what can change while running.
	Reload() error
	// Shutdown drains: it stops accepting, lets requests in flight finish
	// until ctx ends, then closes the rest.
	Shutdown(ctx context.Context) error
	// Failed delivers an error when serving stops on its own.
	Failed() <-chan error
}

// Runner runs a Service until a signal stops it.
type Runner struct {
	Log     *slog.Logger // where the lifecycle is logged
	Service Service      // what runs
	// Grace returns the drain period in force (it can change on reload).
	Grace func() time.Duration
	// Signals, when set, replaces the process's SIGINT, SIGTERM and SIGHUP.
	Signals <-chan os.Signal
	// Ready, when set, is told when the daemon becomes ready or stops being so.
	Ready func(bool)
}

// Run starts the service and serves until SIGINT or SIGTERM, reloading on
// SIGHUP. It then drains for the grace period; a second signal or the end
// of the grace period forces the exit. It returns the exit code.
func (r *Runner) Run() int {
	sigc := r.Signals
	if sigc == nil {
		c := make(chan os.Signal, 4)
		signal.Notify(c, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
		defer signal.Stop(c)
		sigc = c
	}
	ready := r.Ready
	if ready == nil {
		ready = func(bool) {}
	}
	if err := r.Service.Start(); err != nil {
		r.Log.Error("start failed", "err", err)
		return ExitFailure
	}
	ready(true)
	r.Log.Info("ready")

	code := ExitOK
wait:
	for {
		select {
		case sig := <-sigc:
			if sig == syscall.SIGHUP {
				if err := r.Service.Reload(); err != nil {
					r.Log.Error("reload failed; keeping the running config", "err", err)
				} else {
					r.Log.Info("config reloaded")
				}
				continue
			}
			r.Log.Info("shutting down", "signal", sig.String(), "grace", r.Grace().String())
			break wait
		case err := <-r.Service.Failed():
			r.Log.Error("serving failed; shutting down", "err", err)
			code = ExitFailure
			break wait
		}
	}
	ready(false)

	ctx, cancel := context.WithTimeout(context.Background(), r.Grace())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- r.Service.Shutdown(ctx) }()
	for {
		select {
		case err := <-done:
			if err != nil {
				r.Log.Warn("grace period over; closed the connections still open", "err", err)
				return ExitFailure
			}
			r.Log.Info("stopped")
			return code
		case sig := <-sigc:
			if sig == syscall.SIGHUP {
				continue
			}
			r.Log.Warn("second signal; exiting now", "signal", sig.String())
			return ExitFailure
		}
	}
}

// Addrs returns the local addresses of a set of sockets, for logs.
func Addrs(socks []listen.Socket) []string {
	out := make([]string, len(socks))
	for i, s := range socks {
		out[i] = s.Local()
	}
	return out
}

// Serve runs srv on every socket, each on its own goroutine, and returns a
// channel that delivers the first error other than netsrv.ErrServerClosed.
func Serve(srv *netsrv.Server, socks []listen.Socket) <-chan error {
	errc := make(chan error, len(socks))
	for _, s := range socks {
		go func() {
			var err error
			if s.Listener != nil {
				err = srv.Serve(s.Listener)
			} else {
				err = srv.ServePacket(s.PacketConn)
			}
			if !errors.Is(err, netsrv.ErrServerClosed) {
				errc <- fmt.Errorf("serve %s: %w", s.Local(), err)
			}
		}()
	}
	return errc
}
