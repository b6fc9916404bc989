package bench

import (
	"context"
	"time"
)

// sides are generations measured side by side: jobs[i] runs counts[i]
// generations (Once) a round, and after(i) later than jobs[0] starts its
// ramp, so that the sides take turns and share the machine's load. Each
// job sets its own Ramp.
type sides struct {
	jobs   []Job
	counts []int
	after  func(i int) time.Duration
}

// rounds runs 1+n rounds of s and returns, for each side, the histograms
// of rounds 1 to n merged, and the generations completed and failed (the
// first failure's error with them) of every round. Round 0 is not counted:
// it leaves the servers as servers in service are, with connections to
// their model open from answers before (a new one costs a dial and the
// Transport's setup on the way to the first token).
func (r *runner) rounds(ctx context.Context, s sides, n int) ([]Report, error) {
	sum := make([]Report, len(s.jobs))
	for i := range sum {
		sum[i] = newReport()
	}
	for round := range n + 1 {
		// The workers start their ramps together, once all have started.
		start := time.Now().Add(300 * time.Millisecond)
		groups := make([]group, len(s.jobs))
		kill := func() {
			for i := range groups {
				groups[i].kill()
			}
		}
		for i, j := range s.jobs {
			j.Start = start.Add(s.after(i))
			if _, _, err := r.spawn(ctx, j, s.counts[i], &groups[i]); err != nil {
				kill()
				return sum, err
			}
		}
		for i := range groups {
			rep, err := groups[i].stop(ctx, time.Until(r.deadline))
			if err != nil {
				kill()
				return sum, err
			}
			if rep.Failed > 0 { // failures count in every round
				r.printf("  %d failed: %s\n", rep.Failed, rep.Err)
				sum[i].Failed += rep.Failed
				if sum[i].Err == "" {
					sum[i].Err = rep.Err
				}
			}
			sum[i].Gens += rep.Gens
			if round > 0 {
				sum[i].mergeHists(&rep)
			}
		}
	}
	return sum, nil
}
