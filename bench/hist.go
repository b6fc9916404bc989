package bench

import (
	"math/bits"
	"time"
)

// Hist is a histogram of durations in microseconds, exact below 256 µs and
// within 0.4 % above (128 buckets per doubling: ±1 ms at 300 ms), small
// enough to send between processes and to merge. The zero value is empty.
type Hist struct {
	Counts map[int]uint64 `json:"counts,omitempty"` // bucket index → count
	N      uint64         `json:"n"`
	SumUS  float64        `json:"sum_us"`
	MaxUS  int64          `json:"max_us"`
}

const histSub = 128 // buckets per doubling past 256 µs

func histBucket(us int64) int {
	if us < 2*histSub {
		return int(max(us, 0))
	}
	shift := bits.Len64(uint64(us)) - 8
	return histSub*shift + int(us>>shift)
}

// histValue is the middle of a bucket, in microseconds.
func histValue(i int) float64 {
	if i < 2*histSub {
		return float64(i)
	}
	shift := i/histSub - 1
	top := int64(i%histSub + histSub)
	lo := top << shift
	return float64(lo) + float64(int64(1)<<shift)/2
}

// Add records one duration.
func (h *Hist) Add(d time.Duration) {
	us := d.Microseconds()
	if h.Counts == nil {
		h.Counts = make(map[int]uint64)
	}
	h.Counts[histBucket(us)]++
	h.N++
	h.SumUS += float64(us)
	h.MaxUS = max(h.MaxUS, us)
}

// Merge adds o's counts to h.
func (h *Hist) Merge(o *Hist) {
	if o == nil || o.N == 0 {
		return
	}
	if h.Counts == nil {
		h.Counts = make(map[int]uint64)
	}
	for i, c := range o.Counts {
		h.Counts[i] += c
	}
	h.N += o.N
	h.SumUS += o.SumUS
	h.MaxUS = max(h.MaxUS, o.MaxUS)
}

// Quantile returns the q-quantile (0 < q ≤ 1) in milliseconds, or 0 when
// empty.
func (h *Hist) Quantile(q float64) float64 {
	if h == nil || h.N == 0 {
		return 0
	}
	rank := uint64(q*float64(h.N) + 0.5)
	rank = min(max(rank, 1), h.N)
	top := 0
	for i := range h.Counts {
		top = max(top, i)
	}
	var seen uint64
	for i := 0; i <= top; i++ {
		seen += h.Counts[i]
		if seen >= rank {
			return min(histValue(i), float64(h.MaxUS)) / 1000
		}
	}
	return float64(h.MaxUS) / 1000
}

// Summary is a histogram's usual figures, in milliseconds.
type Summary struct {
	N    uint64  `json:"n"`
	Mean float64 `json:"mean_ms"`
	P50  float64 `json:"p50_ms"`
	P90  float64 `json:"p90_ms"`
	P99  float64 `json:"p99_ms"`
	Max  float64 `json:"max_ms"`
}

// Summary returns h's figures.
func (h *Hist) Summary() Summary {
	if h == nil || h.N == 0 {
		return Summary{}
	}
	return Summary{N: h.N, Mean: h.SumUS / float64(h.N) / 1000, P50: h.Quantile(0.5), P90: h.Quantile(0.9),
		P99: h.Quantile(0.99), Max: float64(h.MaxUS) / 1000}
}
