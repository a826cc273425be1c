package server_test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"example.com/appliance/filesrv/internal/oncrpc"
	"example.com/appliance/filesrv/internal/server"
	"example.com/appliance/shared/daemon"
	"example.com/appliance/shared/nettest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// testService is a filesrv Service running in this process on loopback
// ports, exporting a temporary folder as /export.
type testService struct {
	*server.Service
	Log *nettest.Buffer
	// Export is the exported folder; State the handle index's.
	Export, State string
	// NFS is the NFS and MOUNT address; PortmapTCP and PortmapUDP the portmapper's.
	NFS, PortmapTCP, PortmapUDP string
}

// startService starts a Service after applying each edit to its config;
// it is shut down at the end of the test, and its log shown if the test
// failed.
func startService(t testing.TB, edits ...func(*server.Config)) *testService {
	t.Helper()
	dir := t.TempDir()
	ts := &testService{Log: new(nettest.Buffer), Export: filepath.Join(dir, "export"), State: filepath.Join(dir, "state")}
	cfg := server.Default()
	cfg.Listen = []string{"tcp/127.0.0.1:0"}
	cfg.Portmap = []string{"tcp/127.0.0.1:0", "udp/127.0.0.1:0"}
	cfg.Admin.Listen = ""
	cfg.Log.Level = "debug"
	cfg.StateDir = ts.State
	cfg.Exports[0].Dir = ts.Export
	cfg.Exports[0].Squash = "none" // the tests run as root and chown
	for _, edit := range edits {
		edit(&cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("test config: %v", err)
	}
	base := daemon.NewBase("filesrv", cfg.Common, ts.Log)
	ts.Service = server.New(cfg, base, func() (server.Config, error) { return cfg, nil })
	nettest.StartService(t, ts, ts.Log)
	ts.NFS = strings.TrimPrefix(ts.Addrs()[0], "tcp/")
	for _, a := range ts.PortmapAddrs() {
		network, addr, _ := strings.Cut(a, "/")
		if network == "tcp" {
			ts.PortmapTCP = addr
		} else {
			ts.PortmapUDP = addr
		}
	}
	return ts
}

// url returns the libnfs URL of path under /export on the service.
func url(nfsAddr, path string) string {
	_, port, _ := net.SplitHostPort(nfsAddr)
	return fmt.Sprintf("nfs://127.0.0.1/export%s?nfsport=%s&mountport=%s&version=3", path, port, port)
}

// tool runs an external program with a deadline and returns its stdout
// and its error (with stderr in it).
func tool(t testing.TB, stdin []byte, name string, args ...string) ([]byte, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.Bytes(), fmt.Errorf("%s %q: %w\nstderr: %s", filepath.Base(name), args, err, stderr.String())
	}
	return stdout.Bytes(), nil
}

// mustTool is tool that fails the test on an error.
func mustTool(t testing.TB, name string, args ...string) []byte {
	t.Helper()
	out, err := tool(t, nil, name, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// rpcClient sends raw calls on one TCP connection.
type rpcClient struct {
	t   testing.TB
	c   net.Conn
	rr  *oncrpc.RecordReader
	xid uint32
}

func dialRPC(t testing.TB, addr string) *rpcClient {
	t.Helper()
	return &rpcClient{t: t, c: nettest.Dial(t, "tcp", addr), xid: 1000}
}

// send writes one record holding msg.
func (rc *rpcClient) send(msg []byte) {
	rc.t.Helper()
	if err := oncrpc.WriteRecord(rc.c, msg); err != nil {
		rc.t.Fatal(err)
	}
}

// reply reads one reply.
func (rc *rpcClient) reply() oncrpc.Reply {
	rc.t.Helper()
	if rc.rr == nil {
		rc.rr = oncrpc.NewRecordReader(rc.c)
	}
	msg, err := rc.rr.ReadRecord(nil, 8<<20)
	if err != nil {
		rc.t.Fatalf("read reply: %v", err)
	}
	rep, err := oncrpc.ParseReply(msg)
	if err != nil {
		rc.t.Fatal(err)
	}
	return rep
}

var rootCred = oncrpc.SysCred(oncrpc.Cred{Machine: "test", UID: 0, GID: 0})

// call sends a call with AUTH_SYS root and args, and returns the reply.
func (rc *rpcClient) call(prog, vers, proc uint32, args []byte) oncrpc.Reply {
	rc.t.Helper()
	rc.xid++
	w := oncrpc.NewWriter(nil)
	oncrpc.AppendCall(w, rc.xid, prog, vers, proc, rootCred)
	w.Raw(args)
	rc.send(w.Bytes())
	rep := rc.reply()
	if rep.XID != rc.xid {
		rc.t.Fatalf("reply xid %d, want %d", rep.XID, rc.xid)
	}
	return rep
}

// mount calls MOUNT v3 MNT and returns the root handle.
func (rc *rpcClient) mount(path string) []byte {
	rc.t.Helper()
	w := oncrpc.NewWriter(nil)
	w.String(path)
	rep := rc.call(100005, 3, 1, w.Bytes())
	r := oncrpc.NewReader(rep.Results)
	if rep.Stat != oncrpc.Success || r.Uint32() != 0 {
		rc.t.Fatalf("MNT %s: %+v", path, rep)
	}
	return r.Opaque(64)
}

// lookup calls NFSv3 LOOKUP and returns the status, the handle and the
// object's file id (0 without attributes).
func (rc *rpcClient) lookup(dir []byte, name string) (status uint32, fh []byte, fileid uint64) {
	rc.t.Helper()
	w := oncrpc.NewWriter(nil)
	w.Opaque(dir)
	w.String(name)
	rep := rc.call(100003, 3, 3, w.Bytes())
	if rep.Stat != oncrpc.Success {
		rc.t.Fatalf("LOOKUP %q: accept stat %d", name, rep.Stat)
	}
	r := oncrpc.NewReader(rep.Results)
	if status = r.Uint32(); status != 0 {
		return status, nil, 0
	}
	fh = r.Opaque(64)
	if r.Bool() {
		attrs := r.Fixed(84)
		if len(attrs) == 84 {
			fileid = oncrpc.NewReader(attrs[52:60]).Uint64()
		}
	}
	if r.Err() != nil {
		rc.t.Fatalf("LOOKUP %q: bad reply %x", name, rep.Results)
	}
	return status, fh, fileid
}

// inode returns the inode number of a file on disk.
func inode(t testing.TB, path string) uint64 {
	t.Helper()
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fileIno(fi)
}
