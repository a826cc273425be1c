package nfs3

import (
	"context"
	"fmt"
	"testing"

	"example.com/appliance/filesrv/internal/oncrpc"
)

// benchCall serves one call with a reused reply buffer, as the RPC front
// does.
func benchCall(b *testing.B, s *Server, c *oncrpc.Call, reply *oncrpc.Writer) {
	reply.Truncate(0)
	if stat := s.ServeRPC(context.Background(), c, reply); stat != oncrpc.Success {
		b.Fatalf("accept %d", stat)
	}
	if st := oncrpc.NewReader(reply.Bytes()).Uint32(); st != nfsOK {
		b.Fatalf("status %d", st)
	}
}

func encode(args func(*oncrpc.Writer)) []byte {
	w := oncrpc.NewWriter(nil)
	args(w)
	return w.Bytes()
}

func BenchmarkWrite1MiB(b *testing.B) {
	v := newEnv(b)
	fh, _ := v.create(credRoot, v.rootFH(), "f", 0o644)
	data := make([]byte, 1<<20)
	const fileSize = 64 << 20 // wrap around to stay in the page cache
	reply := oncrpc.NewWriter(make([]byte, 0, 4096))
	b.SetBytes(1 << 20)
	off := uint64(0)
	args := make([][]byte, fileSize>>20)
	for i := range args {
		args[i] = encode(writeArgs(fh, uint64(i)<<20, unstable, data))
	}
	for b.Loop() {
		c := &oncrpc.Call{Proc: procWrite, Args: args[off], Sys: credRoot}
		benchCall(b, v.s, c, reply)
		off = (off + 1) % uint64(len(args))
	}
}

func BenchmarkRead1MiB(b *testing.B) {
	v := newEnv(b)
	fh, _ := v.create(credRoot, v.rootFH(), "f", 0o644)
	const fileSize = 64 << 20
	data := make([]byte, 1<<20)
	for off := uint64(0); off < fileSize; off += 1 << 20 {
		if st := v.status(procWrite, credRoot, writeArgs(fh, off, unstable, data)); st != nfsOK {
			b.Fatal(st)
		}
	}
	reply := oncrpc.NewWriter(make([]byte, 0, 2<<20))
	b.SetBytes(1 << 20)
	off := uint64(0)
	for b.Loop() {
		c := &oncrpc.Call{Proc: procRead, Args: encode(readArgs(fh, off, 1<<20)), Sys: credRoot}
		benchCall(b, v.s, c, reply)
		off = (off + 1<<20) % fileSize
	}
}

func BenchmarkGetattr(b *testing.B) {
	v := newEnv(b)
	for _, cached := range []bool{false, true} {
		b.Run(fmt.Sprintf("open=%v", cached), func(b *testing.B) {
			fh, _ := v.create(credRoot, v.rootFH(), fmt.Sprintf("f%v", cached), 0o644)
			if !cached {
				v.s.files.drop(string(fh))
			}
			c := &oncrpc.Call{Proc: procGetattr, Args: encode(argFH(fh)), Sys: credRoot}
			reply := oncrpc.NewWriter(make([]byte, 0, 4096))
			for b.Loop() {
				benchCall(b, v.s, c, reply)
			}
		})
	}
}

func BenchmarkCreateRemove(b *testing.B) {
	v := newEnv(b)
	root := v.rootFH()
	reply := oncrpc.NewWriter(make([]byte, 0, 4096))
	i := 0
	for b.Loop() {
		name := fmt.Sprintf("f%d", i)
		i++
		benchCall(b, v.s, &oncrpc.Call{Proc: procCreate, Sys: credRoot, Args: encode(func(w *oncrpc.Writer) {
			w.Opaque(root)
			w.String(name)
			w.Uint32(createGuarded)
			putSattr(w, 0o644)
		})}, reply)
		benchCall(b, v.s, &oncrpc.Call{Proc: procRemove, Sys: credRoot, Args: encode(argDirop(root, name))}, reply)
	}
}

// BenchmarkReaddirplus10k lists a folder of 10,000 files with READDIRPLUS
// in pages of 32 KiB, as libnfs's opendir does; one op is the whole list.
func BenchmarkReaddirplus10k(b *testing.B) {
	v := newEnv(b)
	h := v.dirOfFiles(b, "big", 10000)
	for b.Loop() {
		if n := len(v.listAll(b, h, true, 32768)); n != 10002 {
			b.Fatalf("%d names", n)
		}
	}
}
