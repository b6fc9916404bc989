package bench

import (
	"context"
	"sync"
	"time"
)

// FloorPoint is how late N goroutines wake for deadlines at the demo pace,
// in this process, with no I/O at all: the machine's own scheduling noise,
// a floor under any inter-token delay measured here.
type FloorPoint struct {
	Goroutines int     `json:"goroutines"`
	Lateness   Summary `json:"lateness"`
}

// floor runs the timer probe for each capacity step.
func (r *runner) floor(ctx context.Context) error {
	interval := 20 * time.Millisecond
	if r.cfg.DemoTPS > 0 {
		interval = time.Duration(float64(time.Second) / r.cfg.DemoTPS)
	}
	for _, n := range r.cfg.CapacitySteps {
		h := timerLateness(ctx, n, interval, r.cfg.CapacityWindow/2)
		p := FloorPoint{Goroutines: n, Lateness: h.Summary()}
		r.res.Floor = append(r.res.Floor, p)
		r.printf("  %5d goroutines waking every %v: lateness p50 %.2f p99 %.1f max %.1f ms\n",
			n, interval, p.Lateness.P50, p.Lateness.P99, p.Lateness.Max)
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	return nil
}

// timerLateness starts n goroutines, 1 ms apart, each sleeping to
// deadlines every interval for d (as the demo model paces tokens), and
// returns how late they woke.
func timerLateness(ctx context.Context, n int, interval, d time.Duration) *Hist {
	var mu sync.Mutex
	total := &Hist{}
	var wg sync.WaitGroup
	end := time.Now().Add(d + time.Duration(n)*time.Millisecond/4)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var h Hist
			t := time.NewTimer(time.Hour)
			defer t.Stop()
			start := time.Now()
			for k := 1; ; k++ {
				due := start.Add(time.Duration(k) * interval)
				if due.After(end) {
					break
				}
				t.Reset(time.Until(due))
				select {
				case <-t.C:
				case <-ctx.Done():
					return
				}
				h.Add(time.Since(due))
			}
			mu.Lock()
			total.Merge(&h)
			mu.Unlock()
		}()
		if i%4 == 3 {
			time.Sleep(time.Millisecond)
		}
	}
	wg.Wait()
	return total
}
