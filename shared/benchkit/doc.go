// Package benchkit is what the daemons' benchmark tools (tsbench,
// printbench, nfsbench) share: process accounting from /proc (CPU time and
// memory of a server under test) and starting, watching and stopping such a
// process; medians and candidate/baseline ratios with the range of the
// round-by-round ratios; the Markdown report section writer, which keeps
// the rest of the file; the fsync probe and load average taken at the start
// and end of a run; the machine line of a report; and the command-line
// plumbing: flag parsing, exit codes and progress lines.
//
// ABBA round scheduling is not here: each tool takes turns in its own way
// (slices of one timed phase, whole runs, operations of a round).
package benchkit
