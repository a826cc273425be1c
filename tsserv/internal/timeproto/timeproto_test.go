package timeproto

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"example.com/appliance/shared/netsrv"
)

// feedCases are streams, cut into reads, with the messages they frame.
var feedCases = []struct {
	name  string
	reads []string
	max   int
	want  []string // messages, then "EOF:" + the flushed one if any
	err   bool
}{
	{name: "bare text per read", reads: []string{"hello", "world"}, want: []string{"hello", "world"}},
	{name: "one line", reads: []string{"a\n"}, want: []string{"a\n"}},
	{name: "two lines in one read", reads: []string{"a\nb\n"}, want: []string{"a\n", "b\n"}},
	{name: "crlf kept", reads: []string{"x\r\n"}, want: []string{"x\r\n"}},
	{name: "line split across reads", reads: []string{"ab\nc", "d", "e\n"}, want: []string{"ab\n", "cde\n"}},
	{name: "unterminated last line flushed at EOF", reads: []string{"a\nb"}, want: []string{"a\n", "EOF:b"}},
	{name: "empty line", reads: []string{"\n"}, want: []string{"\n"}},
	{name: "bare text then lines", reads: []string{"raw", "l1\nl2\n"}, want: []string{"raw", "l1\n", "l2\n"}},
	{name: "line at the limit", reads: []string{"abc\n"}, max: 4, want: []string{"abc\n"}},
	{name: "line over the limit", reads: []string{"abcd\n"}, max: 4, err: true},
	{name: "pending over the limit", reads: []string{"a\n", "bbbbb"}, max: 4, want: []string{"a\n"}, err: true},
	{name: "pending grows over the limit", reads: []string{"a\nbb", "bb", "b"}, max: 4, want: []string{"a\n"}, err: true},
}

func TestFramer(t *testing.T) {
	for _, tt := range feedCases {
		t.Run(tt.name, func(t *testing.T) {
			f := Framer{Max: tt.max}
			var got []string
			emit := func(m []byte) { got = append(got, string(m)) }
			var err error
			for _, r := range tt.reads {
				if err = f.Feed([]byte(r), emit); err != nil {
					break
				}
			}
			if err == nil {
				f.Flush(func(m []byte) { got = append(got, "EOF:"+string(m)) })
			}
			if (err != nil) != tt.err || err != nil && !errors.Is(err, ErrTooLong) {
				t.Fatalf("err = %v, want error %v", err, tt.err)
			}
			if fmt.Sprintf("%q", got) != fmt.Sprintf("%q", tt.want) {
				t.Errorf("messages %q, want %q", got, tt.want)
			}
		})
	}
}

// FuzzFramer checks that framing never loses, invents or reorders bytes
// and never passes the limit, however a stream is cut into reads.
func FuzzFramer(f *testing.F) {
	for _, tt := range feedCases {
		f.Add([]byte(strings.Join(tt.reads, "")), uint8(3), uint16(tt.max))
	}
	f.Fuzz(func(t *testing.T, stream []byte, cut uint8, max uint16) {
		fr := Framer{Max: int(max)}
		var out []byte
		emit := func(m []byte) {
			if fr.Max > 0 && len(m) > fr.Max {
				t.Fatalf("message of %d bytes passed the limit %d", len(m), fr.Max)
			}
			if len(m) == 0 {
				t.Fatal("empty message")
			}
			out = append(out, m...)
		}
		step := int(cut%16) + 1
		for i := 0; i < len(stream); i += step {
			if err := fr.Feed(stream[i:min(i+step, len(stream))], emit); err != nil {
				if !errors.Is(err, ErrTooLong) {
					t.Fatal(err)
				}
				if !bytes.HasPrefix(stream, out) {
					t.Fatalf("emitted %q is not a prefix of %q", out, stream)
				}
				return
			}
		}
		fr.Flush(emit)
		if !bytes.Equal(out, stream) {
			t.Fatalf("emitted %q, sent %q", out, stream)
		}
	})
}

func TestFormats(t *testing.T) {
	loc := time.FixedZone("X", 3600)
	at := time.Date(2026, 11, 5, 11, 56, 10, 0, loc)
	tests := []struct {
		format string
		want   string
	}{
		{"ctime", "[Thu Nov  5 11:56:10 2026] hi"},
		{"rfc3339", "[2026-11-05T11:56:10+01:00] hi"},
		{"unix", "[1793876170] hi"},
	}
	for _, tt := range tests {
		t.Run(tt.format, func(t *testing.T) {
			f, err := ParseFormat(tt.format)
			if err != nil {
				t.Fatal(err)
			}
			if f.String() != tt.format {
				t.Errorf("String() = %q", f.String())
			}
			h := &Handler{Now: func() time.Time { return at }}
			h.SetFormat(f)
			if got := string(h.AppendReply(nil, []byte("hi"))); got != tt.want {
				t.Errorf("reply %q, want %q", got, tt.want)
			}
		})
	}
	if _, err := ParseFormat("iso"); err == nil {
		t.Error("ParseFormat(iso) succeeded")
	}
}

func TestStampFollowsTheClock(t *testing.T) {
	at := time.Date(2026, 11, 25, 11, 56, 10, 0, time.UTC)
	h := &Handler{Now: func() time.Time { return at }}
	first := string(h.AppendReply(nil, nil))
	at = at.Add(time.Second)
	if second := string(h.AppendReply(nil, nil)); second == first {
		t.Errorf("stamp %q did not change with the clock", second)
	}
	h.SetFormat(Unix)
	if got := string(h.AppendReply(nil, nil)); got != "[1795607771] " {
		t.Errorf("stamp after SetFormat: %q", got)
	}
}

func TestServeConn(t *testing.T) {
	at := time.Date(2026, 11, 25, 11, 56, 10, 0, time.UTC)
	h := &Handler{Now: func() time.Time { return at }}
	srv, cli := net.Pipe()
	done := make(chan error, 1)
	go func() { done <- h.ServeConn(context.Background(), srv) }()
	read := func() string {
		buf := make([]byte, 256)
		n, err := cli.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		return string(buf[:n])
	}
	io.WriteString(cli, "hello")
	if got := read(); got != "[Wed Nov 25 11:56:10 2026] hello" {
		t.Errorf("bare text: %q", got)
	}
	io.WriteString(cli, "a\nb\n")
	if got := read(); got != "[Wed Nov 25 11:56:10 2026] a\n[Wed Nov 25 11:56:10 2026] b\n" {
		t.Errorf("two lines: %q", got)
	}
	cli.Close()
	if err := <-done; err != nil && !errors.Is(err, io.ErrClosedPipe) {
		t.Errorf("ServeConn: %v", err)
	}
}

type recorder struct {
	got  []byte
	to   net.Addr
	fail error
}

func (r *recorder) WriteTo(p []byte, addr net.Addr) (int, error) {
	r.got, r.to = append([]byte(nil), p...), addr
	return len(p), r.fail
}

func TestServePacket(t *testing.T) {
	at := time.Date(2026, 11, 25, 11, 56, 10, 0, time.UTC)
	h := &Handler{Now: func() time.Time { return at }}
	from := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000}
	var w recorder
	if err := h.ServePacket(context.Background(), &w, []byte("ping"), from); err != nil {
		t.Fatal(err)
	}
	if string(w.got) != "[Wed Nov 25 11:56:10 2026] ping" || w.to != from {
		t.Errorf("sent %q to %v", w.got, w.to)
	}
	if err := h.ServePacket(context.Background(), &w, []byte("x"), &net.UnixAddr{Net: "unixgram"}); err == nil {
		t.Error("reply to an unnamed unixgram socket did not fail")
	}
	if err := h.ServePacket(context.Background(), &w, []byte("x"), &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 7}); !errors.Is(err, netsrv.ErrBadRequest) {
		t.Errorf("datagram from the echo port: %v, want it dropped", err)
	}
	big := make([]byte, maxUDPReply-10)
	if err := h.ServePacket(context.Background(), &w, big, from); !errors.Is(err, netsrv.ErrTooLarge) {
		t.Errorf("reply too large for a datagram: %v", err)
	}
	w.fail = errors.New("boom")
	if err := h.ServePacket(context.Background(), &w, []byte("x"), from); err == nil {
		t.Error("write error not returned")
	}
}

func BenchmarkAppendReply(b *testing.B) {
	h := &Handler{}
	buf := make([]byte, 0, 128)
	msg := []byte("hello\n")
	for b.Loop() {
		buf = h.AppendReply(buf[:0], msg)
	}
}
