package benchkit

import (
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// ReplaceSection puts text between the <!-- BEGIN tool --> and
// <!-- END tool --> markers of file name, appending the marked section when
// the markers are absent and keeping the rest of the file.
func ReplaceSection(name, tool, text string) error {
	old, err := os.ReadFile(name)
	if err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("read %s: %w", name, err)
	}
	return WriteFile(name, SpliceSection(string(old), tool, text))
}

// SpliceSection returns doc with the text between tool's markers replaced,
// or with the marked section appended after a blank line when doc has no
// BEGIN marker followed by an END marker.
func SpliceSection(doc, tool, text string) string {
	begin, end := "<!-- BEGIN "+tool+" -->", "<!-- END "+tool+" -->"
	body := begin + "\n" + strings.TrimRight(text, "\n") + "\n" + end
	i := strings.Index(doc, begin)
	j := -1
	if i >= 0 {
		if k := strings.Index(doc[i:], end); k >= 0 {
			j = i + k + len(end)
		}
	}
	if i < 0 || j < 0 {
		switch {
		case doc == "":
		case strings.HasSuffix(doc, "\n\n"):
		case strings.HasSuffix(doc, "\n"):
			doc += "\n"
		default:
			doc += "\n\n"
		}
		return doc + body + "\n"
	}
	return doc[:i] + body + doc[j:]
}

// WriteReport writes text to stdout and, when out is not "", puts section
// (text, perhaps after a header) between tool's markers of file out,
// keeping the rest of the file, and says so with logf.
func WriteReport(stdout io.Writer, text, out, tool, section string, logf func(format string, args ...any)) error {
	if _, err := io.WriteString(stdout, text); err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	if out == "" {
		return nil
	}
	if err := ReplaceSection(out, tool, section); err != nil {
		return err
	}
	logf("wrote %s", out)
	return nil
}

// WriteFile replaces name with text through a temporary file, creating its
// directory if needed.
func WriteFile(name, text string) error {
	if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	tmp := name + ".tmp"
	if err := os.WriteFile(tmp, []byte(text), 0o644); err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	if err := os.Rename(tmp, name); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write report: %w", err)
	}
	return nil
}

// Median returns the median of v, NaN values left out; 0 when none is left.
func Median(v []float64) float64 {
	s := slices.DeleteFunc(slices.Clone(v), math.IsNaN)
	if len(s) == 0 {
		return 0
	}
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// Ratios returns the round-by-round ratios cand[k]/base[k], leaving out
// rounds where either value is NaN (not measured) or base[k] is not
// positive.
func Ratios(cand, base []float64) []float64 {
	var q []float64
	for k := range min(len(cand), len(base)) {
		if math.IsNaN(cand[k]) || !(base[k] > 0) {
			continue
		}
		q = append(q, cand[k]/base[k])
	}
	return q
}

// RoundRange returns the smallest and largest of the round-by-round
// ratios (Ratios); ok is false when there is none.
func RoundRange(cand, base []float64) (lo, hi float64, ok bool) {
	q := Ratios(cand, base)
	if len(q) == 0 {
		return 0, 0, false
	}
	return slices.Min(q), slices.Max(q), true
}

// PairedRatio returns how cand compares with base: the median of the
// round-by-round ratios. Each round runs both, back to back, so each of
// its ratios compares them under the same load of the machine, which the
// ratio of the two medians (taken from different rounds) does not. With
// no round measuring both, it is the ratio of the medians; ok is false
// when either has no value or the median of base is not positive.
func PairedRatio(cand, base []float64) (ratio float64, ok bool) {
	if q := Ratios(cand, base); len(q) > 0 {
		return Median(q), true
	}
	cm, bm := Median(cand), Median(base)
	if count(cand) == 0 || count(base) == 0 || !(bm > 0) {
		return 0, false
	}
	return cm / bm, true
}

// Ratio formats PairedRatio with the range of the round-by-round ratios,
// as in "1.23 (1.10–1.40)", or "–" when there is no ratio.
func Ratio(cand, base []float64) string {
	q, ok := PairedRatio(cand, base)
	if !ok {
		return "–"
	}
	s := fmt.Sprintf("%.2f", q)
	if lo, hi, ok := RoundRange(cand, base); ok {
		s += fmt.Sprintf(" (%.2f–%.2f)", lo, hi)
	}
	return s
}

// count returns the number of values of v that are not NaN.
func count(v []float64) int {
	n := 0
	for _, x := range v {
		if !math.IsNaN(x) {
			n++
		}
	}
	return n
}

// PassFail formats a target's result: "PASS" or a bold "**FAIL**".
func PassFail(ok bool) string {
	if ok {
		return "PASS"
	}
	return "**FAIL**"
}

// MS formats d in milliseconds, as in "1.25 ms".
func MS(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d)/1e6) }

// MB converts KiB to MB (10^6 bytes).
func MB(kib uint64) float64 { return float64(kib) * 1024 / 1e6 }
