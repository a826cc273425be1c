package oncrpc

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"example.com/appliance/shared/netsrv"
)

// lastFragment is the record mark's top bit: this fragment ends the record
// (RFC 5531 section 11).
const lastFragment = 1 << 31

// ErrRecordTooLarge is returned by RecordReader for a record whose
// fragments add up to more than the limit. It wraps netsrv.ErrTooLarge,
// so the server counts it and logs it only at debug.
var ErrRecordTooLarge = fmt.Errorf("oncrpc: record too large: %w", netsrv.ErrTooLarge)

// RecordReader reads record-marked RPC messages from a stream, putting
// multi-fragment records back together.
type RecordReader struct {
	r *bufio.Reader
	// Started, when set, is called once the first byte of a record has
	// arrived, before the rest is read (see netsrv.MessagePending).
	Started func()
}

// readBuffer is the read buffer of a RecordReader: small, as every
// connection has one; bodies bigger than it are read past it, straight
// into the record.
const readBuffer = 8 << 10

// NewRecordReader returns a RecordReader over r.
func NewRecordReader(r io.Reader) *RecordReader {
	return &RecordReader{r: bufio.NewReaderSize(r, readBuffer)}
}

// Buffered returns the number of bytes received and not yet read: more
// than 0 after a record means the peer sent the start of another.
func (rr *RecordReader) Buffered() int { return rr.r.Buffered() }

// ReadRecord reads the next record, appending it to buf[:0], and returns
// it. A record longer than max bytes (max <= 0: no limit) stops the read
// with ErrRecordTooLarge, without reading the rest: the stream is then
// out of step and must be closed. io.EOF means the peer closed between
// records; io.ErrUnexpectedEOF, in the middle of one.
func (rr *RecordReader) ReadRecord(buf []byte, max int) ([]byte, error) {
	rec := buf[:0]
	// Wait for the first byte with the idle timeout, then tell the caller.
	if _, err := rr.r.Peek(1); err != nil {
		return rec, err
	}
	if rr.Started != nil {
		rr.Started()
	}
	var mark [4]byte
	for {
		if _, err := io.ReadFull(rr.r, mark[:]); err != nil {
			return rec, unexpected(err)
		}
		m := binary.BigEndian.Uint32(mark[:])
		n := int(m &^ lastFragment)
		if max > 0 && n > max-len(rec) {
			return rec, ErrRecordTooLarge
		}
		start := len(rec)
		rec = growBuf(rec, n)
		if _, err := io.ReadFull(rr.r, rec[start:]); err != nil {
			return rec, unexpected(err)
		}
		if m&lastFragment != 0 {
			return rec, nil
		}
	}
}

// unexpected turns an EOF inside a record into io.ErrUnexpectedEOF.
func unexpected(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// MarkRecord writes the record mark for a single-fragment record into the
// first 4 bytes of b, which hold the message after them.
func MarkRecord(b []byte) {
	binary.BigEndian.PutUint32(b, uint32(len(b)-4)|lastFragment)
}

// WriteRecord writes msg as one record of a single last fragment.
func WriteRecord(w io.Writer, msg []byte) error {
	b := make([]byte, 4+len(msg))
	copy(b[4:], msg)
	MarkRecord(b)
	_, err := w.Write(b)
	return err
}
