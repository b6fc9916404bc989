package bench

import (
	"context"
	"fmt"
	"os"
	"time"
)

// ConvRun is one level of the conversations scenario: the same paced
// chats, with and without a conversation kept, on servers that keep none
// (--data-dir off), keep them in SQLite and, when the bench is given
// --database-url, in PostgreSQL, side by side in the same rounds, beside
// the model asked directly.
type ConvRun struct {
	Gens   int        `json:"gens"` // concurrent generations a round, all sides together
	Rounds int        `json:"rounds"`
	Sides  []ConvSide `json:"sides"` // the model asked directly first
}

// ConvSide is one side of a ConvRun.
type ConvSide struct {
	Name         string  `json:"name"`  // "model directly", "off", "sqlite", "sqlite, conversation", ...
	Store        string  `json:"store"` // "" (the model), "off", "sqlite", "postgres"
	Conversation bool    `json:"conversation"`
	Gens         int     `json:"gens"`      // a round
	Completed    int64   `json:"completed"` // in every round, the uncounted first included
	Failed       int     `json:"failed"`
	TTFT         Summary `json:"ttft"`
	Added        Summary `json:"added"` // TTFT less the model's own, as in AddedRun
	ITL          Summary `json:"itl"`
	// Writes are the conversation store's writes for the side's chats, as
	// the server's /metrics counted them (sides with a conversation).
	Writes *ConvWrites `json:"writes,omitempty"`
}

// ConvWrites are the writes a server's conversation store made while one
// side's chats ran (the other side on that server keeps none), from the
// server's sluice_conversation_* metrics.
type ConvWrites struct {
	Generations int64 `json:"generations"` // chats with a conversation whose end was recorded
	// PerGeneration is a chat's own writes: its messages added, the
	// answer's batches and end (update_message) and heartbeats (touch);
	// not the making of its conversation, which the bench does first.
	PerGeneration float64            `json:"per_generation"`
	ByOperation   map[string]float64 `json:"by_operation"` // every write, per generation
	Batches       float64            `json:"batches_per_generation"`
	Failed        float64            `json:"failed"` // writes that failed, in all
	NotRecorded   int64              `json:"not_recorded"`
}

// convPrompt asks the bench's model for its middle-sized answer (250
// tokens: 5 s at 50 tokens/s), long enough to be written in batches.
const convPrompt = "a middle-sized answer, please"

// convSetup is one server of the scenario.
type convSetup struct {
	store string   // "off", "sqlite", "postgres"
	args  []string // its flags
	srv   *server
}

// conversations measures what keeping conversations costs the per-token
// path, at each level of cfg.ConvGens.
func (r *runner) conversations(ctx context.Context) error {
	if r.cfg.URL != "" {
		r.printf("  skipped: the conversations scenario starts its own servers (no --url)\n")
		return nil
	}
	dir, err := os.MkdirTemp("", "sluice-bench-conv-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	model, err := r.startServer(ctx, true)
	if err != nil {
		return err
	}
	defer model.stop()
	setups := []*convSetup{{store: "off"}, {store: "sqlite", args: []string{"--data-dir", dir}}}
	if r.cfg.DatabaseURL != "" {
		setups = append(setups, &convSetup{store: "postgres", args: []string{"--database-url", r.cfg.DatabaseURL}})
	}
	for _, s := range setups {
		args := append([]string{"--upstream-url", "http://" + model.host + "/v1", "--upstream-models", "upstream=demo"}, s.args...)
		if s.srv, err = r.startServer(ctx, false, args...); err != nil {
			return fmt.Errorf("%s: %w", s.store, err)
		}
		defer s.srv.stop()
	}
	for _, n := range r.cfg.ConvGens {
		run, err := r.convLevel(ctx, n, model.host, setups)
		if err != nil {
			return err
		}
		r.res.Conversations = append(r.res.Conversations, run)
	}
	return nil
}

func (r *runner) convLevel(ctx context.Context, n int, model string, setups []*convSetup) (ConvRun, error) {
	job := Job{Kind: "gens", Transport: "sse", Prompt: convPrompt, Once: true}
	direct := job
	direct.Host = model
	run := ConvRun{Gens: n, Rounds: r.cfg.ConvRounds, Sides: []ConvSide{{Name: "model directly"}}}
	jobs := []Job{direct}
	owner := []*convSetup{nil} // the setup of each side; nil: the model
	for _, s := range setups {
		j := job
		j.Host, j.Model = s.srv.host, "upstream"
		run.Sides = append(run.Sides, ConvSide{Name: s.store, Store: s.store})
		jobs, owner = append(jobs, j), append(owner, s)
		if s.store != "off" {
			j.Conversation = true
			run.Sides = append(run.Sides, ConvSide{Name: s.store + ", conversation", Store: s.store, Conversation: true})
			jobs, owner = append(jobs, j), append(owner, s)
		}
	}
	// One start a millisecond in all, the sides taking turns.
	counts := make([]int, len(jobs))
	for i := range jobs {
		counts[i] = max(1, spread(n, len(jobs), i))
		run.Sides[i].Gens = counts[i]
		jobs[i].Ramp = time.Duration(counts[i]*len(jobs)) * time.Millisecond
	}
	before := make([]metricSamples, len(jobs))
	for i, s := range owner {
		if s != nil && run.Sides[i].Conversation {
			var err error
			if before[i], err = scrapeMetrics(ctx, s.srv.host); err != nil {
				return run, err
			}
		}
	}
	sum, err := r.rounds(ctx, sides{jobs: jobs, counts: counts, after: func(i int) time.Duration { return time.Duration(i) * time.Millisecond }}, run.Rounds)
	if err != nil {
		return run, err
	}
	for i := range run.Sides {
		sd := &run.Sides[i]
		sd.Completed, sd.Failed = sum[i].Gens, sum[i].Failed
		sd.TTFT, sd.Added, sd.ITL = sum[i].TTFT.Summary(), sum[i].Added.Summary(), sum[i].ITL.Summary()
		if before[i] != nil {
			if sd.Writes, err = r.convWrites(ctx, owner[i].srv.host, before[i], sd.Completed); err != nil {
				return run, err
			}
		}
	}
	r.printConvLevel(run)
	return run, nil
}

// convWrites waits until the server has recorded the end of the chats
// completed since before (a recorder stores an answer's end just after its
// last event), at most 30 s, and returns its store's writes since.
func (r *runner) convWrites(ctx context.Context, host string, before metricSamples, completed int64) (*ConvWrites, error) {
	const recorded = "sluice_conversation_answers_recorded_total"
	var after metricSamples
	for wait := 0; ; wait++ {
		var err error
		if after, err = scrapeMetrics(ctx, host); err != nil {
			return nil, err
		}
		if after.sum(recorded, nil)-before.sum(recorded, nil) >= float64(completed) || wait == 300 {
			break
		}
		if err := sleep(ctx, 100*time.Millisecond); err != nil {
			return nil, err
		}
	}
	const writes = "sluice_conversation_store_writes_total"
	w := &ConvWrites{ByOperation: map[string]float64{}}
	w.Generations = int64(after.sum(recorded, nil) - before.sum(recorded, nil))
	w.NotRecorded = max(0, completed-w.Generations)
	if w.Generations == 0 {
		return w, nil
	}
	per := func(v float64) float64 { return v / float64(w.Generations) }
	for _, op := range after.values(writes, "operation") {
		d := after.sum(writes, map[string]string{"operation": op}) - before.sum(writes, map[string]string{"operation": op})
		if d == 0 {
			continue
		}
		w.ByOperation[op] = per(d)
		if op == "add_items" || op == "update_message" || op == "touch" {
			w.PerGeneration += per(d)
		}
	}
	ok := after.sum(writes, map[string]string{"result": "ok"}) - before.sum(writes, map[string]string{"result": "ok"})
	w.Failed = after.sum(writes, nil) - before.sum(writes, nil) - ok
	batches := "sluice_conversation_recorder_batches_total"
	w.Batches = per(after.sum(batches, nil) - before.sum(batches, nil))
	return w, nil
}

// AddedOver is what side s adds to the model's time to first token at
// quantile q (0.5 or 0.99), over the model asked directly.
func (s ConvSide) AddedOver(direct ConvSide, q float64) float64 {
	return s.Added.at(q) - direct.Added.at(q)
}

func (r *runner) printConvLevel(run ConvRun) {
	r.printf("  %d generations a round, %d rounds:\n", run.Gens, run.Rounds)
	direct := run.Sides[0]
	for _, s := range run.Sides {
		line := fmt.Sprintf("    %-24s %3d a round: ITL p50 %.1f p99 %.1f ms", s.Name, s.Gens, s.ITL.P50, s.ITL.P99)
		if s.Store != "" {
			line += fmt.Sprintf(", adds to the TTFT p50 %+.2f p99 %+.2f ms", s.AddedOver(direct, 0.5), s.AddedOver(direct, 0.99))
		}
		if w := s.Writes; w != nil {
			line += fmt.Sprintf("; %.2f writes per generation (%.2f batches)", w.PerGeneration, w.Batches)
		}
		if s.Failed > 0 {
			line += fmt.Sprintf("; %d failed", s.Failed)
		}
		r.printf("%s\n", line)
	}
}
