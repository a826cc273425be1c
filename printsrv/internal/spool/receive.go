package spool

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"

	"example.com/appliance/printsrv/internal/docformat"
)

// copyBufSize is the chunk documents are streamed in; memory per
// transfer does not grow with the document.
const copyBufSize = 64 << 10

var copyBufs = sync.Pool{New: func() any { b := make([]byte, copyBufSize); return &b }}

// needsDetection reports whether the client left the format to the spool.
func needsDetection(format string) bool {
	return format == "" || format == docformat.Octet
}

// receive streams doc into the file of document n of job id. It does not
// sync it: the caller's commit does, together with the record naming it
// (see commit.go). With limit >= 0, a document over limit bytes is
// removed and an error wrapping ErrTooLarge returned. The file is written
// in place, not renamed: until a durable record names it, it is not part
// of any job, and Open removes documents no record names.
func (s *Spool) receive(ctx context.Context, id, n int, doc io.Reader, format string, limit int64) (docRecord, error) {
	bp := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(bp)
	buf := *bp

	// The head decides the format, so the file name is known before the
	// first write.
	head := buf[:docformat.HeadSize]
	hn, herr := io.ReadFull(doc, head)
	if herr != nil && herr != io.EOF && herr != io.ErrUnexpectedEOF {
		return docRecord{}, fmt.Errorf("read document: %w", herr)
	}
	head = head[:hn]
	if needsDetection(format) {
		format = docformat.Detect(head)
	}
	d := docRecord{File: docName(id, n, format), Format: format}
	path := s.docPath(d.File)
	f, err := s.createFile(path, os.O_RDWR)
	if err != nil {
		return docRecord{}, fmt.Errorf("create document: %w", err)
	}
	fail := func(err error) (docRecord, error) {
		_ = f.Close()
		_ = os.Remove(path)
		return docRecord{}, err
	}
	if limit >= 0 && int64(hn) > limit {
		return fail(fmt.Errorf("%w: over %d bytes", ErrTooLarge, limit))
	}
	if _, err := f.Write(head); err != nil {
		return fail(fmt.Errorf("write document: %w", err))
	}
	d.Bytes = int64(hn)
	if herr == nil { // more may follow the head
		for {
			if err := ctx.Err(); err != nil {
				return fail(fmt.Errorf("receive document: %w", err))
			}
			if s.ctx.Err() != nil {
				return fail(fmt.Errorf("receive document: %w", ErrClosed))
			}
			m, rerr := doc.Read(buf)
			if m > 0 {
				if limit >= 0 && d.Bytes+int64(m) > limit {
					return fail(fmt.Errorf("%w: over %d bytes", ErrTooLarge, limit))
				}
				if _, werr := f.Write(buf[:m]); werr != nil {
					return fail(fmt.Errorf("write document: %w", werr))
				}
				d.Bytes += int64(m)
			}
			if rerr == io.EOF {
				break
			}
			if rerr != nil {
				return fail(fmt.Errorf("read document: %w", rerr))
			}
		}
	}
	// Counting is cheap for most formats and for PDFs with a classic
	// cross-reference table (docformat reads the page tree's /Count).
	// Other PDFs (cross-reference streams) take pdfcpu milliseconds and
	// much garbage: they are counted after the acknowledgement, by the
	// printer before it prints the job (countPages).
	if format == docformat.PDF && !pdfClassicXRef(f, d.Bytes, buf) {
		d.Uncounted = true
	} else {
		d.Pages = s.pages(f, id, n, d.Bytes, format)
	}
	if err := f.Close(); err != nil {
		_ = os.Remove(path)
		return docRecord{}, fmt.Errorf("close document: %w", err)
	}
	return d, nil
}

// pages counts the pages of a document, 0 if unknown.
func (s *Spool) pages(r io.ReaderAt, id, n int, size int64, format string) int {
	pages, err := docformat.Pages(r, size, format)
	if err != nil && !errors.Is(err, docformat.ErrUnknown) {
		s.log.Warn("cannot count pages", "job", id, "document", n, "format", format, "err", err)
	}
	return pages
}

// pdfClassicXRef reports whether the PDF in r (size bytes) ends with a
// classic cross-reference table, which docformat counts quickly, rather
// than a cross-reference stream. buf is scratch space of at least 1 KiB.
func pdfClassicXRef(r io.ReaderAt, size int64, buf []byte) bool {
	const tail = 1024
	off := max(size-tail, 0)
	buf = buf[:size-off]
	n, _ := r.ReadAt(buf, off)
	buf = buf[:n]
	i := bytes.LastIndex(buf, []byte("startxref"))
	if i < 0 {
		return false
	}
	rest := bytes.TrimLeft(buf[i+len("startxref"):], " \t\r\n\f\x00")
	var x int64
	digits := 0
	for _, c := range rest {
		if c < '0' || c > '9' {
			break
		}
		x = x*10 + int64(c-'0')
		if digits++; digits > 15 {
			return false
		}
	}
	if digits == 0 || x+4 > size {
		return false
	}
	var kw [4]byte
	if n, _ := r.ReadAt(kw[:], x); n < len(kw) {
		return false
	}
	return string(kw[:]) == "xref"
}
