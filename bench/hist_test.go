package bench

import (
	"math"
	"strings"
	"testing"
	"time"
)

func TestHistQuantilesWithinHalfAPercent(t *testing.T) {
	var h Hist
	for i := 1; i <= 100000; i++ {
		h.Add(time.Duration(i) * time.Microsecond)
	}
	for _, q := range []float64{0.5, 0.9, 0.99} {
		want := q * 100 // ms
		if got := h.Quantile(q); math.Abs(got-want)/want > 0.005 {
			t.Errorf("q%.2f = %.3f ms, want %.3f", q, got, want)
		}
	}
	var m Hist
	m.Merge(&h)
	m.Merge(&h)
	if m.N != 200000 || m.Quantile(0.5) != h.Quantile(0.5) || m.MaxUS != 100000 {
		t.Fatalf("merged: n %d, p50 %v", m.N, m.Quantile(0.5))
	}
	if (&Hist{}).Quantile(0.5) != 0 {
		t.Fatal("empty histogram")
	}
}

func TestCounterFindsPatternsSplitAcrossReads(t *testing.T) {
	// As Sluice writes them: retry: and heartbeats in the block of the
	// event that follows them.
	stream := strings.Repeat("retry: 3000\nid: 1\ndata: x\n\nid: 2\ndata: y\n\n: ping\nid: 3\ndata: z\n\n", 50)
	for _, size := range []int{1, 2, 3, 5, 7, 64, len(stream)} {
		c := newCounter(eventStart)
		for i := 0; i < len(stream); i += size {
			c.feed([]byte(stream[i:min(i+size, len(stream))]))
		}
		if c.n != 150 { // three events in each repeat
			t.Errorf("pieces of %d: counted %d", size, c.n)
		}
	}
}
