package server_test

import (
	"bytes"
	"crypto/rand"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"example.com/appliance/shared/nettest"
)

func randomBytes(t testing.TB, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	rand.Read(b)
	return b
}

func writeFile(t testing.TB, path string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestLibnfs drives filesrv with libnfs's command-line tools: uploads,
// downloads and listings, in the export root and in subfolders, each
// checked byte for byte against the files on disk.
func TestLibnfs(t *testing.T) {
	nfsCp := nettest.NeedTool(t, "nfs-cp")
	nfsCat := nettest.NeedTool(t, "nfs-cat")
	nfsLs := nettest.NeedTool(t, "nfs-ls")
	ts := startService(t)
	local := t.TempDir()

	t.Run("upload", func(t *testing.T) {
		for _, tc := range []struct {
			name string
			size int
		}{{"empty.bin", 0}, {"small.txt", 100}, {"odd.bin", 65537}, {"big.bin", 5<<20 + 3}} {
			data := randomBytes(t, tc.size)
			src := filepath.Join(local, tc.name)
			writeFile(t, src, data)
			mustTool(t, nfsCp, src, url(ts.NFS, "/"+tc.name))
			got, err := os.ReadFile(filepath.Join(ts.Export, tc.name))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, data) {
				t.Errorf("%s: %d bytes on disk differ from the %d uploaded", tc.name, len(got), len(data))
			}
		}
	})

	t.Run("upload refuses an existing file", func(t *testing.T) {
		src := filepath.Join(local, "again.txt")
		writeFile(t, src, []byte("one"))
		mustTool(t, nfsCp, src, url(ts.NFS, "/again.txt"))
		writeFile(t, src, []byte("two"))
		if _, err := tool(t, nil, nfsCp, src, url(ts.NFS, "/again.txt")); err == nil {
			t.Error("second nfs-cp to the same name succeeded, want an O_EXCL failure")
		}
		if got, _ := os.ReadFile(filepath.Join(ts.Export, "again.txt")); string(got) != "one" {
			t.Errorf("file holds %q, want %q", got, "one")
		}
	})

	t.Run("download", func(t *testing.T) {
		data := randomBytes(t, 3<<20+17)
		writeFile(t, filepath.Join(ts.Export, "down.bin"), data)
		if got := mustTool(t, nfsCat, url(ts.NFS, "/down.bin")); !bytes.Equal(got, data) {
			t.Errorf("nfs-cat: %d bytes differ from the %d on disk", len(got), len(data))
		}
		dst := filepath.Join(local, "down.copy")
		mustTool(t, nfsCp, url(ts.NFS, "/down.bin"), dst)
		if got, _ := os.ReadFile(dst); !bytes.Equal(got, data) {
			t.Errorf("nfs-cp download: %d bytes differ from the %d on disk", len(got), len(data))
		}
	})

	t.Run("subfolders", func(t *testing.T) {
		if err := os.MkdirAll(filepath.Join(ts.Export, "a", "b", "c"), 0o755); err != nil {
			t.Fatal(err)
		}
		data := randomBytes(t, 200000)
		src := filepath.Join(local, "deep.bin")
		writeFile(t, src, data)
		mustTool(t, nfsCp, src, url(ts.NFS, "/a/b/c/deep.bin"))
		if got, _ := os.ReadFile(filepath.Join(ts.Export, "a", "b", "c", "deep.bin")); !bytes.Equal(got, data) {
			t.Error("file uploaded into a/b/c differs on disk")
		}
		if got := mustTool(t, nfsCat, url(ts.NFS, "/a/b/c/deep.bin")); !bytes.Equal(got, data) {
			t.Error("file read back from a/b/c differs")
		}
		writeFile(t, filepath.Join(ts.Export, "a", "b", "side.txt"), []byte("side\n"))
		if got := mustTool(t, nfsCat, url(ts.NFS, "/a/b/side.txt")); string(got) != "side\n" {
			t.Errorf("a/b/side.txt read as %q", got)
		}
	})

	t.Run("listing", func(t *testing.T) {
		dir := filepath.Join(ts.Export, "list")
		var want []string
		for i := range 300 {
			name := "f" + strings.Repeat("x", i%40) + "-" + string(rune('a'+i%26)) + itoa(i)
			writeFile(t, filepath.Join(dir, name), []byte(name))
			want = append(want, name)
		}
		if err := os.Mkdir(filepath.Join(dir, "sub"), 0o755); err != nil {
			t.Fatal(err)
		}
		want = append(want, "sub")
		out := string(mustTool(t, nfsLs, url(ts.NFS, "/list")))
		got := lsNames(out)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("nfs-ls lists %d names, want %d\n%s", len(got), len(want), out)
		}
		root := lsNames(string(mustTool(t, nfsLs, url(ts.NFS, ""))))
		for _, n := range []string{"list", "a", "down.bin", "big.bin"} {
			if !slices.Contains(root, n) {
				t.Errorf("nfs-ls of the export root lacks %q: %q", n, root)
			}
		}
	})
}

func itoa(i int) string {
	if i == 0 {
		return "0"
	}
	var b []byte
	for ; i > 0; i /= 10 {
		b = append([]byte{byte('0' + i%10)}, b...)
	}
	return string(b)
}

// lsNames returns the sorted names in nfs-ls output, without . and ..
// (each line ends with the name).
func lsNames(out string) []string {
	var names []string
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if n := f[len(f)-1]; n != "." && n != ".." {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	return names
}
