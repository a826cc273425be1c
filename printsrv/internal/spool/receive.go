package spool

import (
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
	f, err := s.createFile(path, os.O_RDWR, false)
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
	pages, perr := docformat.Pages(f, d.Bytes, format)
	if perr != nil && !errors.Is(perr, docformat.ErrUnknown) {
		s.log.Warn("cannot count pages", "job", id, "document", n, "format", format, "err", perr)
	}
	d.Pages = pages
	if err := f.Close(); err != nil {
		_ = os.Remove(path)
		return docRecord{}, fmt.Errorf("close document: %w", err)
	}
	return d, nil
}
