// Package docformat recognizes the document formats a print client sends
// and counts their pages, reading the document in bounded memory.
//
// Detect looks at the first bytes only. Pages walks the whole document as
// a stream (PostScript, PWG raster, text) or through its structure (PDF);
// it never holds more than a bounded part of the document in memory and
// always ends, whatever the input.
package docformat

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strconv"
	"unicode/utf8"
)

// The MIME types Detect returns.
const (
	PDF        = "application/pdf"
	PostScript = "application/postscript"
	PWGRaster  = "image/pwg-raster"
	JPEG       = "image/jpeg"
	URF        = "image/urf"
	Text       = "text/plain"
	Octet      = "application/octet-stream"
)

// HeadSize is how many leading bytes Detect needs to decide.
const HeadSize = 512

// ErrUnknown is returned by Pages for a format whose pages it cannot count.
var ErrUnknown = errors.New("page count unknown for this format")

// Detect returns the MIME type of a document from its first bytes (up to
// HeadSize of them), or Octet when it does not recognize them.
func Detect(head []byte) string {
	if len(head) > HeadSize {
		head = head[:HeadSize]
	}
	switch {
	case bytes.HasPrefix(head, []byte("%PDF-")):
		return PDF
	case bytes.HasPrefix(head, []byte("%!")):
		return PostScript
	case bytes.HasPrefix(head, []byte("RaS2")):
		return PWGRaster
	case bytes.HasPrefix(head, []byte{0xFF, 0xD8, 0xFF}):
		return JPEG
	case bytes.HasPrefix(head, []byte("UNIRAST")):
		return URF
	case isText(head):
		return Text
	}
	return Octet
}

// isText reports whether head is mostly printable text: valid UTF-8 (a
// rune cut at the end is fine) with no NUL and at most 1 in 20 control
// characters other than tab, newline, carriage return and form feed.
func isText(head []byte) bool {
	if len(head) == 0 {
		return false
	}
	ctl := 0
	for i := 0; i < len(head); {
		r, n := utf8.DecodeRune(head[i:])
		if r == utf8.RuneError && n <= 1 {
			if len(head)-i < utf8.UTFMax && !utf8.FullRune(head[i:]) {
				break // a rune cut by the end of head
			}
			return false
		}
		switch {
		case r == 0:
			return false
		case r == '\t' || r == '\n' || r == '\r' || r == '\f' || r == 0x1b:
		case r < 0x20 || r == 0x7f:
			ctl++
		}
		i += n
	}
	return ctl*20 <= len(head)
}

// Limits on the work Pages does, so that any input ends quickly.
const (
	// pdfcpuMax is the largest PDF handed to pdfcpu, which loads every
	// object into memory; bigger ones are counted by scanning.
	pdfcpuMax = 32 << 20
	// LinesPerPage is the length of a text page without form feeds.
	LinesPerPage = 60
)

// Pages returns the number of pages of the document in r (size bytes) of
// the given format. JPEG is one page. It returns ErrUnknown for formats
// it does not count, and an error if the document is damaged.
func Pages(r io.ReaderAt, size int64, format string) (int, error) {
	if size < 0 {
		return 0, fmt.Errorf("negative size %d", size)
	}
	sr := io.NewSectionReader(r, 0, size)
	switch format {
	case PDF:
		return pdfPages(sr)
	case PostScript:
		return psPages(sr)
	case PWGRaster:
		return pwgPages(sr)
	case JPEG:
		return 1, nil
	case URF:
		return urfPages(sr)
	case Text:
		return textPages(sr)
	}
	return 0, fmt.Errorf("%w: %s", ErrUnknown, format)
}

// pdfPages counts a PDF's pages with pdfcpu when it is built in and the
// file is small enough (first reading the page tree's /Count directly
// when the file is plain enough for quickPDFPages: pdfcpu's answer at a
// fraction of its cost), else, or if pdfcpu fails, by scanning for page
// objects.
func pdfPages(sr *io.SectionReader) (int, error) {
	if sr.Size() <= pdfcpuMax {
		if n, ok := quickPDFPages(sr, sr.Size()); ok && n > 0 {
			return n, nil
		}
		n, err := pdfcpuPages(sr)
		if err == nil && n > 0 {
			return n, nil
		}
	}
	n, err := scanPDFPages(io.NewSectionReader(sr, 0, sr.Size()))
	if err != nil {
		return 0, err
	}
	if n == 0 {
		return 0, errors.New("pdf: no pages found")
	}
	return n, nil
}

// scanPDFPages counts "/Type /Page" (not "/Pages") dictionary entries in
// a streaming pass; objects in compressed object streams are not seen.
func scanPDFPages(r io.Reader) (int, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	n := 0
	// A small state machine over the bytes: after "/Type", skip white
	// space, then match "/Page" not followed by a name character.
	const key, val = "/Type", "/Page"
	state, i := 0, 0 // state 0: matching key, 1: spaces, 2: matching val, 3: after val
	for {
		c, err := br.ReadByte()
		if err == io.EOF {
			if state == 3 {
				n++
			}
			return n, nil
		}
		if err != nil {
			return 0, fmt.Errorf("pdf scan: %w", err)
		}
		switch state {
		case 0:
			if c == key[i] {
				i++
				if i == len(key) {
					state, i = 1, 0
				}
			} else if c == '/' {
				i = 1
			} else {
				i = 0
			}
		case 1:
			if isPDFSpace(c) {
				continue
			}
			if c == '/' {
				state, i = 2, 1
			} else {
				state, i = 0, 0
			}
		case 2:
			if c == val[i] {
				i++
				if i == len(val) {
					state = 3
				}
			} else {
				state, i = 0, 0
				if c == '/' {
					i = 1
				}
			}
		case 3:
			if !isPDFNameChar(c) {
				n++
			}
			state, i = 0, 0
			if c == '/' {
				i = 1
			}
		}
	}
}

func isPDFSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f' || c == 0
}

func isPDFNameChar(c byte) bool {
	return !isPDFSpace(c) && !bytes.ContainsRune([]byte("()<>[]{}/%"), rune(c))
}

// psPages reads the DSC "%%Pages: N" comment (the first one that is not
// "(atend)", or the trailer's), else counts "%%Page:" lines.
func psPages(r io.Reader) (int, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	declared, counted := -1, 0
	for {
		line, err := readLinePrefix(br, 64)
		if len(line) > 0 {
			switch {
			case bytes.HasPrefix(line, []byte("%%Pages:")):
				f := bytes.Fields(line[len("%%Pages:"):])
				if len(f) > 0 {
					if v, perr := strconv.Atoi(string(f[0])); perr == nil && v >= 0 {
						declared = v // the trailer's value wins over the header's
					}
				}
			case bytes.HasPrefix(line, []byte("%%Page:")):
				counted++
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return 0, fmt.Errorf("postscript scan: %w", err)
		}
	}
	if declared > 0 {
		return declared, nil
	}
	if counted > 0 {
		return counted, nil
	}
	if declared == 0 {
		return 0, nil
	}
	return 1, nil // a PostScript program without DSC prints at least a page
}

// readLinePrefix returns up to max leading bytes of the next line
// (terminated by LF, CR or CRLF) and skips the rest of the line.
func readLinePrefix(br *bufio.Reader, max int) ([]byte, error) {
	var buf [128]byte
	line := buf[:0]
	for {
		c, err := br.ReadByte()
		if err != nil {
			return line, err
		}
		if c == '\n' {
			return line, nil
		}
		if c == '\r' {
			if next, err := br.Peek(1); err == nil && next[0] == '\n' {
				_, _ = br.ReadByte()
			}
			return line, nil
		}
		if len(line) < max {
			line = append(line, c)
		}
	}
}

// The CUPS raster v2 page header (cups_page_header2_t, 1796 bytes; PWG
// 5102.4 uses the same layout, big-endian): the fields Pages needs.
const (
	pwgHeaderSize       = 1796
	pwgOffHeight        = 376 // cupsHeight: lines on the page
	pwgOffBitsPerColor  = 384 // cupsBitsPerColor
	pwgOffBitsPerPixel  = 388 // cupsBitsPerPixel
	pwgOffBytesPerLine  = 392 // cupsBytesPerLine
	pwgOffColorOrder    = 396 // cupsColorOrder: 0 chunked
	pwgMaxBytesPerLine  = 1 << 24
	pwgMaxHeight        = 1 << 24
	pwgMaxPages         = 1 << 20
	cupsOrderChunked    = 0
	pwgRepeatLiteralMin = 129 // 129..255: 257-n literal pixels
)

// pwgPages walks the page headers of a PWG raster (or CUPS raster v1, v2
// or v3) stream, skipping each page's image data. "RaS2" data is
// compressed line by line (a line-repeat byte, then PackBits-like runs),
// so skipping a page means decoding its run lengths.
func pwgPages(r io.Reader) (int, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	var sync [4]byte
	if _, err := io.ReadFull(br, sync[:]); err != nil {
		return 0, fmt.Errorf("pwg sync word: %w", err)
	}
	var order binary.ByteOrder
	compressed := false
	switch string(sync[:]) {
	case "RaS2":
		order, compressed = binary.BigEndian, true
	case "2SaR":
		order, compressed = binary.LittleEndian, true
	case "RaSt", "RaS3":
		order = binary.BigEndian
	case "tSaR", "3SaR":
		order = binary.LittleEndian
	default:
		return 0, fmt.Errorf("pwg: bad sync word %q", sync[:])
	}
	hdr := make([]byte, pwgHeaderSize)
	pages := 0
	for {
		_, err := io.ReadFull(br, hdr)
		if err == io.EOF {
			return pages, nil
		}
		if err != nil {
			return 0, fmt.Errorf("pwg page %d header: %w", pages+1, err)
		}
		height := order.Uint32(hdr[pwgOffHeight:])
		bpl := order.Uint32(hdr[pwgOffBytesPerLine:])
		if height > pwgMaxHeight || bpl > pwgMaxBytesPerLine || bpl == 0 && height > 0 {
			return 0, fmt.Errorf("pwg page %d: bad size %d lines of %d bytes", pages+1, height, bpl)
		}
		if compressed {
			bits := order.Uint32(hdr[pwgOffBitsPerPixel:])
			if order.Uint32(hdr[pwgOffColorOrder:]) != cupsOrderChunked {
				bits = order.Uint32(hdr[pwgOffBitsPerColor:])
			}
			unit := (bits + 7) / 8
			if unit == 0 {
				unit = 1
			}
			if unit > 32 {
				return 0, fmt.Errorf("pwg page %d: bad pixel size %d bits", pages+1, bits)
			}
			if err := skipPWGPage(br, int64(height), int64(bpl), int64(unit)); err != nil {
				return 0, fmt.Errorf("pwg page %d: %w", pages+1, err)
			}
		} else if err := discard(br, int64(height)*int64(bpl)); err != nil {
			return 0, fmt.Errorf("pwg page %d data: %w", pages+1, err)
		}
		pages++
		if pages > pwgMaxPages {
			return 0, fmt.Errorf("pwg: more than %d pages", pwgMaxPages)
		}
	}
}

// skipPWGPage reads past one page of compressed raster data: height lines
// of bpl bytes in groups, each a repeat byte (the line is used n+1 times)
// and runs of pixels of unit bytes: a count n of 0..127 repeats the next
// pixel n+1 times, 128 blanks the rest of the line, 129..255 is followed
// by 257-n literal pixels.
func skipPWGPage(br *bufio.Reader, height, bpl, unit int64) error {
	for y := int64(0); y < height; {
		rep, err := br.ReadByte()
		if err != nil {
			return fmt.Errorf("line %d: %w", y, noEOF(err))
		}
		for x := int64(0); x < bpl; {
			n, err := br.ReadByte()
			if err != nil {
				return fmt.Errorf("line %d: %w", y, noEOF(err))
			}
			switch {
			case n == 128:
				x = bpl
			case n > 128:
				count := int64(257-int(n)) * unit
				count = min(count, bpl-x)
				if err := discard(br, count); err != nil {
					return fmt.Errorf("line %d: %w", y, err)
				}
				x += count
			default:
				if err := discard(br, unit); err != nil {
					return fmt.Errorf("line %d: %w", y, err)
				}
				x += int64(n+1) * unit
			}
		}
		y += int64(rep) + 1
	}
	return nil
}

func discard(br *bufio.Reader, n int64) error {
	for n > 0 {
		chunk := int(min(n, 1<<30))
		d, err := br.Discard(chunk)
		n -= int64(d)
		if err != nil {
			return noEOF(err)
		}
	}
	return nil
}

// noEOF turns io.EOF inside a structure into io.ErrUnexpectedEOF.
func noEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// urfPages reads the page count from the Apple raster file header
// ("UNIRAST\0" then a big-endian 32-bit page count).
func urfPages(r io.Reader) (int, error) {
	var hdr [12]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return 0, fmt.Errorf("urf header: %w", err)
	}
	if !bytes.HasPrefix(hdr[:], []byte("UNIRAST")) {
		return 0, errors.New("urf: bad magic")
	}
	n := binary.BigEndian.Uint32(hdr[8:])
	if n > pwgMaxPages {
		return 0, fmt.Errorf("urf: implausible page count %d", n)
	}
	return int(n), nil
}

// textPages counts pages of plain text: a form feed starts a new page, as
// does every LinesPerPage-th line. A trailing form feed or line end does
// not open an empty page.
func textPages(r io.Reader) (int, error) {
	var t textCounter
	buf := make([]byte, 32<<10)
	for {
		n, err := r.Read(buf)
		chunk := buf[:n]
		for {
			i := bytes.IndexByte(chunk, '\f')
			if i < 0 {
				t.text(chunk)
				break
			}
			t.text(chunk[:i])
			t.formFeed()
			chunk = chunk[i+1:]
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return 0, fmt.Errorf("text scan: %w", err)
		}
	}
	if t.inPage {
		t.pages++
	}
	return t.pages, nil
}

// textCounter is textPages' state between chunks.
type textCounter struct {
	pages, lines int
	inPage       bool // something has been put on the current page
}

// text counts a run of text without form feeds, a whole chunk at a time.
func (t *textCounter) text(b []byte) {
	if len(b) == 0 {
		return
	}
	k := bytes.Count(b, []byte{'\n'})
	if k == 0 {
		t.inPage = true
		return
	}
	total := t.lines + k
	t.pages += total / LinesPerPage
	t.lines = total % LinesPerPage
	// After the last line feed the page is empty only if that line feed
	// ended a page; text after it is on the page either way.
	t.inPage = t.lines > 0 || b[len(b)-1] != '\n'
}

func (t *textCounter) formFeed() {
	if t.inPage {
		t.pages++
	}
	t.inPage, t.lines = false, 0
}

// Extension returns the file name extension, without the dot, for a
// document of the given MIME type; "bin" for one it does not know.
func Extension(format string) string {
	switch format {
	case PDF:
		return "pdf"
	case PostScript:
		return "ps"
	case PWGRaster:
		return "pwg"
	case JPEG:
		return "jpg"
	case URF:
		return "urf"
	case Text:
		return "txt"
	}
	return "bin"
}
