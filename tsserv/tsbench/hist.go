package main

import (
	"math/bits"
	"time"
)

// The latency histogram is log-linear: values below 2^subBits nanoseconds
// get a bucket each, and every later power of two is cut into 2^subBits
// equal buckets, so a bucket is never wider than 1/64 (1.6%) of its value.
// Values above maxShift are clamped into the last bucket (about 69 s).
const (
	subBits    = 6
	subCount   = 1 << subBits
	maxShift   = 30
	numBuckets = (maxShift+1)*subCount + subCount
)

// histogram counts latencies. One belongs to one worker; merge adds them up.
type histogram struct {
	counts [numBuckets]uint32
	n      uint64
}

// bucketOf returns the bucket of a latency in nanoseconds.
func bucketOf(v int64) int {
	if v < 0 {
		v = 0
	}
	if v < 2*subCount {
		return int(v)
	}
	shift := bits.Len64(uint64(v)) - 1 - subBits // v>>shift is in [subCount, 2*subCount)
	if shift > maxShift {
		return numBuckets - 1
	}
	return shift*subCount + int(v>>uint(shift))
}

// bucketValue returns the midpoint, in nanoseconds, of bucket i.
func bucketValue(i int) int64 {
	if i < 2*subCount {
		return int64(i)
	}
	shift := i/subCount - 1
	sub := int64(i%subCount + subCount)
	return sub<<uint(shift) + (int64(1)<<uint(shift))/2
}

func (h *histogram) record(d time.Duration) {
	h.counts[bucketOf(int64(d))]++
	h.n++
}

// latencies is the merged histogram of one measurement.
type latencies struct {
	counts [numBuckets]uint64
	n      uint64
}

func (l *latencies) merge(h *histogram) {
	for i, c := range h.counts {
		l.counts[i] += uint64(c)
	}
	l.n += h.n
}

// quantile returns the latency below which a fraction q of the samples fall,
// or 0 when there are none.
func (l *latencies) quantile(q float64) time.Duration {
	if l.n == 0 {
		return 0
	}
	rank := uint64(q*float64(l.n) + 0.5)
	if rank < 1 {
		rank = 1
	}
	if rank > l.n {
		rank = l.n
	}
	var seen uint64
	for i, c := range l.counts {
		seen += c
		if seen >= rank {
			return time.Duration(bucketValue(i))
		}
	}
	return time.Duration(bucketValue(numBuckets - 1))
}
