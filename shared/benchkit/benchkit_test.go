package benchkit

import (
	"errors"
	"flag"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestSpliceSection(t *testing.T) {
	const b, e = "<!-- BEGIN printbench -->", "<!-- END printbench -->"
	for _, tt := range []struct{ name, doc, want string }{
		{"empty", "", b + "\nnew\n" + e + "\n"},
		{"append", "# T\n\ntext\n", "# T\n\ntext\n\n" + b + "\nnew\n" + e + "\n"},
		{"append after one newline", "# T\n", "# T\n\n" + b + "\nnew\n" + e + "\n"},
		{"no final newline", "# T", "# T\n\n" + b + "\nnew\n" + e + "\n"},
		{"replace", "head\n" + b + "\nold\nlines\n" + e + "\ntail\n", "head\n" + b + "\nnew\n" + e + "\ntail\n"},
		{"other tool kept", "<!-- BEGIN nfsbench -->\nx\n<!-- END nfsbench -->\n", "<!-- BEGIN nfsbench -->\nx\n<!-- END nfsbench -->\n\n" + b + "\nnew\n" + e + "\n"},
		{"begin without end", "x\n" + b + "\nold\n", "x\n" + b + "\nold\n\n" + b + "\nnew\n" + e + "\n"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := SpliceSection(tt.doc, "printbench", "new\n\n"); got != tt.want {
				t.Errorf("got\n%q\nwant\n%q", got, tt.want)
			}
		})
	}
}

func TestReplaceSection(t *testing.T) {
	for _, tt := range []struct {
		name, before string // "" for no file
	}{
		{"new file in a new folder", ""},
		{"rest kept", "# Benchmarks\n\nkeep me\n"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			name := filepath.Join(t.TempDir(), "docs", "bench.md")
			if tt.before != "" {
				if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(name, []byte(tt.before), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			for _, text := range []string{"first\n", "second\n"} {
				if err := ReplaceSection(name, "nfsbench", text); err != nil {
					t.Fatal(err)
				}
			}
			b, err := os.ReadFile(name)
			if err != nil {
				t.Fatal(err)
			}
			got := string(b)
			if !strings.HasPrefix(got, tt.before) || strings.Count(got, "BEGIN nfsbench") != 1 || !strings.Contains(got, "second") || strings.Contains(got, "first") {
				t.Errorf("file after two runs:\n%s", got)
			}
		})
	}
}

func TestMedian(t *testing.T) {
	nan := math.NaN()
	for _, tt := range []struct {
		name string
		v    []float64
		want float64
	}{
		{"none", nil, 0},
		{"one", []float64{7}, 7},
		{"odd", []float64{3, 1, 2}, 2},
		{"even", []float64{4, 1, 2, 3}, 2.5},
		{"NaN left out", []float64{nan, 5, 1, nan, 3}, 3},
		{"only NaN", []float64{nan}, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			in := append([]float64(nil), tt.v...)
			if got := Median(tt.v); got != tt.want {
				t.Errorf("Median(%v) = %v, want %v", tt.v, got, tt.want)
			}
			for i := range in {
				if in[i] != tt.v[i] && !math.IsNaN(in[i]) {
					t.Fatalf("Median changed its argument: %v, was %v", tt.v, in)
				}
			}
		})
	}
}

func TestRatio(t *testing.T) {
	nan := math.NaN()
	for _, tt := range []struct {
		name       string
		cand, base []float64
		want       string
		lo, hi     float64
		ok         bool
	}{
		{"same", []float64{10, 10}, []float64{10, 10}, "1.00 (1.00–1.00)", 1, 1, true},
		// The median of the round ratios 2, 3, 2, not 30/10 from different rounds.
		{"range", []float64{20, 30, 40}, []float64{10, 10, 20}, "2.00 (2.00–3.00)", 2, 3, true},
		{"failed rounds left out", []float64{nan, 30, 20}, []float64{10, nan, 10}, "2.00 (2.00–2.00)", 2, 2, true},
		{"no paired round", []float64{30, nan}, []float64{nan, 10}, "3.00", 0, 0, false},
		{"no candidate", nil, []float64{10}, "–", 0, 0, false},
		{"no baseline", []float64{10}, nil, "–", 0, 0, false},
		{"baseline zero", []float64{10}, []float64{0}, "–", 0, 0, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := Ratio(tt.cand, tt.base); got != tt.want {
				t.Errorf("Ratio = %q, want %q", got, tt.want)
			}
			lo, hi, ok := RoundRange(tt.cand, tt.base)
			if ok != tt.ok || ok && (lo != tt.lo || hi != tt.hi) {
				t.Errorf("RoundRange = %v, %v, %v; want %v, %v, %v", lo, hi, ok, tt.lo, tt.hi, tt.ok)
			}
		})
	}
}

func TestParseStatCPU(t *testing.T) {
	for _, tt := range []struct {
		name, stat string
		want       CPU
		wantErr    bool
	}{
		// utime 11, stime 12, cutime 13, cstime 14 counted from field 3 (state S).
		{"parentheses in the name", "1234 (a) b) c) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20\n", CPU{Self: 11 + 12, Children: 13 + 14}, false},
		{"tsserv", "4242 (ts serv) (x)) S 1 4242 4242 0 -1 4194560 1000 0 0 0 1234 567 0 0 20 0 9 0 100 1000000 2000 18446744073709551615\n", CPU{Self: 1234 + 567}, false},
		{"short", "1 (x) S 1 2", CPU{}, true},
		{"no name", "1 x S", CPU{}, true},
		{"not a number", "1 (x) S 1 2 3 4 5 6 7 8 9 10 u 12 13 14\n", CPU{}, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseStatCPU([]byte(tt.stat))
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Errorf("got %+v, %v; want %+v, error %v", got, err, tt.want, tt.wantErr)
			}
		})
	}
	if c := (CPU{Self: 10, Children: 5}).Sub(CPU{Self: 4, Children: 1}); c != (CPU{Self: 6, Children: 4}) {
		t.Errorf("Sub = %+v", c)
	}
}

func TestParseStatusKB(t *testing.T) {
	const status = "Name:\ttsserv\nVmPeak:\t  100 kB\nVmHWM:\t  51234 kB\nVmRSS:\t   81234 kB\nThreads:\t9\n"
	for _, tt := range []struct {
		name, status, key string
		want              uint64
		wantErr           bool
	}{
		{"VmRSS", status, "VmRSS", 81234, false},
		{"VmHWM", status, "VmHWM", 51234, false},
		{"missing", "Name:\tx\n", "VmRSS", 0, true},
		{"no unit", "VmRSS:\t12\n", "VmRSS", 0, true},
		{"not a number", "VmRSS:\tx kB\n", "VmRSS", 0, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseStatusKB([]byte(tt.status), tt.key)
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Errorf("got %d, %v; want %d, error %v", got, err, tt.want, tt.wantErr)
			}
		})
	}
}

func TestFormats(t *testing.T) {
	for _, tt := range []struct{ name, got, want string }{
		{"PassFail true", PassFail(true), "PASS"},
		{"PassFail false", PassFail(false), "**FAIL**"},
		{"MS", MS(1250 * time.Microsecond), "1.25 ms"},
	} {
		if tt.got != tt.want {
			t.Errorf("%s = %q, want %q", tt.name, tt.got, tt.want)
		}
	}
	box := Box{Fsync: [2]time.Duration{time.Millisecond, 2500 * time.Microsecond}, Load: [2]string{"0.50", "1.25"}}
	if got, want := box.Describe("the temp folder"), "creating, writing (4 KiB) and fsyncing a file in the temp folder took 1.00 ms at the start of the run and 2.50 ms at the end (medians of 20); the 1-minute load average was 0.50 at the start and 1.25 at the end ("; !strings.HasPrefix(got, want) || !strings.HasSuffix(got, " CPUs).") {
		t.Errorf("Describe = %q, want %q...", got, want)
	}
	if got := MB(1000); got != 1.024 {
		t.Errorf("MB(1000) = %v, want 1.024", got)
	}
}

func TestTailBuffer(t *testing.T) {
	tb := &TailBuffer{Max: 8}
	if got := tb.Excerpt(); got != "" {
		t.Errorf("empty excerpt = %q", got)
	}
	for _, s := range []string{"abc\n", "defgh\n", "ij"} {
		if n, err := tb.Write([]byte(s)); n != len(s) || err != nil {
			t.Fatalf("Write = %d, %v", n, err)
		}
	}
	if got, want := tb.Excerpt(), "; its output ends:\n\tdefgh\n\tij"; got != want {
		t.Errorf("excerpt = %q, want %q", got, want)
	}
}

func TestParseFlags(t *testing.T) {
	for _, tt := range []struct {
		name      string
		args      []string
		help      bool // flag.ErrHelp
		usage     bool // a UsageError
		wantRound int
	}{
		{"none", nil, false, false, 3},
		{"flag", []string{"-rounds", "5"}, false, false, 5},
		{"help", []string{"-h"}, true, false, 3},
		{"unknown flag", []string{"-nope"}, false, true, 3},
		{"bad value", []string{"-rounds", "x"}, false, true, 0}, // flag stores the failed parse
		{"argument left", []string{"-rounds", "4", "extra"}, false, true, 4},
	} {
		t.Run(tt.name, func(t *testing.T) {
			fs := flag.NewFlagSet("x", flag.ContinueOnError)
			fs.SetOutput(io.Discard)
			rounds := fs.Int("rounds", 3, "")
			err := ParseFlags(fs, tt.args)
			var ue UsageError
			if errors.Is(err, flag.ErrHelp) != tt.help || errors.As(err, &ue) != tt.usage || err == nil && (tt.help || tt.usage) {
				t.Errorf("ParseFlags(%q) = %v", tt.args, err)
			}
			if *rounds != tt.wantRound {
				t.Errorf("rounds = %d, want %d", *rounds, tt.wantRound)
			}
		})
	}
}
