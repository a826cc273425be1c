package server

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"reflect"
	"slices"
	"sync"
	"time"

	"example.com/appliance/filesrv/internal/export"
	"example.com/appliance/filesrv/internal/gonfs"
	"example.com/appliance/filesrv/internal/handles"
	"example.com/appliance/filesrv/internal/mountd"
	"example.com/appliance/filesrv/internal/nfs3"
	"example.com/appliance/filesrv/internal/oncrpc"
	"example.com/appliance/filesrv/internal/portmap"
	"example.com/appliance/shared/daemon"
	"example.com/appliance/shared/listen"
	"example.com/appliance/shared/netsrv"
)

// Service is a running filesrv. It implements daemon.Service.
type Service struct {
	base   *daemon.Base
	reload func() (Config, error)
	// rpc serves NFS and MOUNT on the listen sockets; pmap serves the
	// portmapper on its own sockets, so port 111 answers nothing else.
	rpc, pmap *netsrv.Server
	// rpcMetrics counts calls by program and procedure.
	rpcMetrics *oncrpc.Metrics

	mu      sync.Mutex
	cfg     Config
	socks   []listen.Socket // NFS and MOUNT
	pmSocks []listen.Socket // portmapper
	admin   string
	failed  chan error
	serving sync.WaitGroup // the serve loops
	exps    []*export.Export
	store   *handles.Store
	nfs     *nfs3.Server
	fwd     *gonfs.Forwarder
	ports   *portmap.Server
	started bool
}

var _ daemon.Service = (*Service)(nil)

// New prepares a Service for cfg; reload re-reads the config on SIGHUP.
func New(cfg Config, base *daemon.Base, reload func() (Config, error)) *Service {
	s := &Service{base: base, reload: reload, cfg: cfg, rpcMetrics: oncrpc.NewMetrics(base.Registry, base.Name)}
	s.rpc = &netsrv.Server{Logger: base.Log, Metrics: base.Metrics}
	s.pmap = &netsrv.Server{Logger: base.Log, Metrics: base.Metrics}
	s.rpc.SetLimits(cfg.Limits.Net())
	s.pmap.SetLimits(cfg.Limits.Net())
	return s
}

// Start implements daemon.Service: it opens the exports and the handle
// index, then the sockets, and starts serving.
func (s *Service) Start() (err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started {
		return errors.New("filesrv: already started")
	}
	var undo []func()
	defer func() {
		if err != nil {
			for _, f := range slices.Backward(undo) {
				f()
			}
		}
	}()
	log := s.base.Log

	exps, err := openExports(s.cfg.Exports)
	if err != nil {
		return err
	}
	undo = append(undo, func() { closeExports(exps) })
	store, err := handles.Open(s.cfg.StateDir, exps)
	if err != nil {
		return fmt.Errorf("open handle index in %s: %w", s.cfg.StateDir, err)
	}
	undo = append(undo, func() { store.Close() })
	fwd := gonfs.NewForwarder(gonfs.NewHandler(store, exps), 0, log)
	undo = append(undo, func() { fwd.Close() })
	var verf [8]byte
	rand.Read(verf[:]) // a new write verifier each start tells clients to resend uncommitted writes
	nfs := nfs3.New(nfs3.Config{
		Exports:  exps,
		Handles:  store,
		Forward:  fwd.Forward,
		Logger:   log,
		Verifier: verf,
		MaxIO:    s.cfg.MaxIO,
	})
	undo = append(undo, func() { nfs.Close() })
	mnt := mountd.New(mountd.Config{Exports: exps, Handles: store, Logger: log})

	socks, err := listen.Open(s.cfg.Listen)
	if err != nil {
		return err
	}
	undo = append(undo, func() { closeSockets(socks) })
	pmSocks, err := listen.Open(s.cfg.Portmap)
	if err != nil {
		return fmt.Errorf("portmapper: %w", err)
	}
	undo = append(undo, func() { closeSockets(pmSocks) })
	admin, err := s.base.StartAdmin(s.cfg.Admin.Listen)
	if err != nil {
		return err
	}

	rpc := &oncrpc.Server{Logger: log, Metrics: s.rpcMetrics}
	rpc.Register(nfs3.Program, nfs3.Version, nfs)
	registerMountd(rpc, mnt)
	ports := portmap.New(mappings(socks, pmSocks))
	pm := &oncrpc.Server{Logger: log, Metrics: s.rpcMetrics}
	pm.Register(portmap.Program, portmap.Version, ports)
	s.rpc.Handler = &clientFilter{exps: exps, next: rpc}
	s.pmap.Handler, s.pmap.PacketHandler = pm, pm

	for _, so := range socks {
		log.Info("listening", "addr", so.Local(), "inherited", so.Inherited, "programs", "nfs v3, mount v3")
	}
	for _, so := range pmSocks {
		log.Info("listening", "addr", so.Local(), "inherited", so.Inherited, "programs", "portmapper v2")
	}
	for _, e := range exps {
		log.Info("exporting", "path", e.Path, "dir", e.Dir, "read_only", e.ReadOnly, "clients", fmt.Sprint(e.Clients))
	}
	s.exps, s.store, s.fwd, s.nfs, s.ports = exps, store, fwd, nfs, ports
	s.socks, s.pmSocks, s.admin = socks, pmSocks, admin
	s.failed = make(chan error, len(socks)+len(pmSocks))
	s.serve(s.rpc, socks)
	s.serve(s.pmap, pmSocks)
	s.started = true
	return nil
}

// serve runs srv on each socket; the first error other than
// ErrServerClosed goes to Failed.
func (s *Service) serve(srv *netsrv.Server, socks []listen.Socket) {
	for _, so := range socks {
		s.serving.Add(1)
		go func() {
			defer s.serving.Done()
			var err error
			if so.Listener != nil {
				err = srv.Serve(so.Listener)
			} else {
				err = srv.ServePacket(so.PacketConn)
			}
			if !errors.Is(err, netsrv.ErrServerClosed) {
				s.failed <- fmt.Errorf("serve %s: %w", so.Local(), err)
			}
		}()
	}
}

// clientFilter closes NFS and MOUNT connections from addresses that no
// export lists in its clients, before they can send a call: a file
// handle is no password, and nfs3 does not check the client of each call.
type clientFilter struct {
	exps []*export.Export
	next netsrv.StreamHandler
}

// ServeConn implements netsrv.StreamHandler.
func (f *clientFilter) ServeConn(ctx context.Context, c net.Conn) error {
	var addr netip.Addr
	if ta, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		addr = ta.AddrPort().Addr()
	}
	for _, e := range f.exps {
		if addr.IsValid() && e.Allowed(addr) {
			return f.next.ServeConn(ctx, c)
		}
	}
	return fmt.Errorf("%w: %v is in no export's clients", netsrv.ErrBadRequest, c.RemoteAddr())
}

// mappings lists what the portmapper publishes: NFS and MOUNT on the
// first TCP listen socket, and the portmapper itself.
func mappings(socks, pmSocks []listen.Socket) []portmap.Mapping {
	var maps []portmap.Mapping
	if len(socks) > 0 {
		p := portOf(socks[0].Local())
		maps = append(maps,
			portmap.Mapping{Prog: nfs3.Program, Vers: nfs3.Version, Prot: portmap.TCP, Port: p})
		for _, v := range mountVersions {
			maps = append(maps, portmap.Mapping{Prog: mountProgram, Vers: v, Prot: portmap.TCP, Port: p})
		}
	}
	seen := map[portmap.Mapping]bool{}
	for _, so := range pmSocks {
		m := portmap.Mapping{Prog: portmap.Program, Vers: portmap.Version, Prot: portmap.TCP, Port: portOf(so.Local())}
		if so.PacketConn != nil {
			m.Prot = portmap.UDP
		}
		if !seen[m] {
			seen[m] = true
			maps = append(maps, m)
		}
	}
	return maps
}

// openExports creates missing export folders and opens each as an os.Root.
func openExports(cfgs []ExportConfig) ([]*export.Export, error) {
	var exps []*export.Export
	for _, ec := range cfgs {
		prefixes, err := ec.prefixes()
		if err != nil {
			closeExports(exps)
			return nil, err
		}
		squash, _ := parseSquash(ec.Squash) // validated already
		uid, gid := ec.anon()
		if err := os.MkdirAll(ec.Dir, 0o755); err != nil {
			closeExports(exps)
			return nil, fmt.Errorf("export %s: %w", ec.Path, err)
		}
		root, err := os.OpenRoot(ec.Dir)
		if err != nil {
			closeExports(exps)
			return nil, fmt.Errorf("export %s: %w", ec.Path, err)
		}
		exps = append(exps, &export.Export{
			Path:     ec.Path,
			Dir:      ec.Dir,
			Root:     root,
			ReadOnly: ec.ReadOnly,
			Clients:  prefixes,
			Squash:   squash,
			AnonUID:  uid,
			AnonGID:  gid,
			ID:       export.IDFor(ec.Path),
		})
	}
	return exps, nil
}

func closeExports(exps []*export.Export) {
	for _, e := range exps {
		e.Root.Close()
	}
}

func closeSockets(socks []listen.Socket) {
	for _, so := range socks {
		so.Close()
	}
}

// Addrs returns the bound NFS and MOUNT addresses, e.g. tcp/127.0.0.1:40123.
func (s *Service) Addrs() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return daemon.Addrs(s.socks)
}

// PortmapAddrs returns the bound portmapper addresses.
func (s *Service) PortmapAddrs() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return daemon.Addrs(s.pmSocks)
}

// AdminAddr returns the admin listener's bound address, or "".
func (s *Service) AdminAddr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.admin
}

// Server returns the connection core serving NFS and MOUNT.
func (s *Service) Server() *netsrv.Server { return s.rpc }

// Reload implements daemon.Service: log level and limits change at once;
// addresses, exports and the rest need a restart.
func (s *Service) Reload() error {
	cfg, err := s.reload()
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.base.Reload(cfg.Common)
	s.rpc.SetLimits(cfg.Limits.Net())
	s.pmap.SetLimits(cfg.Limits.Net())
	old := s.cfg
	if !slices.Equal(cfg.Listen, old.Listen) || !slices.Equal(cfg.Portmap, old.Portmap) || cfg.Admin != old.Admin ||
		cfg.StateDir != old.StateDir || cfg.MaxIO != old.MaxIO || !reflect.DeepEqual(cfg.Exports, old.Exports) {
		s.base.Log.Warn("addresses, exports, state_dir or max_io changed; they take effect at the next restart")
		cfg.Listen, cfg.Portmap, cfg.Admin = old.Listen, old.Portmap, old.Admin
		cfg.StateDir, cfg.MaxIO, cfg.Exports = old.StateDir, old.MaxIO, old.Exports
	}
	s.cfg = cfg
	return nil
}

// Shutdown implements daemon.Service: it stops accepting, drains the
// calls in flight, then closes the NFS file cache, the go-nfs pool, the
// handle index (saving it) and the exports.
func (s *Service) Shutdown(ctx context.Context) error {
	err := errors.Join(s.rpc.Shutdown(ctx), s.pmap.Shutdown(ctx))
	s.mu.Lock()
	defer s.mu.Unlock()
	// A serve goroutine that has not reached Serve yet when Shutdown
	// comes right after Start leaves its socket open: close them all.
	closeSockets(s.socks)
	closeSockets(s.pmSocks)
	s.serving.Wait()
	if s.started {
		s.started = false
		if cerr := s.nfs.Close(); cerr != nil {
			err = errors.Join(err, fmt.Errorf("close nfs file cache: %w", cerr))
		}
		// go-nfs goes before the index: after a forced drain, forwarded
		// calls may still be running, and they use the index.
		s.fwd.Close()
		if cerr := s.store.Close(); cerr != nil {
			err = errors.Join(err, fmt.Errorf("save handle index: %w", cerr))
		}
		closeExports(s.exps)
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

const usage = `Filesrv is the appliance's NFSv3 file server: laptops mount its exports
(NFS and MOUNT over TCP on one port, a portmapper over TCP and UDP).

Usage: filesrv [flags]

With no flags it exports ./var/export as /export to this machine only, NFS
and MOUNT on tcp/127.0.0.1:12049, the portmapper on 127.0.0.1:12111, file
handles kept in ./var/filesrv, and /metrics, /healthz and /readyz on
http://127.0.0.1:9123. The appliance's config (configs/filesrv.toml) uses
ports 2049 and 111, which clients find without options.
Settings come from the built-in defaults, then -config FILE (TOML; see
configs/filesrv.toml for every key and its default), then the flags below.

Clients mount with NFS version 3 over TCP and without locking, e.g.
  mount -t nfs -o vers=3,proto=tcp,nolock appliance.local:/export /mnt

Signals: SIGINT or SIGTERM drain and stop (a second one stops at once),
SIGHUP re-reads the config (log level and limits).
Exit status: 0 stopped cleanly, 1 failed or forced to stop, 2 bad usage,
78 bad config.

Flags:
`

// Main runs filesrv with the command-line arguments args, logging to
// stderr, and returns its exit status. sig, when set, replaces the
// process's signals.
func Main(args []string, stderr io.Writer, sig <-chan os.Signal) int {
	return daemon.Main(daemon.Command[Config]{
		Name:     "filesrv",
		Usage:    usage,
		Examples: "  filesrv -export /export=/srv/export\n  filesrv -config /etc/appliance/filesrv.toml\n",
		Flags:    NewFlags,
		New: func(cfg Config, base *daemon.Base, reload func() (Config, error)) daemon.GracefulService {
			return New(cfg, base, reload)
		},
	}, args, stderr, sig)
}
