package netsrv

import (
	"bytes"
	"encoding/binary"
	"net"

	"golang.org/x/sys/unix"
)

// replyFromDestination asks the kernel to report each request's
// destination address on a UDP socket bound to a wildcard address, so that
// the reply can leave from that address. Without it the kernel picks the
// source by route, and on a machine with several addresses a client that
// sent to one of them (and, like tsclnt or nc -u, accepts replies only
// from there) never sees the answer. It reports false for a socket bound to
// one address, which needs none of this.
func replyFromDestination(uc *net.UDPConn) bool {
	la, ok := uc.LocalAddr().(*net.UDPAddr)
	if !ok || !la.IP.IsUnspecified() {
		return false
	}
	rc, err := uc.SyscallConn()
	if err != nil {
		return false
	}
	v6 := la.IP.To4() == nil
	var err4, err6 error
	err = rc.Control(func(fd uintptr) {
		// A dual-stack IPv6 socket reports IPv4 requests with IP_PKTINFO.
		err4 = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_PKTINFO, 1)
		if v6 {
			err6 = unix.SetsockoptInt(int(fd), unix.IPPROTO_IPV6, unix.IPV6_RECVPKTINFO, 1)
		}
	})
	return err == nil && (v6 && err6 == nil || !v6 && err4 == nil)
}

// pktinfoSession is a udpSession that sends each reply from the address
// its request was sent to.
type pktinfoSession struct {
	udpSession
	oob   []byte
	reply []byte // control message for the reply; nil: the kernel chooses
	dst   []byte // what reply was built from
}

func newPktinfoSession(uc *net.UDPConn) session {
	return &pktinfoSession{udpSession: udpSession{uc: uc}, oob: make([]byte, 128)}
}

func (s *pktinfoSession) read(b []byte) (int, net.Addr, error) {
	n, oobn, _, ap, err := s.uc.ReadMsgUDPAddrPort(b, s.oob)
	if err != nil {
		return n, nil, err
	}
	s.setReply(s.oob[:oobn])
	return n, s.setFrom(ap), nil
}

// setReply builds the reply's control message from the request's, unless
// it came to the same address as the last one.
func (s *pktinfoSession) setReply(oob []byte) {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err == nil {
		for _, m := range msgs {
			switch {
			case m.Header.Level == unix.IPPROTO_IP && m.Header.Type == unix.IP_PKTINFO && len(m.Data) >= unix.SizeofInet4Pktinfo:
				dst := m.Data[8:12] // in_pktinfo.ipi_addr: the header's destination
				if !bytes.Equal(s.dst, dst) {
					var info unix.Inet4Pktinfo
					copy(info.Spec_dst[:], dst)
					s.reply, s.dst = unix.PktInfo4(&info), append(s.dst[:0], dst...)
				}
				return
			case m.Header.Level == unix.IPPROTO_IPV6 && m.Header.Type == unix.IPV6_PKTINFO && len(m.Data) >= unix.SizeofInet6Pktinfo:
				dst := m.Data[:unix.SizeofInet6Pktinfo] // address and interface, for link-local clients
				if !bytes.Equal(s.dst, dst) {
					var info unix.Inet6Pktinfo
					copy(info.Addr[:], dst[:16])
					info.Ifindex = binary.NativeEndian.Uint32(dst[16:20])
					s.reply, s.dst = unix.PktInfo6(&info), append(s.dst[:0], dst...)
				}
				return
			}
		}
	}
	s.reply, s.dst = nil, s.dst[:0]
}

func (s *pktinfoSession) writeTo(b []byte, addr net.Addr) (int, error) {
	ua, ok := addr.(*net.UDPAddr)
	if !ok || s.reply == nil {
		return s.uc.WriteTo(b, addr)
	}
	n, _, err := s.uc.WriteMsgUDP(b, s.reply, ua)
	return n, err
}
