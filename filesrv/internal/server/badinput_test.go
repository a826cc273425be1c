package server_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"example.com/appliance/filesrv/internal/oncrpc"
	"example.com/appliance/filesrv/internal/server"
	"example.com/appliance/shared/nettest"
)

func newWriter() *oncrpc.Writer { return oncrpc.NewWriter(nil) }

func be32(b []byte) uint32 { return binary.BigEndian.Uint32(b) }

func words(v ...uint32) []byte {
	w := newWriter()
	for _, x := range v {
		w.Uint32(x)
	}
	return w.Bytes()
}

// TestBadCalls sends calls filesrv does not serve and checks each reply.
func TestBadCalls(t *testing.T) {
	ts := startService(t)
	rc := dialRPC(t, ts.NFS)
	tests := []struct {
		name             string
		prog, vers, proc uint32
		stat             oncrpc.AcceptStat
		results          []byte // for ProgMismatch: low, high
	}{
		{"nfs null", 100003, 3, 0, oncrpc.Success, nil},
		{"mount null", 100005, 3, 0, oncrpc.Success, nil},
		{"nlm", 100021, 4, 0, oncrpc.ProgUnavail, nil},
		{"nfsacl", 100227, 3, 0, oncrpc.ProgUnavail, nil},
		{"portmapper on the nfs port", 100000, 2, 0, oncrpc.ProgUnavail, nil},
		{"nfs v4", 100003, 4, 0, oncrpc.ProgMismatch, words(3, 3)},
		{"nfs v2", 100003, 2, 0, oncrpc.ProgMismatch, words(3, 3)},
		{"mount v1", 100005, 1, 0, oncrpc.ProgMismatch, words(3, 3)},
		{"nfs procedure 22", 100003, 3, 22, oncrpc.ProcUnavail, nil},
		{"mount procedure 6", 100005, 3, 6, oncrpc.ProcUnavail, nil},
		{"nfs getattr without args", 100003, 3, 1, oncrpc.GarbageArgs, nil},
		{"mount mnt without args", 100005, 3, 1, oncrpc.GarbageArgs, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rep := rc.call(tt.prog, tt.vers, tt.proc, nil)
			if rep.Denied || rep.Stat != tt.stat {
				t.Fatalf("reply %+v, want accept stat %d", rep, tt.stat)
			}
			if tt.results != nil && !bytes.Equal(rep.Results, tt.results) {
				t.Errorf("results %x, want %x", rep.Results, tt.results)
			}
		})
	}
	t.Run("rpc version 3", func(t *testing.T) {
		msg := call(77, 100003, 3, 0)
		binary.BigEndian.PutUint32(msg[8:], 3)
		rc.send(msg)
		rep := rc.reply()
		if !rep.Denied || !bytes.Equal(rep.Results, words(0, 2, 2)) {
			t.Errorf("reply %+v, want MSG_DENIED RPC_MISMATCH 2 2", rep)
		}
	})
	t.Run("rpcsec_gss", func(t *testing.T) {
		w := newWriter()
		oncrpc.AppendCall(w, 78, 100003, 3, 0, oncrpc.OpaqueAuth{Flavor: 6, Body: words(1, 0, 0, 0)})
		rc.send(w.Bytes())
		rep := rc.reply()
		if !rep.Denied || !bytes.Equal(rep.Results, words(1, 5)) {
			t.Errorf("reply %+v, want MSG_DENIED AUTH_ERROR AUTH_TOOWEAK", rep)
		}
	})
}

func call(xid, prog, vers, proc uint32) []byte {
	w := newWriter()
	oncrpc.AppendCall(w, xid, prog, vers, proc, oncrpc.OpaqueAuth{})
	return w.Bytes()
}

// TestBadRecords sends what is not a usable RPC record: the server
// answers the calls before it and closes the connection.
func TestBadRecords(t *testing.T) {
	ts := startService(t)
	tests := []struct {
		name string
		in   []byte
	}{
		{"oversized fragment", words(0x80000000 | 64<<20)},
		{"fragments adding up too large", bytes.Repeat(append(words(1<<20), make([]byte, 1<<20)...), 3)},
		{"a reply", append(words(0x80000000|24), words(1, 1, 0, 0, 0, 0)...)},
		{"two bytes", append(words(0x80000000|2), 1, 2)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := nettest.Dial(t, "tcp", ts.NFS)
			if err := oncrpc.WriteRecord(c, call(5, 100003, 3, 0)); err != nil {
				t.Fatal(err)
			}
			go c.Write(tt.in) // may block on a full socket once the server stops reading
			rr := oncrpc.NewRecordReader(c)
			msg, err := rr.ReadRecord(nil, 1<<20)
			if err != nil {
				t.Fatalf("reply to the call before: %v", err)
			}
			if rep, err := oncrpc.ParseReply(msg); err != nil || rep.XID != 5 || rep.Stat != oncrpc.Success {
				t.Errorf("reply %+v, %v", rep, err)
			}
			if _, err := rr.ReadRecord(nil, 1<<20); err == nil || !closedErr(err) {
				t.Errorf("after the bad record: %v, want the connection closed", err)
			}
		})
	}
}

func closedErr(err error) bool {
	var op *net.OpError
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || (errors.As(err, &op) && !op.Timeout())
}

// TestPortmapper asks the portmapper over UDP and TCP for the NFS and MOUNT port.
func TestPortmapper(t *testing.T) {
	ts := startService(t)
	_, port, _ := net.SplitHostPort(ts.NFS)
	var want uint32
	for _, ch := range port {
		want = want*10 + uint32(ch-'0')
	}
	getport := func(prog, vers uint32) []byte {
		w := newWriter()
		oncrpc.AppendCall(w, 9, 100000, 2, 3, oncrpc.OpaqueAuth{})
		w.Uint32(prog)
		w.Uint32(vers)
		w.Uint32(6)
		w.Uint32(0)
		return w.Bytes()
	}
	t.Run("udp", func(t *testing.T) {
		c := nettest.Dial(t, "udp", ts.PortmapUDP)
		for _, prog := range []uint32{100003, 100005} {
			if _, err := c.Write(getport(prog, 3)); err != nil {
				t.Fatal(err)
			}
			buf := make([]byte, 1500)
			n, err := c.Read(buf)
			if err != nil {
				t.Fatal(err)
			}
			rep, err := oncrpc.ParseReply(buf[:n])
			if err != nil || rep.Stat != oncrpc.Success || !bytes.Equal(rep.Results, words(want)) {
				t.Errorf("GETPORT %d: %+v, %v; want port %d", prog, rep, err, want)
			}
		}
	})
	t.Run("tcp", func(t *testing.T) {
		rc := dialRPC(t, ts.PortmapTCP)
		rc.send(getport(100003, 3))
		if rep := rc.reply(); rep.Stat != oncrpc.Success || !bytes.Equal(rep.Results, words(want)) {
			t.Errorf("GETPORT: %+v, want port %d", rep, want)
		}
		// The portmapper's port serves nothing else.
		if rep := rc.call(100003, 3, 0, nil); rep.Stat != oncrpc.ProgUnavail {
			t.Errorf("NFS NULL on the portmapper's port: %+v, want PROG_UNAVAIL", rep)
		}
	})
}

// TestShutdownInFlight shuts down with a call answered but unread, and
// with a record half sent: the first still gets its reply, the second
// connection is closed, and Shutdown returns within its grace period.
func TestShutdownInFlight(t *testing.T) {
	ts := startService(t)
	full := nettest.Dial(t, "tcp", ts.NFS)
	if err := oncrpc.WriteRecord(full, call(1, 100003, 3, 0)); err != nil {
		t.Fatal(err)
	}
	half := nettest.Dial(t, "tcp", ts.NFS)
	msg := call(2, 100003, 3, 0)
	if _, err := half.Write(append(words(0x80000000|uint32(len(msg))), msg[:10]...)); err != nil {
		t.Fatal(err)
	}
	rr := oncrpc.NewRecordReader(full)
	if _, err := rr.ReadRecord(nil, 1<<20); err != nil {
		t.Fatalf("reply before shutdown: %v", err)
	}
	// A second call goes out just before the drain begins.
	if err := oncrpc.WriteRecord(full, call(3, 100003, 3, 0)); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	start := time.Now()
	ts.Shutdown(ctx) // may report the half-sent call's connection forced shut
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Shutdown took %v", d)
	}
	for _, c := range []net.Conn{full, half} {
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
	}
	if msg, err := rr.ReadRecord(nil, 1<<20); err == nil {
		if rep, err := oncrpc.ParseReply(msg); err != nil || rep.XID != 3 {
			t.Errorf("reply %+v, %v; want the reply to xid 3", rep, err)
		}
	} else if !closedErr(err) {
		t.Errorf("after shutdown: %v, want a reply or a clean close", err)
	}
	if _, err := half.Read(make([]byte, 1)); !closedErr(err) {
		t.Errorf("half-sent call's connection: %v, want closed", err)
	}
}

// TestClientsRefused checks that a connection from an address no export
// lists is closed before any call is answered.
func TestClientsRefused(t *testing.T) {
	ts := startService(t, func(c *server.Config) { c.Exports[0].Clients = []string{"192.0.2.0/24"} })
	c := nettest.Dial(t, "tcp", ts.NFS)
	oncrpc.WriteRecord(c, call(1, 100003, 3, 0))
	if _, err := oncrpc.NewRecordReader(c).ReadRecord(nil, 1<<20); !closedErr(err) {
		t.Errorf("read: %v, want the connection closed", err)
	}
}
