package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"time"
)

// ctimeLayout is the layout of C's ctime(3) without its newline.
const ctimeLayout = "Mon Jan _2 15:04:05 2006"

// serveBaseline runs the baseline timestamp server on addr, TCP and UDP on
// the same port, until ctx ends (main ends it on SIGTERM and SIGINT), its
// standard input reaches end of file (the parent tsbench went away) or
// lifetime has passed, whichever comes first. It is the least a Go timestamp server can do: a
// goroutine per connection, no deadlines, no limits, no metrics, no logs.
func serveBaseline(ctx context.Context, addr string, lifetime time.Duration) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("baseline: %w", err)
	}
	defer ln.Close()
	pc, err := net.ListenPacket("udp", addr)
	if err != nil {
		return fmt.Errorf("baseline: %w", err)
	}
	defer pc.Close()

	ctx, cancel := context.WithTimeout(ctx, lifetime)
	defer cancel()
	go func() {
		// The parent holds the write end of our stdin; EOF means it is gone.
		_, _ = io.Copy(io.Discard, os.Stdin)
		cancel()
	}()

	for range runtime.NumCPU() {
		go baselinePackets(pc.(*net.UDPConn))
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				if errors.Is(err, net.ErrClosed) {
					return
				}
				time.Sleep(5 * time.Millisecond) // e.g. EMFILE: do not spin
				continue
			}
			go baselineConn(c)
		}
	}()
	<-ctx.Done()
	return nil
}

// baselineConn answers each line read from c with "[ctime] line".
func baselineConn(c net.Conn) {
	defer c.Close()
	br := bufio.NewReader(c)
	out := make([]byte, 0, 128)
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			return
		}
		out = append(out[:0], '[')
		out = time.Now().AppendFormat(out, ctimeLayout)
		out = append(out, "] "...)
		out = append(out, line...)
		if _, err := c.Write(out); err != nil {
			return
		}
	}
}

// baselinePackets answers each datagram read from pc with "[ctime] datagram".
func baselinePackets(pc *net.UDPConn) {
	buf := make([]byte, 65536)
	out := make([]byte, 0, 128)
	for {
		n, from, err := pc.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		out = append(out[:0], '[')
		out = time.Now().AppendFormat(out, ctimeLayout)
		out = append(out, "] "...)
		out = append(out, buf[:n]...)
		_, _ = pc.WriteToUDPAddrPort(out, from)
	}
}
