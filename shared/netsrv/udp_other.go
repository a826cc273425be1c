//go:build !linux

package netsrv

import "net"

// replyFromDestination is Linux-only: elsewhere the kernel chooses each
// reply's source address.
func replyFromDestination(*net.UDPConn) bool { return false }

func newPktinfoSession(uc *net.UDPConn) session { return &udpSession{uc: uc} }
