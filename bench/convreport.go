package bench

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
)

// convTable writes the conversations scenario's sides, level by level, as
// rows: a table for PrintTable or for Markdown (which wants the alignment
// row after the header).
func (res *Result) convTable(row func(cells ...string), markdown bool) {
	row("N", "side", "a round", "done", "failed", "ITL p50", "p90", "p99", "TTFT less the model's p50", "p99", "adds p50", "adds p99", "writes/gen", "batches/gen", "writes by operation, per gen")
	if markdown {
		row("---:", "---", "---:", "---:", "---:", "---:", "---:", "---:", "---:", "---:", "---:", "---:", "---:", "---:", "---")
	}
	for _, run := range res.Conversations {
		direct := run.Sides[0]
		for _, s := range run.Sides {
			adds := []string{"–", "–"}
			if s.Store != "" {
				adds = []string{fmt.Sprintf("%+.2f", s.AddedOver(direct, 0.5)), fmt.Sprintf("%+.2f", s.AddedOver(direct, 0.99))}
			}
			writes := []string{"–", "–", "–"}
			if w := s.Writes; w != nil {
				var ops []string
				for _, op := range slices.Sorted(maps.Keys(w.ByOperation)) {
					ops = append(ops, fmt.Sprintf("%s %.2f", op, w.ByOperation[op]))
				}
				writes = []string{f2(w.PerGeneration), f2(w.Batches), strings.Join(ops, ", ")}
			}
			row(append([]string{itoa(run.Gens), s.Name, itoa(s.Gens), itoa(int(s.Completed)), itoa(s.Failed),
				f1(s.ITL.P50), f1(s.ITL.P90), f1(s.ITL.P99), f2(s.Added.P50), f2(s.Added.P99)}, append(adds, writes...)...)...)
		}
	}
}

// printConversations writes the conversations scenario for PrintTable.
func (res *Result) printConversations(w io.Writer) {
	fmt.Fprintf(w, "\nConversations: the same chats (%.0f tokens/s) with and without a conversation kept, side by side, ms\n", res.DemoTPS)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	res.convTable(func(cells ...string) { fmt.Fprintln(tw, strings.Join(cells, "\t")+"\t") }, false)
	tw.Flush()
	fmt.Fprintln(w, "adds: TTFT less the model's own, over the model asked directly; writes/gen: a chat's own writes (its messages, the answer's batches and end, heartbeats), from the server's /metrics.")
}

// markdownConversations writes the conversations scenario for Markdown.
func (res *Result) markdownConversations(w io.Writer) {
	fmt.Fprintf(w, "**Keeping conversations.** The same chats (the bench's model: %.0f ms of thinking, 250 tokens at %.0f tokens/s) asked of the model directly and of Sluice with `--data-dir off`, with SQLite and, given `--database-url`, with PostgreSQL, each without and with a `conversation`; all sides started interleaved in the same rounds, N in all, every chat on a new connection; a first round is not counted. Writes per generation are read from each server's `/metrics`, ms\n\n",
		res.DemoTTFTMS, res.DemoTPS)
	res.convTable(func(cells ...string) { fmt.Fprintln(w, "| "+strings.Join(cells, " | ")+" |") }, true)
	fmt.Fprintln(w)
}
