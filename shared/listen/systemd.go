package listen

import (
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// listenFDsStart is SD_LISTEN_FDS_START: the first inherited descriptor.
const listenFDsStart = 3

// Inherited returns the sockets systemd passed to this process
// (LISTEN_PID, LISTEN_FDS, see sd_listen_fds(3)), or none. It unsets those
// variables so that child processes do not take the sockets for their own.
func Inherited() ([]Socket, error) {
	pid, _ := strconv.Atoi(os.Getenv("LISTEN_PID"))
	n, _ := strconv.Atoi(os.Getenv("LISTEN_FDS"))
	names := strings.Split(os.Getenv("LISTEN_FDNAMES"), ":")
	os.Unsetenv("LISTEN_PID")
	os.Unsetenv("LISTEN_FDS")
	os.Unsetenv("LISTEN_FDNAMES")
	if pid != os.Getpid() || n <= 0 {
		return nil, nil
	}
	var out []Socket
	for fd := listenFDsStart; fd < listenFDsStart+n; fd++ {
		unix.CloseOnExec(fd)
		name := fmt.Sprintf("LISTEN_FD_%d", fd)
		if i := fd - listenFDsStart; i < len(names) && names[i] != "" {
			name = names[i]
		}
		s, err := fromFD(fd, name)
		if err != nil {
			for _, o := range out {
				o.Close()
			}
			for rest := fd + 1; rest < listenFDsStart+n; rest++ {
				unix.Close(rest) // ours to close: nobody else will use them
			}
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

func fromFD(fd int, name string) (Socket, error) {
	typ, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TYPE)
	if err != nil {
		return Socket{}, fmt.Errorf("inherited descriptor %d (%s) is not a socket: %w", fd, name, err)
	}
	f := os.NewFile(uintptr(fd), name)
	defer f.Close() // net dups the descriptor
	s := Socket{Inherited: true}
	switch typ {
	case unix.SOCK_STREAM:
		l, err := net.FileListener(f)
		if err != nil {
			return Socket{}, fmt.Errorf("inherited socket %d (%s): %w", fd, name, err)
		}
		s.Listener = l
		s.Addr = Addr{Network: Network(l.Addr()), Address: l.Addr().String()}
	case unix.SOCK_DGRAM:
		pc, err := net.FilePacketConn(f)
		if err != nil {
			return Socket{}, fmt.Errorf("inherited socket %d (%s): %w", fd, name, err)
		}
		s.PacketConn = pc
		s.Addr = Addr{Network: Network(pc.LocalAddr()), Address: pc.LocalAddr().String()}
	default:
		return Socket{}, fmt.Errorf("inherited socket %d (%s): type %d is neither stream nor datagram", fd, name, typ)
	}
	return s, nil
}

// Network names an address's network the way listen addresses write it:
// tcp, udp, unix or unixgram.
func Network(a net.Addr) string {
	if a == nil {
		return "unknown"
	}
	switch a.Network() {
	case "tcp", "tcp4", "tcp6":
		return "tcp"
	case "udp", "udp4", "udp6":
		return "udp"
	}
	return a.Network()
}
