package server

import (
	"context"
	"io"
	"os"
	"slices"
	"sync"
	"time"

	"example.com/appliance/shared/daemon"
	"example.com/appliance/shared/listen"
	"example.com/appliance/shared/netsrv"
	"example.com/appliance/tsserv/internal/timeproto"
)

// Service is a running tsserv. It implements daemon.Service.
type Service struct {
	base    *daemon.Base
	reload  func() (Config, error)
	handler *timeproto.Handler
	srv     *netsrv.Server

	mu     sync.Mutex
	cfg    Config
	socks  []listen.Socket
	admin  string
	failed <-chan error
}

var _ daemon.Service = (*Service)(nil)

// New prepares a Service for cfg; reload re-reads the config on SIGHUP.
func New(cfg Config, base *daemon.Base, reload func() (Config, error)) *Service {
	h := &timeproto.Handler{}
	f, _ := timeproto.ParseFormat(cfg.Format) // validated already
	h.SetFormat(f)
	srv := &netsrv.Server{Handler: h, PacketHandler: h, Logger: base.Log, Metrics: base.Metrics}
	srv.SetLimits(cfg.Limits.Net())
	return &Service{base: base, reload: reload, handler: h, srv: srv, cfg: cfg}
}

// Start implements daemon.Service.
func (s *Service) Start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	socks, err := listen.Open(s.cfg.Listen)
	if err != nil {
		return err
	}
	admin, err := s.base.StartAdmin(s.cfg.Admin.Listen)
	if err != nil {
		for _, so := range socks {
			so.Close()
		}
		return err
	}
	for _, so := range socks {
		s.base.Log.Info("listening", "addr", so.Local(), "inherited", so.Inherited, "format", s.cfg.Format)
	}
	s.socks, s.admin = socks, admin
	s.failed = daemon.Serve(s.srv, socks)
	return nil
}

// Addrs returns the bound addresses, e.g. tcp/127.0.0.1:40123.
func (s *Service) Addrs() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return daemon.Addrs(s.socks)
}

// AdminAddr returns the admin listener's bound address, or "".
func (s *Service) AdminAddr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.admin
}

// Server returns the connection core serving the sockets.
func (s *Service) Server() *netsrv.Server { return s.srv }

// Reload implements daemon.Service: log level, limits and format change at
// once; listen addresses and the admin listener need a restart.
func (s *Service) Reload() error {
	cfg, err := s.reload()
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.base.Reload(cfg.Common)
	s.srv.SetLimits(cfg.Limits.Net())
	f, _ := timeproto.ParseFormat(cfg.Format)
	s.handler.SetFormat(f)
	if !slices.Equal(cfg.Listen, s.cfg.Listen) || cfg.Admin != s.cfg.Admin {
		s.base.Log.Warn("listen addresses changed; they take effect at the next restart")
		cfg.Listen, cfg.Admin = s.cfg.Listen, s.cfg.Admin
	}
	s.cfg = cfg
	return nil
}

// Shutdown implements daemon.Service.
func (s *Service) Shutdown(ctx context.Context) error {
	err := s.srv.Shutdown(ctx)
	// daemon.Serve hands each socket to the server on a goroutine of its
	// own; one that has not reached Serve yet when Shutdown comes right
	// after Start stays open until it does. The sockets are ours: close
	// them now (a second Close is harmless).
	s.mu.Lock()
	for _, so := range s.socks {
		so.Close()
	}
	s.mu.Unlock()
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

const usage = `Tsserv is the appliance's timestamp service: every message a client sends
comes back as "[<time>] <message>", over TCP, UDP and Unix sockets.

Usage: tsserv [flags]

With no flags it serves TCP and UDP on port 21567 on every interface (IPv4 and
IPv6), and /metrics, /healthz and /readyz on http://127.0.0.1:9121.
Settings come from the built-in defaults, then -config FILE (TOML; see
configs/tsserv.toml for every key and its default), then the flags below.

Signals: SIGINT or SIGTERM drain and stop (a second one stops at once),
SIGHUP re-reads the config (log level, limits and format).
Exit status: 0 stopped cleanly, 1 failed or forced to stop, 2 bad usage,
78 bad config.

Flags:
`

// Main runs tsserv with the command-line arguments args, logging to
// stderr, and returns its exit status. sig, when set, replaces the
// process's signals.
func Main(args []string, stderr io.Writer, sig <-chan os.Signal) int {
	return daemon.Main(daemon.Command[Config]{
		Name:     "tsserv",
		Usage:    usage,
		Examples: "  tsserv -listen tcp/[::]:21567 -listen unix//run/tsserv.sock\n  tsserv -config /etc/appliance/tsserv.toml\n",
		Flags:    NewFlags,
		New: func(cfg Config, base *daemon.Base, reload func() (Config, error)) daemon.GracefulService {
			return New(cfg, base, reload)
		},
	}, args, stderr, sig)
}
