package docformat

import (
	"bytes"
	"io"
	"strconv"
)

// Bounds on what quickPDFPages reads: beyond them it gives up and pdfPages
// asks pdfcpu.
const (
	quickTail    = 1024    // the end of the file, where startxref is
	quickXRefMax = 1 << 20 // the last xref section and its trailer
	quickObjMin  = 1 << 10 // an object's first window, then quickObjMax
	quickObjMax  = 16 << 10
)

// quickPDFPages reads the /Count of a PDF's page tree the way pdfcpu's
// EnsurePageCount does (trailer /Root, the catalog's /Pages, its /Count),
// but only for the plainest files: one classic cross-reference table
// (no /Prev, no /XRefStm, no /Encrypt), catalog and page tree as plain
// objects, /Count a direct integer. It touches a few kilobytes instead of
// parsing every object; ok is false for anything else, and for anything
// malformed, so that pdfcpu decides.
func quickPDFPages(r io.ReaderAt, size int64) (n int, ok bool) {
	if size < 32 {
		return 0, false
	}
	tailLen := min(size, quickTail)
	tail := make([]byte, tailLen)
	if _, err := r.ReadAt(tail, size-tailLen); err != nil {
		return 0, false
	}
	i := bytes.LastIndex(tail, []byte("startxref"))
	if i < 0 {
		return 0, false
	}
	lx := lexer{b: tail, i: i + len("startxref")}
	xrefOff, ok := lx.int()
	if !ok || xrefOff <= 0 || int64(xrefOff) >= size || size-int64(xrefOff) > quickXRefMax {
		return 0, false
	}
	xref := make([]byte, size-int64(xrefOff))
	if _, err := r.ReadAt(xref, int64(xrefOff)); err != nil {
		return 0, false
	}
	table, trailer, ok := parseXRef(xref)
	if !ok {
		return 0, false
	}
	for _, k := range []string{"Prev", "XRefStm", "Encrypt"} {
		if _, has := trailer[k]; has {
			return 0, false
		}
	}
	root, ok := trailer["Root"].ref()
	if !ok {
		return 0, false
	}
	catalog, ok := readDictObject(r, size, table, root)
	if !ok {
		return 0, false
	}
	pagesRef, ok := catalog["Pages"].ref()
	if !ok {
		return 0, false
	}
	pages, ok := readDictObject(r, size, table, pagesRef)
	if !ok || pages["Type"].name != "Pages" || pages["Count"].kind != pdfInt {
		return 0, false
	}
	return pages["Count"].num, true
}

// xrefSub is one subsection of a classic cross-reference table.
type xrefSub struct {
	first, count int
	entries      []byte // count entries of 20 bytes
}

// parseXRef reads a classic xref section ("xref", subsections, then
// "trailer" and its dictionary) at the start of b.
func parseXRef(b []byte) ([]xrefSub, map[string]pdfValue, bool) {
	lx := lexer{b: b}
	if !lx.keyword("xref") {
		return nil, nil, false
	}
	var subs []xrefSub
	for {
		lx.space()
		if bytes.HasPrefix(b[lx.i:], []byte("trailer")) {
			lx.i += len("trailer")
			break
		}
		first, ok1 := lx.int()
		count, ok2 := lx.int()
		if !ok1 || !ok2 || first < 0 || count < 0 || count > len(b)/20 {
			return nil, nil, false
		}
		// The entries start after the line's end of line.
		for lx.i < len(b) && (b[lx.i] == ' ' || b[lx.i] == '\t') {
			lx.i++
		}
		if lx.i < len(b) && b[lx.i] == '\r' {
			lx.i++
		}
		if lx.i < len(b) && b[lx.i] == '\n' {
			lx.i++
		}
		end := lx.i + 20*count
		if end > len(b) {
			return nil, nil, false
		}
		subs = append(subs, xrefSub{first: first, count: count, entries: b[lx.i:end]})
		lx.i = end
	}
	trailer, ok := lx.dict(0)
	return subs, trailer, ok
}

// offset finds where object ref starts, from its in-use xref entry.
func xrefOffset(table []xrefSub, ref objRef) (int64, bool) {
	// The last subsection naming an object wins, as in pdfcpu.
	for k := len(table) - 1; k >= 0; k-- {
		s := table[k]
		if ref.num < s.first || ref.num >= s.first+s.count {
			continue
		}
		e := s.entries[20*(ref.num-s.first):][:20]
		// nnnnnnnnnn ggggg n EOL
		if e[10] != ' ' || e[16] != ' ' || e[17] != 'n' {
			return 0, false
		}
		off, err1 := strconv.ParseInt(string(e[:10]), 10, 64)
		gen, err2 := strconv.Atoi(string(e[11:16]))
		if err1 != nil || err2 != nil || gen != ref.gen {
			return 0, false
		}
		return off, true
	}
	return 0, false
}

// readDictObject reads object ref, which must be "num gen obj << ... >>".
func readDictObject(r io.ReaderAt, size int64, table []xrefSub, ref objRef) (map[string]pdfValue, bool) {
	off, ok := xrefOffset(table, ref)
	if !ok || off < 0 || off >= size {
		return nil, false
	}
	// Most dictionaries fit the first window; a long /Kids array needs
	// the second.
	for _, w := range []int64{quickObjMin, quickObjMax} {
		buf := make([]byte, min(size-off, w))
		if _, err := r.ReadAt(buf, off); err != nil && err != io.EOF {
			return nil, false
		}
		lx := lexer{b: buf}
		num, ok1 := lx.int()
		gen, ok2 := lx.int()
		if !ok1 || !ok2 || num != ref.num || gen != ref.gen || !lx.keyword("obj") {
			return nil, false
		}
		if d, ok := lx.dict(0); ok || int64(len(buf)) == size-off {
			return d, ok
		}
	}
	return nil, false
}

type objRef struct{ num, gen int }

type pdfKind int

const (
	pdfOther pdfKind = iota
	pdfInt
	pdfName
	pdfRef
)

// pdfValue is a dictionary value, as much of it as quickPDFPages reads.
type pdfValue struct {
	kind pdfKind
	num  int    // pdfInt
	name string // pdfName
	r    objRef // pdfRef
}

func (v pdfValue) ref() (objRef, bool) { return v.r, v.kind == pdfRef }

// maxNesting bounds how deep dictionaries and arrays may nest.
const maxNesting = 32

// lexer reads PDF objects from b, from i on; every method fails (false)
// rather than read past b.
type lexer struct {
	b []byte
	i int
}

// space skips white space and comments.
func (l *lexer) space() {
	for l.i < len(l.b) {
		c := l.b[l.i]
		switch {
		case isPDFSpace(c):
			l.i++
		case c == '%':
			for l.i < len(l.b) && l.b[l.i] != '\r' && l.b[l.i] != '\n' {
				l.i++
			}
		default:
			return
		}
	}
}

// ends reports whether a token may end at j (end of data, white space or
// a delimiter).
func (l *lexer) ends(j int) bool {
	return j >= len(l.b) || !isPDFNameChar(l.b[j])
}

// int reads an unsigned integer token.
func (l *lexer) int() (int, bool) {
	l.space()
	j := l.i
	for j < len(l.b) && l.b[j] >= '0' && l.b[j] <= '9' {
		j++
	}
	if j == l.i || j-l.i > 10 || !l.ends(j) {
		return 0, false
	}
	n, err := strconv.Atoi(string(l.b[l.i:j]))
	if err != nil {
		return 0, false
	}
	l.i = j
	return n, true
}

// keyword reads the token k.
func (l *lexer) keyword(k string) bool {
	l.space()
	if !bytes.HasPrefix(l.b[l.i:], []byte(k)) || !l.ends(l.i+len(k)) {
		return false
	}
	l.i += len(k)
	return true
}

// name reads a name token after its slash.
func (l *lexer) name() string {
	j := l.i
	for j < len(l.b) && isPDFNameChar(l.b[j]) {
		j++
	}
	s := string(l.b[l.i:j])
	l.i = j
	return s
}

// dict reads a dictionary and returns its entries.
func (l *lexer) dict(depth int) (map[string]pdfValue, bool) {
	l.space()
	if depth > maxNesting || !bytes.HasPrefix(l.b[l.i:], []byte("<<")) {
		return nil, false
	}
	l.i += 2
	d := map[string]pdfValue{}
	for {
		l.space()
		if l.i >= len(l.b) {
			return nil, false
		}
		if bytes.HasPrefix(l.b[l.i:], []byte(">>")) {
			l.i += 2
			return d, true
		}
		if l.b[l.i] != '/' {
			return nil, false
		}
		l.i++
		k := l.name()
		if _, dup := d[k]; dup {
			return nil, false
		}
		v, ok := l.value(depth + 1)
		if !ok {
			return nil, false
		}
		d[k] = v
	}
}

// value reads any object; it keeps integers, names and references.
func (l *lexer) value(depth int) (pdfValue, bool) {
	l.space()
	if depth > maxNesting || l.i >= len(l.b) {
		return pdfValue{}, false
	}
	switch c := l.b[l.i]; {
	case c == '/':
		l.i++
		return pdfValue{kind: pdfName, name: l.name()}, true
	case bytes.HasPrefix(l.b[l.i:], []byte("<<")):
		_, ok := l.dict(depth)
		return pdfValue{}, ok
	case c == '<':
		j := bytes.IndexByte(l.b[l.i:], '>')
		if j < 0 {
			return pdfValue{}, false
		}
		l.i += j + 1
		return pdfValue{}, true
	case c == '(':
		return pdfValue{}, l.literal()
	case c == '[':
		l.i++
		for {
			l.space()
			if l.i >= len(l.b) {
				return pdfValue{}, false
			}
			if l.b[l.i] == ']' {
				l.i++
				return pdfValue{}, true
			}
			if _, ok := l.value(depth + 1); !ok {
				return pdfValue{}, false
			}
		}
	case c >= '0' && c <= '9':
		save := l.i
		if n, ok := l.int(); ok {
			// An integer, or the start of "num gen R".
			after := l.i
			if gen, ok := l.int(); ok && l.keyword("R") {
				return pdfValue{kind: pdfRef, r: objRef{n, gen}}, true
			}
			l.i = after
			return pdfValue{kind: pdfInt, num: n}, true
		}
		l.i = save
		return l.other()
	case c == '+' || c == '-' || c == '.':
		return l.other()
	case c >= 'a' && c <= 'z':
		for _, k := range []string{"true", "false", "null"} {
			if l.keyword(k) {
				return pdfValue{}, true
			}
		}
	}
	return pdfValue{}, false
}

// other skips a real number or a signed integer.
func (l *lexer) other() (pdfValue, bool) {
	j := l.i
	for j < len(l.b) && bytes.IndexByte([]byte("+-.0123456789"), l.b[j]) >= 0 {
		j++
	}
	if j == l.i || !l.ends(j) {
		return pdfValue{}, false
	}
	l.i = j
	return pdfValue{}, true
}

// literal skips a (string), with its nested parentheses and escapes.
func (l *lexer) literal() bool {
	depth := 0
	for ; l.i < len(l.b); l.i++ {
		switch l.b[l.i] {
		case '\\':
			l.i++
		case '(':
			depth++
		case ')':
			depth--
			if depth == 0 {
				l.i++
				return true
			}
		}
	}
	return false
}
