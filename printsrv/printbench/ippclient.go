package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"sync"
	"time"

	"github.com/OpenPrinting/goipp"
)

// ippClient sends IPP requests to one target over keep-alive HTTP.
type ippClient struct {
	t  *target
	hc *http.Client
	tr *http.Transport
}

// newIPPClient returns a client keeping up to conns connections open.
func newIPPClient(t *target, conns int) *ippClient {
	tr := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
		MaxIdleConns:        conns,
		MaxIdleConnsPerHost: conns,
		MaxConnsPerHost:     conns,
		DisableCompression:  true,
		IdleConnTimeout:     time.Minute,
	}
	return &ippClient{t: t, tr: tr, hc: &http.Client{Transport: tr, Timeout: 10 * time.Minute}}
}

// close closes the idle connections.
func (c *ippClient) close() { c.tr.CloseIdleConnections() }

// request encodes an IPP request to the target's queue with the usual
// operation attributes and the given document-format ("" for none).
func (c *ippClient) request(op goipp.Op, format string) []byte {
	m := goipp.NewRequest(goipp.MakeVersion(2, 0), op, 1)
	m.Operation.Add(goipp.MakeAttribute("attributes-charset", goipp.TagCharset, goipp.String("utf-8")))
	m.Operation.Add(goipp.MakeAttribute("attributes-natural-language", goipp.TagLanguage, goipp.String("en")))
	m.Operation.Add(goipp.MakeAttribute("printer-uri", goipp.TagURI, goipp.String(c.t.uri)))
	m.Operation.Add(goipp.MakeAttribute("requesting-user-name", goipp.TagName, goipp.String("printbench")))
	if op == goipp.OpPrintJob {
		m.Operation.Add(goipp.MakeAttribute("job-name", goipp.TagName, goipp.String("printbench")))
	}
	if format != "" {
		m.Operation.Add(goipp.MakeAttribute("document-format", goipp.TagMimeType, goipp.String(format)))
	}
	b, err := m.EncodeBytes()
	if err != nil {
		panic(fmt.Sprintf("encode %v: %v", op, err)) // fixed attributes: cannot fail
	}
	return b
}

// post sends body and returns the IPP status of the reply.
func (c *ippClient) post(ctx context.Context, body io.Reader, size int64) (goipp.Status, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.t.url(), body)
	if err != nil {
		return 0, fmt.Errorf("new request: %w", err)
	}
	req.ContentLength = size // -1: chunked
	req.Header.Set("Content-Type", "application/ipp")
	resp, err := c.hc.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
		return 0, fmt.Errorf("HTTP %s", resp.Status)
	}
	var m goipp.Message
	if err := m.Decode(resp.Body); err != nil {
		return 0, fmt.Errorf("decode reply: %w", err)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	return goipp.Status(m.Code), nil
}

// getPrinterAttributes checks that the queue answers successful-ok.
func (c *ippClient) getPrinterAttributes() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	b := c.request(goipp.OpGetPrinterAttributes, "")
	st, err := c.post(ctx, bytes.NewReader(b), int64(len(b)))
	if err != nil {
		return err
	}
	if st != goipp.StatusOk {
		return fmt.Errorf("status %v", st)
	}
	return nil
}

// counts is what a batch of Print-Job requests got back.
type counts struct {
	accepted uint64 // successful-ok*
	busy     uint64 // server-error-busy
	failed   uint64 // any other status, or no reply
	firstErr string
}

// add adds o to c.
func (c *counts) add(o counts) {
	c.accepted += o.accepted
	c.busy += o.busy
	c.failed += o.failed
	if c.firstErr == "" {
		c.firstErr = o.firstErr
	}
}

// record counts one reply.
func (c *counts) record(st goipp.Status, err error) {
	switch {
	case err != nil:
		c.failed++
		if c.firstErr == "" {
			c.firstErr = err.Error()
		}
	case st == goipp.StatusErrorBusy:
		c.busy++
	case st <= 0x00ff:
		c.accepted++
	default:
		c.failed++
		if c.firstErr == "" {
			c.firstErr = st.String()
		}
	}
}

// printJobs runs workers goroutines that submit Print-Job requests with doc
// back to back until d has passed, and returns what they got back. A busy
// reply is retried by the next request without delay.
func (c *ippClient) printJobs(ctx context.Context, workers int, d time.Duration, doc []byte, format string) counts {
	body := append(c.request(goipp.OpPrintJob, format), doc...)
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	var (
		mu    sync.Mutex
		total counts
		wg    sync.WaitGroup
	)
	for range workers {
		wg.Go(func() {
			var mine counts
			for ctx.Err() == nil {
				st, err := c.post(context.WithoutCancel(ctx), bytes.NewReader(body), int64(len(body)))
				if ctx.Err() != nil && err == nil {
					// Finished after the deadline: still counted, it was sent in time.
					mine.record(st, err)
					break
				}
				mine.record(st, err)
				if err != nil {
					time.Sleep(10 * time.Millisecond) // a dead server must not spin
				}
			}
			mu.Lock()
			total.add(mine)
			mu.Unlock()
		})
	}
	wg.Wait()
	return total
}

// genReader yields n bytes of printable text without holding them.
type genReader struct {
	left int64
	off  int
}

// line is the repeated content of the generated document.
var line = []byte("printbench generated text document, streamed and never held in memory: 0123456789 abcdefghijklmnopqrstuvwxyz\n")

// Read fills p with the next bytes of the repeated line.
func (g *genReader) Read(p []byte) (int, error) {
	if g.left <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > g.left {
		p = p[:g.left]
	}
	n := 0
	for n < len(p) {
		k := copy(p[n:], line[g.off:])
		n += k
		g.off = (g.off + k) % len(line)
	}
	g.left -= int64(n)
	return n, nil
}

// printBig submits one Print-Job whose document is size generated bytes,
// sent with chunked transfer encoding.
func (c *ippClient) printBig(ctx context.Context, size int64, format string) (goipp.Status, error) {
	body := io.MultiReader(bytes.NewReader(c.request(goipp.OpPrintJob, format)), &genReader{left: size})
	return c.post(ctx, body, -1)
}

// lookPath finds a program, with an error that says what to install.
func lookPath(bin string) (string, error) {
	p, err := exec.LookPath(bin)
	if err != nil {
		return "", fmt.Errorf("find %s: %w", bin, err)
	}
	return p, nil
}
