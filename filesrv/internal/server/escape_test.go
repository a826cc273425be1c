package server_test

import (
	"bytes"
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"example.com/appliance/shared/nettest"
)

// needRig returns the absolute path of a shared rig script
// (../shared/rigs/REL).
func needRig(t testing.TB, rel string) string {
	t.Helper()
	return nettest.NeedShared(t, "rigs/"+rel)
}

// escapeService exports dir/export, beside a secret file that must stay
// out of reach, with symlinks in the export pointing at / and at "..".
func escapeService(t *testing.T) (ts *testService, outside string) {
	t.Helper()
	ts = startService(t)
	outside = filepath.Dir(ts.Export)
	writeFile(t, filepath.Join(outside, "secret.txt"), []byte("secret\n"))
	for name, target := range map[string]string{"toroot": "/", "up": "..", "upsecret": "../secret.txt", "etcpasswd": "/etc/passwd"} {
		if err := os.Symlink(target, filepath.Join(ts.Export, name)); err != nil {
			t.Fatal(err)
		}
	}
	return ts, outside
}

// TestLookupEscapeProbe runs the shared rig's raw-RPC probe:
// LOOKUP(root, "../../../../etc/passwd") must be refused.
func TestLookupEscapeProbe(t *testing.T) {
	python := nettest.NeedTool(t, "python3")
	probe := needRig(t, "ganesha/lookup-escape-probe.py")
	ts, _ := escapeService(t)
	_, port, _ := net.SplitHostPort(ts.NFS)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, python, probe, "127.0.0.1", port, port, "/export").CombinedOutput()
	if err != nil {
		t.Fatalf("lookup-escape-probe.py: %v (exit 1 = escaped, 2 = probe error)\n%s", err, out)
	}
	t.Logf("probe:\n%s", out)
}

// TestLookupEscapeRaw sends LOOKUPs of "..", of names with slashes and
// through symlinks leading out of the export: none may reach outside.
func TestLookupEscapeRaw(t *testing.T) {
	ts, outside := escapeService(t)
	rc := dialRPC(t, ts.NFS)
	root := rc.mount("/export")
	rootIno := inode(t, ts.Export)

	// ".." of the export root is the root itself (or refused), never its parent.
	if st, _, ino := rc.lookup(root, ".."); st == 0 && ino != rootIno {
		t.Errorf(`LOOKUP(root, "..") = file id %d; the export root is %d, its parent %d`, ino, rootIno, inode(t, outside))
	}
	for _, name := range []string{"../secret.txt", "../../../../etc/passwd", "/etc/passwd", "up/secret.txt", "a/../../secret.txt"} {
		if st, _, ino := rc.lookup(root, name); st == 0 {
			t.Errorf("LOOKUP(root, %q) = NFS3_OK, file id %d; want an error", name, ino)
		}
	}
	// A symlink is looked up as a link: its handle is the link's.
	for _, name := range []string{"toroot", "up", "upsecret", "etcpasswd"} {
		st, fh, ino := rc.lookup(root, name)
		if st != 0 {
			continue
		}
		if want := inode(t, filepath.Join(ts.Export, name)); ino != want {
			t.Errorf("LOOKUP(root, %q) = file id %d, want the link's own %d", name, ino, want)
		}
		// And nothing can be looked up inside it.
		if st2, _, ino2 := rc.lookup(fh, "secret.txt"); st2 == 0 {
			t.Errorf("LOOKUP(%s, secret.txt) = NFS3_OK, file id %d", name, ino2)
		}
		if st2, _, ino2 := rc.lookup(fh, "passwd"); st2 == 0 {
			t.Errorf("LOOKUP(%s, passwd) = NFS3_OK, file id %d", name, ino2)
		}
	}
}

// TestEscapeLibnfs tries the same through libnfs: reads and writes
// through the symlinks fail and nothing outside the export changes.
func TestEscapeLibnfs(t *testing.T) {
	nfsCp := nettest.NeedTool(t, "nfs-cp")
	nfsCat := nettest.NeedTool(t, "nfs-cat")
	nfsLs := nettest.NeedTool(t, "nfs-ls")
	ts, outside := escapeService(t)
	for _, p := range []string{"/upsecret", "/up/secret.txt", "/toroot/etc/passwd", "/etcpasswd", "/../secret.txt"} {
		if out, err := tool(t, nil, nfsCat, url(ts.NFS, p)); err == nil {
			t.Errorf("nfs-cat %s succeeded: %q", p, out)
		} else if bytes.Contains(out, []byte("secret")) || bytes.Contains(out, []byte("root:")) {
			t.Errorf("nfs-cat %s printed %q", p, out)
		}
	}
	if out, err := tool(t, nil, nfsLs, url(ts.NFS, "/toroot")); err == nil && bytes.Contains(out, []byte("etc")) {
		t.Errorf("nfs-ls /toroot lists the host's root:\n%s", out)
	}
	src := filepath.Join(t.TempDir(), "planted.txt")
	writeFile(t, src, []byte("planted\n"))
	for _, p := range []string{"/up/planted.txt", "/toroot/tmp/planted.txt", "/../planted.txt"} {
		tool(t, nil, nfsCp, src, url(ts.NFS, p)) // may fail or not; what counts is where it lands
	}
	for _, p := range []string{filepath.Join(outside, "planted.txt"), "/tmp/planted.txt"} {
		if _, err := os.Lstat(p); err == nil {
			os.Remove(p)
			t.Errorf("a write through the export created %s", p)
		}
	}
	if got, _ := os.ReadFile(filepath.Join(outside, "secret.txt")); string(got) != "secret\n" {
		t.Errorf("secret.txt outside the export now holds %q", got)
	}
}

// TestMountRefusals checks MOUNT's answers to paths outside the exports.
func TestMountRefusals(t *testing.T) {
	ts, _ := escapeService(t)
	rc := dialRPC(t, ts.NFS)
	for _, p := range []string{"/", "/etc", "/export/../etc", "/export/up", "/export/toroot", "/exportx"} {
		w := newWriter()
		w.String(p)
		rep := rc.call(100005, 3, 1, w.Bytes())
		if rep.Stat != 0 || len(rep.Results) < 4 {
			t.Fatalf("MNT %s: %+v", p, rep)
		}
		if st := be32(rep.Results); st == 0 {
			t.Errorf("MNT %s = MNT3_OK, want a refusal", p)
		}
	}
}
