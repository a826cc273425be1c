// Package listen turns the appliance's listen addresses into sockets.
//
// An address names its network, a slash, and the place to listen:
//
//	tcp/host:port        tcp/:21567  tcp/127.0.0.1:0  tcp/[::1]:631
//	udp/host:port        udp/[::]:21567
//	unix//path           unix//run/tsserv.sock (the path is absolute)
//	unixgram//path       unixgram//run/tsserv.dgram
//
// An empty host listens on every interface, IPv4 and IPv6. Sockets passed
// by systemd socket activation (LISTEN_FDS) take the place of the addresses
// they match, so a unit can hold privileged ports for an unprivileged daemon.
package listen

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Addr is a parsed listen address.
type Addr struct {
	Network string // tcp, udp, unix or unixgram
	Address string // host:port or a path
}

// String gives the address back in its written form.
func (a Addr) String() string { return a.Network + "/" + a.Address }

// Stream reports whether the address names a stream (connection) socket.
func (a Addr) Stream() bool { return a.Network == "tcp" || a.Network == "unix" }

// Parse reads an address written network/address.
func Parse(s string) (Addr, error) {
	network, address, ok := strings.Cut(s, "/")
	if !ok {
		return Addr{}, fmt.Errorf("listen address %q: want network/address, e.g. tcp/:21567 or unix//run/x.sock", s)
	}
	a := Addr{Network: network, Address: address}
	switch network {
	case "tcp", "udp":
		host, port, err := net.SplitHostPort(address)
		if err != nil {
			return Addr{}, fmt.Errorf("listen address %q: %w", s, err)
		}
		if strings.Contains(host, "%") {
			// Zones are fine (fe80::1%eth0); the rest must be an IP or a name.
		} else if host != "" && net.ParseIP(host) == nil && !validHostname(host) {
			return Addr{}, fmt.Errorf("listen address %q: bad host %q", s, host)
		}
		if n, err := strconv.ParseUint(port, 10, 16); err != nil || (n == 0 && port != "0") {
			return Addr{}, fmt.Errorf("listen address %q: bad port %q", s, port)
		}
	case "unix", "unixgram":
		if !strings.HasPrefix(address, "/") || len(address) < 2 {
			return Addr{}, fmt.Errorf("listen address %q: want an absolute path, e.g. %s//run/x.sock", s, network)
		}
		if len(address) > 107 { // sun_path is 108 bytes with its NUL
			return Addr{}, fmt.Errorf("listen address %q: path longer than 107 bytes", s)
		}
		if strings.ContainsRune(address, 0) {
			return Addr{}, fmt.Errorf("listen address %q: path contains NUL", s)
		}
	default:
		return Addr{}, fmt.Errorf("listen address %q: unknown network %q (want tcp, udp, unix or unixgram)", s, network)
	}
	return a, nil
}

func validHostname(h string) bool {
	if len(h) > 253 {
		return false
	}
	for _, label := range strings.Split(h, ".") {
		if label == "" || len(label) > 63 {
			return false
		}
		for _, r := range label {
			if !(r == '-' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') {
				return false
			}
		}
	}
	return true
}

// Socket is an open listening socket: exactly one of Listener and
// PacketConn is set.
type Socket struct {
	Addr       Addr // as configured, or as found for an inherited socket
	Listener   net.Listener
	PacketConn net.PacketConn
	Inherited  bool // passed by systemd
}

// Local returns the address the socket is bound to, in written form, e.g.
// tcp/127.0.0.1:40123 for a configured tcp/127.0.0.1:0.
func (s Socket) Local() string {
	if s.Listener != nil {
		return s.Addr.Network + "/" + s.Listener.Addr().String()
	}
	return s.Addr.Network + "/" + s.PacketConn.LocalAddr().String()
}

// Close closes the socket.
func (s Socket) Close() error {
	if s.Listener != nil {
		return s.Listener.Close()
	}
	return s.PacketConn.Close()
}

// Open opens a socket for each address, taking inherited systemd sockets
// where they match, plus any inherited socket that matches none of them.
// On error it closes what it opened.
func Open(addrs []string) ([]Socket, error) {
	inherited, err := Inherited()
	if err != nil {
		return nil, err
	}
	var out []Socket
	fail := func(err error) ([]Socket, error) {
		for _, s := range out {
			s.Close()
		}
		for _, s := range inherited {
			s.Close()
		}
		return nil, err
	}
	for _, raw := range addrs {
		a, err := Parse(raw)
		if err != nil {
			return fail(err)
		}
		if i := match(inherited, a); i >= 0 {
			out = append(out, inherited[i])
			inherited = append(inherited[:i], inherited[i+1:]...)
			continue
		}
		s, err := Listen(a)
		if err != nil {
			return fail(err)
		}
		out = append(out, s)
	}
	return append(out, inherited...), nil
}

// Listen opens one socket. A stale Unix socket file left by a crash is
// removed first; any other file at the path is an error.
func Listen(a Addr) (Socket, error) {
	s := Socket{Addr: a}
	var err error
	if a.Network == "unix" || a.Network == "unixgram" {
		if err := removeStaleSocket(a.Address); err != nil {
			return s, err
		}
	}
	switch a.Network {
	case "tcp", "unix":
		s.Listener, err = net.Listen(a.Network, a.Address)
	case "udp":
		s.PacketConn, err = net.ListenPacket(a.Network, a.Address)
	case "unixgram":
		var uc *net.UnixConn
		uc, err = net.ListenUnixgram("unixgram", &net.UnixAddr{Name: a.Address, Net: "unixgram"})
		if err == nil {
			s.PacketConn = &unlinkOnClose{UnixConn: uc, path: a.Address}
		}
	default:
		err = fmt.Errorf("unknown network %q", a.Network)
	}
	if err != nil {
		var oe *net.OpError
		if errors.As(err, &oe) && oe.Err != nil {
			err = oe.Err // it repeats the address
		}
		return s, fmt.Errorf("listen on %s: %w", a, err)
	}
	return s, nil
}

func removeStaleSocket(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("check socket path %q: %w", path, err)
	}
	if fi.Mode()&os.ModeSocket == 0 {
		return fmt.Errorf("socket path %q exists and is not a socket", path)
	}
	// A socket that answers belongs to a running server: taking its path
	// would cut that server off without a word.
	// Only a refusal proves the socket dead: a busy server may answer a
	// stream dial with EAGAIN, and the other socket type with EPROTOTYPE.
	refused := false
	for _, network := range []string{"unix", "unixgram"} {
		c, err := net.DialTimeout(network, path, time.Second)
		if err == nil {
			c.Close()
			return fmt.Errorf("socket path %q is in use by a running server", path)
		}
		switch {
		case errors.Is(err, syscall.ECONNREFUSED):
			refused = true
		case errors.Is(err, syscall.EPROTOTYPE):
		default:
			return fmt.Errorf("socket path %q: cannot tell whether a server still uses it: %w", path, err)
		}
	}
	if !refused {
		return fmt.Errorf("socket path %q: cannot tell whether a server still uses it", path)
	}
	if err := os.Remove(path); err != nil {
		return fmt.Errorf("remove stale socket %q: %w", path, err)
	}
	return nil
}

// unlinkOnClose removes a unixgram socket's file on Close, as net's Unix
// listeners do for stream sockets.
type unlinkOnClose struct {
	*net.UnixConn
	path   string
	unlink sync.Once // a second Close must not remove a newer socket's file
}

// Close closes the socket and removes its file.
func (u *unlinkOnClose) Close() error {
	err := u.UnixConn.Close()
	u.unlink.Do(func() { os.Remove(u.path) })
	return err
}

func match(socks []Socket, a Addr) int {
	for i, s := range socks {
		if s.Addr.Network != a.Network {
			continue
		}
		if s.Addr.Address == a.Address || sameHostPort(s.Addr.Address, a.Address) {
			return i
		}
	}
	return -1
}

// sameHostPort matches a configured address against a bound one: a
// wildcard host matches any wildcard, and the port must be equal.
func sameHostPort(bound, want string) bool {
	bh, bp, err1 := net.SplitHostPort(bound)
	wh, wp, err2 := net.SplitHostPort(want)
	if err1 != nil || err2 != nil || bp != wp {
		return false
	}
	wild := func(h string) bool { return h == "" || h == "0.0.0.0" || h == "::" }
	if wild(bh) && wild(wh) {
		return true
	}
	bip, wip := net.ParseIP(bh), net.ParseIP(wh)
	return bip != nil && wip != nil && bip.Equal(wip)
}
