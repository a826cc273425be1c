package spool

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"

	"example.com/appliance/printsrv/internal/docformat/docformattest"
)

// crashDirEnv tells the test binary, run again as a child, to be the
// submitting process of TestCrash in that folder.
const crashDirEnv = "SPOOL_CRASH_DIR"

// crashDoc is the document of the i-th job the child submits.
func crashDoc(i int) []byte {
	return bytes.Repeat(fmt.Appendf(nil, "job %d of the crash test\n", i), 1+i%97)
}

// TestHelperProcess is the child of TestCrash: it submits jobs from 16
// goroutines and prints "ack <id> <i>" for each acknowledged one, until
// it is killed.
func TestHelperProcess(t *testing.T) {
	dir := os.Getenv(crashDirEnv)
	if dir == "" {
		t.Skip("only run as the child of TestCrash")
	}
	s, err := Open(Options{Dir: dir, Printers: []PrinterConfig{{Name: "p"}}})
	if err != nil {
		fmt.Fprintln(os.Stderr, "open:", err)
		os.Exit(2)
	}
	var mu sync.Mutex
	next := 0
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for {
				mu.Lock()
				i := next
				next++
				mu.Unlock()
				j, err := s.Submit(context.Background(), JobSpec{Printer: "p", Name: strconv.Itoa(i)}, bytes.NewReader(crashDoc(i)), "")
				if err != nil {
					fmt.Fprintln(os.Stderr, "submit:", err)
					os.Exit(2)
				}
				mu.Lock()
				fmt.Printf("ack %d %d\n", j.ID, i) // os.Stdout is unbuffered
				mu.Unlock()
			}
		})
	}
	wg.Wait() // never: the parent kills this process
}

// TestCrash kills a process that is submitting jobs, then reopens its
// spool: every job it acknowledged is there with its document intact.
func TestCrash(t *testing.T) {
	if testing.Short() {
		t.Skip("re-executes the test binary")
	}
	dir := t.TempDir()
	const want = 300
	for round := range 2 { // the second round also recovers from the first
		cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$", "-test.count=1")
		cmd.Env = append(os.Environ(), crashDirEnv+"="+dir)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		acked := make(map[int]int) // job id -> document number
		sc := bufio.NewScanner(out)
		for len(acked) < want && sc.Scan() {
			var id, i int
			if _, err := fmt.Sscanf(sc.Text(), "ack %d %d", &id, &i); err == nil {
				acked[id] = i
			}
		}
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, out)
		_ = cmd.Wait()
		if len(acked) < want {
			t.Fatalf("round %d: child acknowledged %d jobs, then: %s", round, len(acked), stderr.String())
		}

		s := open(t, Options{Dir: dir, Printers: []PrinterConfig{{Name: "p", Tray: filepath.Join(dir, "out")}}})
		if err := s.Pause("p"); err != nil {
			t.Fatal(err)
		}
		for id, i := range acked {
			j, ok := s.Job(id)
			if !ok {
				t.Errorf("round %d: acknowledged job %d lost", round, id)
				continue
			}
			doc := crashDoc(i)
			if j.Name != strconv.Itoa(i) || j.Bytes != int64(len(doc)) || j.State == Aborted {
				t.Errorf("round %d: job %d: %+v", round, id, j)
				continue
			}
			s.mu.Lock()
			file := s.jobs[id].docs[0].File
			s.mu.Unlock()
			if got := readFile(t, s.docPath(file)); !bytes.Equal(got, doc) {
				t.Errorf("round %d: job %d: document differs", round, id)
			}
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// endlessText is a reader of n bytes of text, generated as it is read.
type endlessText struct{ n, off int64 }

// textLine is endlessText's line, 44 bytes.
const textLine = "All work and no play makes Jack a dull boy.\n"

func (r *endlessText) Read(p []byte) (int, error) {
	if r.off >= r.n {
		return 0, io.EOF
	}
	p = p[:min(int64(len(p)), r.n-r.off)]
	for i := range p {
		p[i] = textLine[(r.off+int64(i))%int64(len(textLine))]
	}
	r.off += int64(len(p))
	return len(p), nil
}

// TestStreaming submits a 64 MiB document: memory does not grow with it.
func TestStreaming(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 64 MiB")
	}
	opts := testOptions(t)
	s := open(t, opts)
	if err := s.Pause("p"); err != nil { // printing would copy it again
		t.Fatal(err)
	}
	const size = 64 << 20
	lines := size / len(textLine)
	if size%len(textLine) != 0 {
		lines++ // the last line has no line feed
	}
	wantPages := (lines + 59) / 60
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	j, err := s.Submit(context.Background(), JobSpec{Printer: "p"}, &endlessText{n: size}, "")
	if err != nil {
		t.Fatal(err)
	}
	runtime.ReadMemStats(&after)
	if j.Bytes != size || j.Formats[0] != "text/plain" || j.Impressions != wantPages {
		t.Errorf("job: bytes %d formats %v impressions %d", j.Bytes, j.Formats, j.Impressions)
	}
	// Everything allocated during the submission, garbage included.
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 4<<20 {
		t.Errorf("submitting %d MiB allocated %d KiB", size>>20, alloc>>10)
	}
	if grow := int64(after.HeapInuse) - int64(before.HeapInuse); grow > 4<<20 {
		t.Errorf("heap grew by %d KiB", grow>>10)
	}
	fi, err := os.Stat(filepath.Join(opts.Dir, docsDir, strconv.Itoa(j.ID)+"-1.txt"))
	if err != nil || fi.Size() != size {
		t.Errorf("spooled document: %v, %v", fi, err)
	}
}

// TestGroupCommit holds the committer in its first batch while more
// submitters arrive: they are all acknowledged by the next one.
func TestGroupCommit(t *testing.T) {
	const waiting = 7
	release := make(chan struct{})
	batches := make(chan int, 100)
	first := true
	testBatchHook = func(n int) {
		batches <- n
		if first {
			first = false
			<-release
		}
	}
	defer func() { testBatchHook = nil }()
	s := open(t, testOptions(t))
	if err := s.Pause("p"); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Go(func() { submit(t, s, JobSpec{}, psDoc(1), "") })
	if n := <-batches; n != 1 {
		t.Fatalf("first batch of %d", n)
	}
	for range waiting {
		wg.Go(func() { submit(t, s, JobSpec{}, psDoc(1), "") })
	}
	waitFor(t, "submitters queued", func() bool { return len(s.commits) == waiting })
	close(release)
	wg.Wait()
	if n := <-batches; n != waiting {
		t.Errorf("second batch of %d, want %d", n, waiting)
	}
	if n := len(s.Jobs("", nil)); n != waiting+1 {
		t.Errorf("%d jobs", n)
	}
}

// BenchmarkFsyncBaseline is the floor BenchmarkSubmit is measured
// against: the same submitters each only creating, writing and fsyncing
// two small files (a document and a record), with no folder sync.
func BenchmarkFsyncBaseline(b *testing.B) {
	dir := os.Getenv("SPOOL_BENCH_DIR")
	if dir == "" {
		dir = b.TempDir()
	} else {
		var err error
		if dir, err = os.MkdirTemp(dir, "bench"); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = os.RemoveAll(dir) })
	}
	pdf := docformattest.PDF(2)
	var n atomic.Int64
	b.SetParallelism(8)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := n.Add(1)
			for _, name := range []string{fmt.Sprintf("%d-1.pdf", i), fmt.Sprintf("%d.json", i)} {
				f, err := os.Create(filepath.Join(dir, name))
				if err == nil {
					_, err = f.Write(pdf)
				}
				if err == nil {
					err = f.Sync()
				}
				if err == nil {
					err = f.Close()
				}
				if err != nil {
					b.Error(err)
					return
				}
			}
		}
	})
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "jobs/s")
}
