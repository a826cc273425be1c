package docformat

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"example.com/appliance/printsrv/internal/docformat/docformattest"
)

// TestQuickPDFPages checks that the quick path agrees with pdfcpu where it
// answers, and leaves to pdfcpu what it does not understand.
func TestQuickPDFPages(t *testing.T) {
	docs := map[string][]byte{}
	for _, n := range []int{1, 2, 7, 40, 400} {
		docs[fmt.Sprintf("made %d pages", n)] = docformattest.PDF(n)
	}
	dir := samples(t)
	for _, f := range []string{"document-a4.pdf", "document-letter.pdf", "onepage-a4.pdf", "onepage-letter.pdf", "testfile.pdf"} {
		b, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		docs[f] = b
	}
	for name, doc := range docs {
		n, ok := quickPDFPages(bytes.NewReader(doc), int64(len(doc)))
		want, err := pdfcpuPages(bytes.NewReader(doc))
		if !ok || err != nil || n != want {
			t.Errorf("%s: quickPDFPages = %d, %v; pdfcpu %d, %v", name, n, ok, want, err)
		}
	}

	doc := docformattest.PDF(3)
	edit := func(old, new string) []byte { return bytes.Replace(bytes.Clone(doc), []byte(old), []byte(new), 1) }
	for name, bad := range map[string][]byte{
		"incremental update": edit("/Root 1 0 R", "/Root 1 0 R /Prev 9"),
		"hybrid xref":        edit("/Root 1 0 R", "/Root 1 0 R /XRefStm 9"),
		"encrypted":          edit("/Root 1 0 R", "/Root 1 0 R /Encrypt 9 0 R"),
		"indirect count":     edit("/Count 3", "/Count 9 0 R"),
		"not a page tree":    edit("/Type /Pages", "/Type /Catalog"),
		"wrong generation":   edit("/Pages 2 0 R", "/Pages 2 1 R"),
		"startxref nowhere":  append(bytes.Clone(doc[:bytes.LastIndex(doc, []byte("startxref"))]), "startxref\n999999\n%%EOF\n"...),
		"short xref entries": bytes.ReplaceAll(bytes.Clone(doc), []byte(" n \n"), []byte(" n\n")),
		"unterminated dict":  edit(">>\nendobj", "\nendobj"),
	} {
		if n, ok := quickPDFPages(bytes.NewReader(bad), int64(len(bad))); ok {
			t.Errorf("%s: quickPDFPages = %d, want no answer", name, n)
		}
	}
	// Nothing it is given makes it fail badly, and where pdfcpu reads a
	// damaged file, an answer agrees with pdfcpu's.
	check := func(b []byte) {
		n, ok := quickPDFPages(bytes.NewReader(b), int64(len(b)))
		if !ok {
			return
		}
		if want, err := pdfcpuPages(bytes.NewReader(b)); err == nil && want != n {
			t.Errorf("quickPDFPages = %d, pdfcpu %d for %q", n, want, b)
		}
	}
	for i := range doc {
		check(doc[:i])
		for _, c := range []byte{0, ' ', '(', '<', '[', '/', '9'} {
			b := bytes.Clone(doc)
			b[i] = c
			check(b)
		}
	}
}

// BenchmarkPDFPages counts the pages of the 64 KB interop sample.
func BenchmarkPDFPages(b *testing.B) {
	doc, err := os.ReadFile(filepath.Join(samples(b), "testfile.pdf"))
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if n, err := Pages(bytes.NewReader(doc), int64(len(doc)), PDF); err != nil || n != 8 {
			b.Fatal(n, err)
		}
	}
}
