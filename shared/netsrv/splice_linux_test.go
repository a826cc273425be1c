package netsrv

import (
	"context"
	"io"
	"net"
	"os"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestSpliceFrom sends pipe contents with Conn.SpliceFrom: the client
// gets them, and they are counted as sent; asking for more than the
// pipe holds fails instead of waiting.
func TestSpliceFrom(t *testing.T) {
	tests := []struct {
		name    string
		in      string // written to the pipe
		n       int    // spliced
		want    string // received
		wantErr bool
		open    bool // the pipe's write end stays open: empty, not at its end
	}{
		{"all", "hello, splice", 13, "hello, splice", false, false},
		{"part", "hello, splice", 5, "hello", false, false},
		{"more than the pipe holds", "short", 10, "short", true, false},
		{"more than an open pipe holds", "short", 10, "short", true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			errc := make(chan error, 1)
			h := StreamHandlerFunc(func(ctx context.Context, c net.Conn) error {
				pr, pw, err := os.Pipe()
				if err != nil {
					errc <- err
					return err
				}
				defer pr.Close()
				if _, err := pw.WriteString(tt.in); err != nil {
					errc <- err
					return err
				}
				if tt.open {
					defer pw.Close()
				} else {
					pw.Close()
				}
				sent, err := c.(*Conn).SpliceFrom(int(pr.Fd()), tt.n)
				if err == nil && sent != int64(tt.n) {
					err = io.ErrShortWrite
				}
				errc <- err
				return nil
			})
			reg := prometheus.NewRegistry()
			s := &Server{Handler: h, Metrics: NewMetrics(reg, "test")}
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			serve(t, s, l)
			c := dial(t, l.Addr().String())
			got, err := io.ReadAll(c)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tt.want {
				t.Errorf("received %q, want %q", got, tt.want)
			}
			if err := <-errc; (err != nil) != tt.wantErr {
				t.Errorf("SpliceFrom: %v, want error %v", err, tt.wantErr)
			} else if err != nil && !strings.Contains(err.Error(), "pipe empty") {
				t.Errorf("SpliceFrom: %v, want the pipe found empty", err)
			}
			if sent := testutil.ToFloat64(s.Metrics.sent.WithLabelValues("tcp")); sent != float64(len(tt.want)) {
				t.Errorf("sent_bytes_total = %v, want %d", sent, len(tt.want))
			}
		})
	}
}
