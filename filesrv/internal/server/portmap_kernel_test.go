package server_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"example.com/appliance/filesrv/internal/oncrpc"
	"example.com/appliance/shared/nettest"
)

// standardPortsScript runs as PID 1 of fresh network, PID and mount
// namespaces (unshare), so filesrv can take 127.0.0.1:111 and :2049 with
// the host's ports untouched, and everything it starts dies with it.
// Arguments: FILESRV CONFIG OUT KERNEL; each step leaves OUT/NAME.out,
// OUT/NAME.err and OUT/NAME.rc for the test to check. No port options are
// given to any client: they ask the portmapper on 111.
const standardPortsScript = `set -u
bin=$1 cfg=$2 out=$3 kernel=$4
ip link set lo up || exit 10

mkfifo "$out/srv.fifo" || exit 11
"$bin" -config "$cfg" 2>"$out/srv.fifo" </dev/null &
srv=$!
exec 3<"$out/srv.fifo"
logger=""
stop() {
	kill -TERM "$srv" 2>/dev/null
	wait "$srv"
	echo $? > "$out/filesrv.rc"
	[ -n "$logger" ] && wait "$logger"
}
trap stop EXIT

# wait for filesrv's "ready" line (read's -t bounds a filesrv that hangs)
ready=0
while IFS= read -r -t 60 line <&3; do
	printf '%s\n' "$line" >> "$out/filesrv.log"
	case $line in *msg=ready*) ready=1; break ;; esac
done
cat <&3 >> "$out/filesrv.log" &
logger=$!
exec 3<&-
[ "$ready" = 1 ] || { echo "filesrv did not get ready" >&2; exit 12; }

step() { # NAME CMD...
	local name=$1; shift
	"$@" > "$out/$name.out" 2> "$out/$name.err" </dev/null
	echo $? > "$out/$name.rc"
}
# PMAP v2 GETPORT(NFS v3, TCP), xid 12345, by hand over both transports
getport() { # DEVICE RECORD-MARK REPLY-BYTES
	exec 4<>"$1" || return 1
	printf "$2"'\x00\x00\x30\x39\x00\x00\x00\x00\x00\x00\x00\x02\x00\x01\x86\xa0\x00\x00\x00\x02\x00\x00\x00\x03''\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00''\x00\x01\x86\xa3\x00\x00\x00\x03\x00\x00\x00\x06\x00\x00\x00\x00' >&4
	timeout 10 head -c "$3" <&4
	local rc=$?
	exec 4>&-
	return $rc
}
step getport-tcp getport /dev/tcp/127.0.0.1/111 '\x80\x00\x00\x38' 32
step getport-udp getport /dev/udp/127.0.0.1/111 '' 28
step ls timeout 60 "$NFS_LS" 'nfs://127.0.0.1/export?version=3'
step cp timeout 60 "$NFS_CP" "$out/up.src" 'nfs://127.0.0.1/export/up.bin?version=3'
step cat timeout 60 "$NFS_CAT" 'nfs://127.0.0.1/export/up.bin?version=3'
[ "$kernel" = 1 ] && step kernel "$BASH" "$KMT_RIG" 0 /export
exit 0
`

// TestStandardPorts serves NFS on 2049 and the portmapper on 111 (TCP and
// UDP), as the appliance does, and has clients find filesrv with no port
// options: libnfs (nfs-ls, nfs-cp, nfs-cat) and, without -short, the Linux
// kernel client through the shared rig with KMT_RPCBIND=1. The fixed ports
// are taken in a network namespace of the test's own; QEMU's slirp runs in
// it too, so the guest's 10.0.2.2 is the namespace's 127.0.0.1.
func TestStandardPorts(t *testing.T) {
	nettest.NeedRoot(t, "binds ports 111 and 2049 in a network namespace of its own (unshare --net)")
	unshare := nettest.NeedTool(t, "unshare")
	nettest.NeedTool(t, "ip")
	bash := nettest.NeedTool(t, "bash")
	nfsLs := nettest.NeedTool(t, "nfs-ls")
	nfsCp := nettest.NeedTool(t, "nfs-cp")
	nfsCat := nettest.NeedTool(t, "nfs-cat")
	kernel := !testing.Short()
	var rig, rigCache string
	if kernel {
		rig = needRig(t, "kernel-mount/kernel-mount-test.sh")
		rigCache = warmRig(t, bash, rig)
	}

	bin := buildFilesrv(t)
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	export, state, cfg, script := filepath.Join(dir, "export"), filepath.Join(dir, "state"), filepath.Join(dir, "filesrv.toml"), filepath.Join(dir, "run.sh")
	writeFile(t, filepath.Join(export, "hello.txt"), []byte("hello\n"))
	writeFile(t, filepath.Join(out, "up.src"), randomBytes(t, 300<<10+3))
	writeFile(t, script, []byte(standardPortsScript))
	writeFile(t, cfg, fmt.Appendf(nil, `listen = ["tcp/127.0.0.1:2049"]
portmap = ["tcp/127.0.0.1:111", "udp/127.0.0.1:111"]
state_dir = %q
shutdown_grace = "5s"

[[export]]
path = "/export"
dir = %q
clients = ["127.0.0.0/8"]
squash = "none"

[admin]
listen = ""

[log]
level = "debug"
`, state, export))

	budget := 10 * time.Minute
	if d, ok := t.Deadline(); ok {
		budget = min(budget, time.Until(d)-30*time.Second)
	}
	if budget < 2*time.Minute {
		t.Fatalf("only %v left before go test's -timeout (run with -timeout 15m)", budget)
	}
	ctx, cancel := context.WithTimeout(context.Background(), budget)
	defer cancel()
	kernelArg := "0"
	if kernel {
		kernelArg = "1"
	}
	cmd := exec.CommandContext(ctx, unshare, "--net", "--pid", "--mount-proc", "--fork", "--kill-child",
		bash, script, bin, cfg, out, kernelArg)
	cmd.Env = append(os.Environ(),
		"NFS_LS="+nfsLs, "NFS_CP="+nfsCp, "NFS_CAT="+nfsCat, "BASH="+bash, "KMT_RIG="+rig,
		"KMT_CACHE="+rigCache, "KMT_RPCBIND=1", "KMT_NFILES=50", "KMT_BIGMB=2", "KMT_SKIP=",
		fmt.Sprintf("KMT_TIMEOUT=%d", int((budget-time.Minute).Seconds())),
	)
	// unshare and the script share a process group; killing it kills the
	// namespace's PID 1, and with it every process in the namespace.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 10 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	read := func(name string) []byte {
		b, _ := os.ReadFile(filepath.Join(out, name))
		return b
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("filesrv log (last 16 KiB):\n%s", tail(read("filesrv.log"), 16<<10))
		}
	})
	if err != nil {
		t.Fatalf("namespace script: %v (context: %v)\nstdout: %s\nstderr: %s", err, ctx.Err(), stdout.Bytes(), stderr.Bytes())
	}

	up, _ := os.ReadFile(filepath.Join(out, "up.src"))
	tests := []struct {
		name, step string
		short      bool // runs under -short
		check      func(t *testing.T, stdout []byte)
	}{
		{"portmapper on tcp/111 gives NFS's port", "getport-tcp", true, func(t *testing.T, stdout []byte) {
			if !bytes.HasPrefix(stdout, []byte{0x80, 0, 0, 28}) {
				t.Fatalf("reply %x: not one 28-byte record", stdout)
			}
			checkGetport(t, stdout[4:])
		}},
		{"portmapper on udp/111 gives NFS's port", "getport-udp", true, checkGetport},
		{"nfs-ls lists the export", "ls", true, func(t *testing.T, stdout []byte) {
			if !bytes.Contains(stdout, []byte("hello.txt")) {
				t.Errorf("nfs-ls output lacks hello.txt:\n%s", stdout)
			}
		}},
		{"nfs-cp uploads", "cp", true, func(t *testing.T, _ []byte) {
			if got, _ := os.ReadFile(filepath.Join(export, "up.bin")); !bytes.Equal(got, up) {
				t.Errorf("up.bin on disk: %d bytes, not the %d uploaded", len(got), len(up))
			}
		}},
		{"nfs-cat reads it back", "cat", true, func(t *testing.T, stdout []byte) {
			if !bytes.Equal(stdout, up) {
				t.Errorf("nfs-cat: %d bytes, not the %d uploaded", len(stdout), len(up))
			}
		}},
		{"kernel mount with KMT_RPCBIND=1", "kernel", false, func(t *testing.T, stdout []byte) {
			for _, line := range strings.Split(string(stdout), "\n") {
				for _, p := range []string{"FAIL ", "PASS ", "SKIP ", "INFO ", "RESULT "} {
					if strings.HasPrefix(line, p) {
						t.Log(line)
					}
				}
			}
			if !bytes.Contains(stdout, []byte("RESULT ")) || !bytes.Contains(stdout, []byte(" failed=0 ")) {
				t.Errorf("the rig did not report failed=0")
			}
			if !bytes.Contains(stdout, []byte("\nPASS mount\n")) && !bytes.HasPrefix(stdout, []byte("PASS mount\n")) {
				t.Errorf("no PASS mount")
			}
			// The kernel lists port= among a mount's options only when it was given.
			for _, line := range strings.Split(string(stdout), "\n") {
				if strings.HasPrefix(line, "INFO mounted:") && strings.Contains(line, ",port=") {
					t.Errorf("mounted with a port option: %s", line)
				}
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !tt.short && testing.Short() {
				t.Skip("boots a kernel under QEMU; skipped with -short")
			}
			rc := strings.TrimSpace(string(read(tt.step + ".rc")))
			stdout, stderr := read(tt.step+".out"), read(tt.step+".err")
			if rc != "0" {
				t.Errorf("exit status %q\nstdout (last 4 KiB): %s\nstderr (last 8 KiB): %s", rc, tail(stdout, 4<<10), tail(stderr, 8<<10))
			}
			tt.check(t, stdout)
		})
	}
	t.Run("filesrv stops on SIGTERM", func(t *testing.T) {
		if rc := strings.TrimSpace(string(read("filesrv.rc"))); rc != "0" {
			t.Errorf("filesrv exit status %q after SIGTERM, want 0", rc)
		}
	})
}

// warmRig makes sure the kernel-mount rig has its kernel cached, as the
// rig cannot download it from inside a network namespace: if not, it runs
// the rig once here against a closed port, which fills the cache (and
// installs QEMU if need be) and then fails the mount. It returns the
// cache folder.
func warmRig(t *testing.T, bash, rig string) string {
	t.Helper()
	cache := os.Getenv("KMT_CACHE")
	if cache == "" {
		base := os.Getenv("XDG_CACHE_HOME")
		if base == "" {
			home, err := os.UserHomeDir()
			if err != nil {
				t.Fatal(err)
			}
			base = filepath.Join(home, ".cache")
		}
		cache = filepath.Join(base, "kernel-mount-rig")
	}
	cached := func() error {
		if _, err := exec.LookPath("qemu-system-x86_64"); err != nil {
			return err
		}
		cur, err := os.ReadFile(filepath.Join(cache, "kernel", "current"))
		if err != nil {
			return err
		}
		_, err = os.Stat(filepath.Join(cache, "kernel", strings.TrimSpace(string(cur)), ".complete"))
		return err
	}
	if cached() == nil {
		return cache
	}
	t.Logf("the rig's kernel is not cached in %s yet: running the rig once outside the namespace to fetch it", cache)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bash, rig, freePort(t), "/")
	cmd.Env = append(os.Environ(), "KMT_CACHE="+cache, "KMT_TIMEOUT=120", "KMT_HOOK=", "KMT_EXTRA=", "KMT_PCAP=")
	// The mount against a closed port fails (exit status 1); only the
	// cache counts.
	out, runErr := cmd.CombinedOutput()
	if err := cached(); err != nil {
		t.Fatalf("the rig's warm-up run (%v) did not fill %s: %v\n%s", runErr, cache, err, tail(out, 8<<10))
	}
	return cache
}

// checkGetport checks a reply to the script's GETPORT call: xid 12345,
// success, port 2049.
func checkGetport(t *testing.T, msg []byte) {
	t.Helper()
	rep, err := oncrpc.ParseReply(msg)
	if err != nil {
		t.Fatalf("reply %x: %v", msg, err)
	}
	if port := oncrpc.NewReader(rep.Results).Uint32(); rep.XID != 12345 || rep.Stat != oncrpc.Success || port != 2049 {
		t.Errorf("GETPORT reply %+v, port %d; want xid 12345, success, port 2049", rep, port)
	}
}
