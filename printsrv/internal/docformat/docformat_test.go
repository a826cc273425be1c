package docformat

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"go.uber.org/goleak"

	"example.com/appliance/printsrv/internal/docformat/docformattest"
	"example.com/appliance/shared/nettest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// samples returns the interop sample documents (../shared/ipptool).
func samples(t testing.TB) string {
	t.Helper()
	return nettest.NeedShared(t, "ipptool")
}

// pwgPage is one page for makePWG: its size and how its lines are coded.
type pwgPage struct {
	height, bytesPerLine, bitsPerPixel uint32
}

// makePWG returns a PWG raster stream with the given pages. Lines are
// coded with every kind of run: repeated lines, pixel repeats, literal
// runs and the rest-of-line fill.
func makePWG(pages ...pwgPage) []byte {
	var b bytes.Buffer
	b.WriteString("RaS2")
	for _, p := range pages {
		hdr := make([]byte, 1796)
		copy(hdr, "PwgRaster")
		binary.BigEndian.PutUint32(hdr[372:], p.bytesPerLine*8/max(p.bitsPerPixel, 1))
		binary.BigEndian.PutUint32(hdr[pwgOffHeight:], p.height)
		binary.BigEndian.PutUint32(hdr[pwgOffBitsPerColor:], min(p.bitsPerPixel, 8))
		binary.BigEndian.PutUint32(hdr[pwgOffBitsPerPixel:], p.bitsPerPixel)
		binary.BigEndian.PutUint32(hdr[pwgOffBytesPerLine:], p.bytesPerLine)
		b.Write(hdr)
		unit := int(max((p.bitsPerPixel+7)/8, 1))
		pixel := bytes.Repeat([]byte{0x55}, unit)
		units := int(p.bytesPerLine) / unit
		for y := 0; y < int(p.height); {
			rep := min(int(p.height)-y, 3) // groups of up to 3 lines
			b.WriteByte(byte(rep - 1))
			switch y % 3 {
			case 0: // all white: fill the rest of the line
				b.WriteByte(128)
			case 1: // literal runs of up to 128 pixels
				for x := 0; x < units; {
					k := min(units-x, 128)
					b.WriteByte(byte(257 - k))
					b.Write(bytes.Repeat(pixel, k))
					x += k
				}
			default: // repeats of up to 128 pixels
				for x := 0; x < units; {
					k := min(units-x, 128)
					b.WriteByte(byte(k - 1))
					b.Write(pixel)
					x += k
				}
			}
			y += rep
		}
	}
	return b.Bytes()
}

func makeURF(pages uint32) []byte {
	b := []byte("UNIRAST\x00\x00\x00\x00\x00")
	binary.BigEndian.PutUint32(b[8:], pages)
	return append(b, bytes.Repeat([]byte{1}, 100)...)
}

func TestDetect(t *testing.T) {
	tests := []struct {
		name string
		head []byte
		want string
	}{
		{"pdf", []byte("%PDF-1.7\n%\xe2\xe3"), PDF},
		{"postscript", []byte("%!PS-Adobe-3.0\n"), PostScript},
		{"pwg", []byte("RaS2PwgRaster\x00\x00"), PWGRaster},
		{"jpeg", []byte{0xFF, 0xD8, 0xFF, 0xE0, 0, 0x10, 'J', 'F', 'I', 'F'}, JPEG},
		{"urf", []byte("UNIRAST\x00\x00\x00\x00\x01"), URF},
		{"text", []byte("hello, world\n\fpage two\r\n\ttabbed\n"), Text},
		{"utf8 text", []byte("grüße, 世界\n"), Text},
		{"text cut in a rune", []byte("abc\xe4\xb8"), Text},
		{"binary", []byte{0, 1, 2, 3, 0xfe, 0xff}, Octet},
		{"invalid utf8", []byte("abc\xff\xfe def"), Octet},
		{"many controls", bytes.Repeat([]byte("a\x01"), 20), Octet},
		{"gzip", []byte{0x1f, 0x8b, 8, 0}, Octet},
		{"empty", nil, Octet},
		{"short pdf prefix", []byte("%PD"), Text},
		{"pcl", []byte("\x1bE\x1b%-12345X@PJL\n"), Text},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Detect(tt.head); got != tt.want {
				t.Errorf("Detect(%q) = %q, want %q", tt.head, got, tt.want)
			}
		})
	}
}

// pageCases are documents built here with known page counts; the fuzz
// targets start from them too.
func pageCases() []struct {
	name   string
	format string
	doc    []byte
	want   int
} {
	return []struct {
		name   string
		format string
		doc    []byte
		want   int
	}{
		{"pdf 1 page", PDF, docformattest.PDF(1), 1},
		{"pdf 7 pages", PDF, docformattest.PDF(7), 7},
		{"ps pages comment", PostScript, []byte("%!PS-Adobe-3.0\n%%Pages: 3\n%%EndComments\n%%Page: 1 1\nshowpage\n"), 3},
		{"ps pages atend", PostScript, []byte("%!PS-Adobe-3.0\r\n%%Pages: (atend)\r\n%%Page: 1 1\r\n%%Page: 2 2\r\n%%Trailer\r\n%%Pages: 2\r\n%%EOF\r\n"), 2},
		{"ps page lines", PostScript, []byte("%!PS\n%%Page: 1 1\nshowpage\n%%Page: 2 2\nshowpage\n%%Page: 3 3\nshowpage\n"), 3},
		{"ps no dsc", PostScript, []byte("%!\n/Helvetica findfont 12 scalefont setfont\nshowpage\n"), 1},
		{"pwg 1 page 1 bit", PWGRaster, makePWG(pwgPage{height: 100, bytesPerLine: 310, bitsPerPixel: 1}), 1},
		{"pwg 3 pages rgb", PWGRaster, makePWG(
			pwgPage{height: 50, bytesPerLine: 3 * 300, bitsPerPixel: 24},
			pwgPage{height: 7, bytesPerLine: 3 * 5, bitsPerPixel: 24},
			pwgPage{height: 1, bytesPerLine: 3, bitsPerPixel: 24}), 3},
		{"pwg 16 bit gray", PWGRaster, makePWG(pwgPage{height: 10, bytesPerLine: 2 * 1000, bitsPerPixel: 16}), 1},
		{"jpeg", JPEG, []byte{0xFF, 0xD8, 0xFF, 0xE0}, 1},
		{"urf", URF, makeURF(5), 5},
		{"text one line", Text, []byte("hello"), 1},
		{"text form feeds", Text, []byte("one\n\ftwo\n\fthree\n\f"), 3},
		{"text long", Text, bytes.Repeat([]byte("line\n"), 2*LinesPerPage+1), 3},
		{"text exact page", Text, bytes.Repeat([]byte("line\n"), LinesPerPage), 1},
		{"text empty", Text, nil, 0},
	}
}

func TestPages(t *testing.T) {
	for _, tt := range pageCases() {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Pages(bytes.NewReader(tt.doc), int64(len(tt.doc)), tt.format)
			if err != nil || got != tt.want {
				t.Errorf("Pages = %d, %v; want %d", got, err, tt.want)
			}
			if d := Detect(tt.doc); len(tt.doc) > 0 && d != tt.format {
				t.Errorf("Detect = %q, want %q", d, tt.format)
			}
		})
	}
}

func TestPagesErrors(t *testing.T) {
	pwg := makePWG(pwgPage{height: 100, bytesPerLine: 310, bitsPerPixel: 1}, pwgPage{height: 100, bytesPerLine: 310, bitsPerPixel: 1})
	tests := []struct {
		name   string
		format string
		doc    []byte
	}{
		{"unknown format", "application/vnd.hp-pcl", []byte("\x1bE")},
		{"pwg bad sync", PWGRaster, []byte("RaSxabcd")},
		{"pwg truncated header", PWGRaster, pwg[:1000]},
		{"pwg truncated data", PWGRaster, pwg[:len(pwg)-3]},
		{"pwg huge page", PWGRaster, func() []byte {
			b := makePWG(pwgPage{height: 1, bytesPerLine: 1, bitsPerPixel: 8})
			binary.BigEndian.PutUint32(b[4+pwgOffBytesPerLine:], 1<<30)
			return b
		}()},
		{"urf short", URF, []byte("UNIRAST")},
		{"pdf garbage", PDF, []byte("%PDF-1.4\nnothing here\n")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, err := Pages(bytes.NewReader(tt.doc), int64(len(tt.doc)), tt.format)
			if err == nil {
				t.Fatalf("Pages = %d, want an error", n)
			}
		})
	}
	if _, err := Pages(bytes.NewReader(nil), 0, "x/y"); !errors.Is(err, ErrUnknown) {
		t.Errorf("unknown format: err = %v, want ErrUnknown", err)
	}
}

// TestPDFFallback checks the scan used when pdfcpu cannot read a PDF:
// here its xref table points nowhere.
func TestPDFFallback(t *testing.T) {
	doc := docformattest.PDF(4)
	i := bytes.Index(doc, []byte("startxref\n"))
	broken := append(bytes.Clone(doc[:i]), "startxref\n999999\n%%EOF\n"...)
	tests := []struct {
		name string
		doc  []byte
		want int
	}{
		{"valid", doc, 4},
		{"broken xref", broken, 4},
		{"type page spacing", []byte("%PDF-1.1\n<</Type/Page>> <</Type /Pages>> << /Type\n/Page /X 1>>"), 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, err := scanPDFPages(bytes.NewReader(tt.doc))
			if err != nil || n != tt.want {
				t.Errorf("scanPDFPages = %d, %v; want %d", n, err, tt.want)
			}
			n, err = Pages(bytes.NewReader(tt.doc), int64(len(tt.doc)), PDF)
			if err != nil || n != tt.want {
				t.Errorf("Pages = %d, %v; want %d", n, err, tt.want)
			}
		})
	}
}

// TestSamples counts the pages of the interop sample documents.
func TestSamples(t *testing.T) {
	dir := samples(t)
	tests := []struct {
		file   string
		format string
		pages  int
	}{
		{"document-a4.pdf", PDF, 4},
		{"document-letter.pdf", PDF, 4},
		{"onepage-a4.pdf", PDF, 1},
		{"testfile.pdf", PDF, 8},
		{"document-a4.ps", PostScript, 4},
		{"onepage-a4.ps", PostScript, 1},
		{"onepage-a4-300-black-1.pwg", PWGRaster, 1},
		{"onepage-letter-300-black-1.pwg", PWGRaster, 1},
		{"color.jpg", JPEG, 1},
		{"gray.jpg", JPEG, 1},
		{"testfile.txt", Text, 1},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join(dir, tt.file))
			if err != nil {
				t.Fatal(err)
			}
			// The PWG samples are stored gzipped, as CUPS ships them;
			// ipptool sends them decompressed.
			if bytes.HasPrefix(data, []byte{0x1f, 0x8b}) {
				zr, err := gzip.NewReader(bytes.NewReader(data))
				if err != nil {
					t.Fatal(err)
				}
				if data, err = io.ReadAll(zr); err != nil {
					t.Fatal(err)
				}
			}
			if got := Detect(data[:min(len(data), HeadSize)]); got != tt.format {
				t.Errorf("Detect = %q, want %q", got, tt.format)
			}
			n, err := Pages(bytes.NewReader(data), int64(len(data)), tt.format)
			if err != nil || n != tt.pages {
				t.Errorf("Pages = %d, %v; want %d", n, err, tt.pages)
			}
		})
	}
}

func FuzzDetect(f *testing.F) {
	for _, tt := range pageCases() {
		f.Add(tt.doc[:min(len(tt.doc), HeadSize)])
	}
	f.Fuzz(func(t *testing.T, head []byte) {
		got := Detect(head)
		if got == "" {
			t.Fatal("Detect returned no type")
		}
	})
}

func FuzzPages(f *testing.F) {
	for _, tt := range pageCases() {
		f.Add(tt.doc)
	}
	formats := []string{PDF, PostScript, PWGRaster, JPEG, URF, Text}
	f.Fuzz(func(t *testing.T, doc []byte) {
		for _, format := range formats {
			done := make(chan struct{})
			var n int
			var err error
			go func() {
				defer close(done)
				n, err = Pages(bytes.NewReader(doc), int64(len(doc)), format)
			}()
			select {
			case <-done:
			case <-time.After(5 * time.Second):
				t.Fatalf("%s: Pages did not return", format)
			}
			if err == nil && n < 0 {
				t.Fatalf("%s: negative page count %d", format, n)
			}
		}
	})
}

// TestPDFCPU checks the pdfcpu reader itself.
func TestPDFCPU(t *testing.T) {
	for _, n := range []int{1, 7} {
		doc := docformattest.PDF(n)
		got, err := pdfcpuPages(bytes.NewReader(doc))
		if err != nil || got != n {
			t.Errorf("pdfcpuPages = %d, %v; want %d", got, err, n)
		}
	}
}
