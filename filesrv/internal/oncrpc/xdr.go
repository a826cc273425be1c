package oncrpc

import (
	"encoding/binary"
	"errors"
)

// ErrGarbage is returned by Reader when the data ends early or a length
// is out of range; servers answer it with GARBAGE_ARGS.
var ErrGarbage = errors.New("xdr: malformed data")

// Reader decodes XDR (RFC 4506) from a byte slice. The first error sticks:
// later reads return zero values, and Err reports it, so a decoder can read
// a whole structure and check once.
type Reader struct {
	b   []byte
	err error
}

// NewReader returns a Reader over b.
func NewReader(b []byte) *Reader { return &Reader{b: b} }

// Err returns the first decoding error.
func (r *Reader) Err() error { return r.err }

// Len returns the number of unread bytes.
func (r *Reader) Len() int { return len(r.b) }

// Rest returns the unread bytes.
func (r *Reader) Rest() []byte { return r.b }

func (r *Reader) take(n int) []byte {
	if r.err != nil {
		return nil
	}
	if n < 0 || n > len(r.b) {
		r.err = ErrGarbage
		r.b = nil
		return nil
	}
	p := r.b[:n]
	r.b = r.b[n:]
	return p
}

// Uint32 reads an unsigned int.
func (r *Reader) Uint32() uint32 {
	p := r.take(4)
	if p == nil {
		return 0
	}
	return binary.BigEndian.Uint32(p)
}

// Uint64 reads an unsigned hyper.
func (r *Reader) Uint64() uint64 {
	p := r.take(8)
	if p == nil {
		return 0
	}
	return binary.BigEndian.Uint64(p)
}

// Bool reads a bool; values other than 0 and 1 are garbage.
func (r *Reader) Bool() bool {
	v := r.Uint32()
	if v > 1 {
		r.fail()
	}
	return v == 1
}

func (r *Reader) fail() {
	if r.err == nil {
		r.err = ErrGarbage
	}
}

// Opaque reads variable-length opaque data of at most max bytes, skipping
// its padding. The result aliases the input.
func (r *Reader) Opaque(max int) []byte {
	n := r.Uint32()
	if r.err != nil {
		return nil
	}
	if uint64(n) > uint64(max) {
		r.fail()
		return nil
	}
	p := r.take(int(n))
	r.take(pad(int(n)))
	return p
}

// Fixed reads fixed-length opaque data of n bytes plus padding.
func (r *Reader) Fixed(n int) []byte {
	p := r.take(n)
	r.take(pad(n))
	return p
}

// String reads a string of at most max bytes.
func (r *Reader) String(max int) string { return string(r.Opaque(max)) }

func pad(n int) int { return (4 - n%4) % 4 }

// Writer encodes XDR into a growing buffer, which a reply's last field
// may extend with data spliced from a file (SpliceFrom).
type Writer struct {
	b        []byte
	spliceOK bool  // the connection can send a tail
	tail     *tail // sent after b
}

// NewWriter returns a Writer that appends to buf[:0].
func NewWriter(buf []byte) *Writer { return &Writer{b: buf[:0]} }

// Bytes returns the encoded data.
func (w *Writer) Bytes() []byte { return w.b }

// Len returns the number of bytes written.
func (w *Writer) Len() int { return len(w.b) }

// Truncate discards everything after the first n bytes, so a reply can be
// rewritten after a late error.
func (w *Writer) Truncate(n int) { w.b = w.b[:n] }

// Uint32 writes an unsigned int.
func (w *Writer) Uint32(v uint32) { w.b = binary.BigEndian.AppendUint32(w.b, v) }

// Uint64 writes an unsigned hyper.
func (w *Writer) Uint64(v uint64) { w.b = binary.BigEndian.AppendUint64(w.b, v) }

// Bool writes a bool.
func (w *Writer) Bool(v bool) {
	if v {
		w.Uint32(1)
	} else {
		w.Uint32(0)
	}
}

// Opaque writes variable-length opaque data with its padding.
func (w *Writer) Opaque(p []byte) {
	w.Uint32(uint32(len(p)))
	w.Fixed(p)
}

// Fixed writes fixed-length opaque data with its padding.
func (w *Writer) Fixed(p []byte) {
	w.b = append(w.b, p...)
	for range pad(len(p)) {
		w.b = append(w.b, 0)
	}
}

// String writes a string.
func (w *Writer) String(s string) {
	w.Uint32(uint32(len(s)))
	w.b = append(w.b, s...)
	for range pad(len(s)) {
		w.b = append(w.b, 0)
	}
}

// Extend appends n bytes and returns them, for the caller to fill in
// place (a READ's data, read straight into the reply). Their content is
// whatever the buffer held: the caller overwrites or truncates them.
func (w *Writer) Extend(n int) []byte {
	start := len(w.b)
	w.b = growBuf(w.b, n)
	return w.b[start:]
}

// Raw appends already-encoded bytes.
func (w *Writer) Raw(p []byte) { w.b = append(w.b, p...) }
