package bench

import (
	"fmt"
	"io"
	"os"
	"strings"
)

// WriteMarkdown writes the result as the Markdown tables of
// docs/benchmarks.md, beside the seeds' claims.
func (res *Result) WriteMarkdown(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	res.Markdown(f)
	return f.Close()
}

// Markdown writes the result as Markdown tables.
func (res *Result) Markdown(w io.Writer) {
	row := func(cells ...string) { fmt.Fprintln(w, "| "+strings.Join(cells, " | ")+" |") }
	fmt.Fprintf(w, "Measured %s, %s, %d CPUs shared by server and clients, load average %s → %s.\n\n",
		res.Started.Format("2006-01-02 15:04 MST"), res.GoVersion, res.NumCPU, res.LoadAvg[0], res.LoadAvg[1])

	ttft := map[string]TTFTRun{}
	for _, r := range res.TTFT {
		ttft[r.Transport] = r
	}
	mem := map[string]IdlePoint{} // "sluice/sse" → the point nearest 10,000 connections
	for _, r := range res.Idle {
		k := r.Server + "/" + r.Transport
		for _, p := range r.Points {
			if cur, ok := mem[k]; !ok || abs(p.Conns-10000) < abs(cur.Conns-10000) {
				mem[k] = p
			}
		}
	}
	fmt.Fprintln(w, "**The seeds' table beside Sluice's measurement**")
	fmt.Fprintln(w)
	row("", "seeds: SSE", "seeds: WebSocket", "Sluice SSE", "Sluice WebSocket", "plain net/http SSE")
	row("---", "---", "---", "---", "---", "---")
	cold := func(tr string) string {
		r, ok := ttft[tr]
		if !ok {
			return "–"
		}
		return fmt.Sprintf("%.0f ms p50, %.0f ms p99", r.Cold.P50, r.Cold.P99)
	}
	row(fmt.Sprintf("first response (dial → first token; the model thinks %.0f ms)", res.DemoTTFTMS),
		"200–300 ms", "300–500 ms", cold("sse"), cold("ws"), "–")
	added := func(tr string) string {
		var parts []string
		for _, r := range res.Added {
			if r.Transport == tr {
				parts = append(parts, fmt.Sprintf("%+.2f ms p50, %+.2f ms p99 at %d concurrent", r.Added(0.5), r.Added(0.99), r.Gens))
			}
		}
		if len(parts) > 0 {
			return strings.Join(parts, "; ")
		}
		if r, ok := ttft[tr]; ok {
			return fmt.Sprintf("request → the built-in model's first event: %.2f ms p50, %.2f ms p99", r.Overhead.P50, r.Overhead.P99)
		}
		return "–"
	}
	row("what the server adds to a model's time to first token", "–", "–", added("sse"), added("ws"), "–")
	perTen := func(k string) string {
		p, ok := mem[k]
		if !ok {
			return "–"
		}
		return fmt.Sprintf("%.0f MB (%.1f KB × 10,000; measured at %d)", p.RSSPerConn*10000/(1<<20), p.RSSPerConn/1024, p.Conns)
	}
	row("memory for 10,000 connections", "~2 GB", "~5 GB", perTen("sluice/sse"), perTen("sluice/ws"), perTen("baseline/sse"))
	row("after a dropped connection", "reconnects by itself", "by hand",
		"EventSource reconnects with Last-Event-ID; the stream resumes with no event lost or repeated",
		"the client attaches again with last_event_id; same guarantee", "reconnects, but events sent meanwhile are lost")
	fmt.Fprintln(w)

	if len(res.Idle) > 0 {
		fmt.Fprintln(w, "**Server memory with idle topic subscribers** (RSS and live heap after a GC, growth over the empty server divided by connections)")
		fmt.Fprintln(w)
		row("server", "transport", "connections", "RSS", "RSS per connection", "heap per connection", "goroutines")
		row("---", "---", "---:", "---:", "---:", "---:", "---:")
		for _, r := range res.Idle {
			for _, p := range r.Points {
				row(r.Server, upper(r.Transport), itoa(p.Conns), fmt.Sprintf("%.0f MB", mb(p.Stats.RSSBytes)),
					fmt.Sprintf("%.1f KB", p.RSSPerConn/1024), fmt.Sprintf("%.1f KB", p.HeapPerConn/1024), itoa(p.Stats.Goroutines))
			}
		}
		fmt.Fprintln(w)
	}
	if len(res.TTFT) > 0 {
		fmt.Fprintf(w, "**Latency of %d concurrent generations**, each on a new connection (demo model: %.0f ms to the first token, %.0f tokens/s), ms\n\n",
			res.TTFT[0].Gens, res.DemoTTFTMS, res.DemoTPS)
		row("transport", "request → first event p50", "p99", "TTFT p50", "TTFT p99", "cold p50", "cold p99", "ITL p50", "ITL p90", "ITL p99")
		row("---", "---:", "---:", "---:", "---:", "---:", "---:", "---:", "---:", "---:")
		for _, r := range res.TTFT {
			row(upper(r.Transport), f2(r.Overhead.P50), f2(r.Overhead.P99), f1(r.TTFT.P50), f1(r.TTFT.P99),
				f1(r.Cold.P50), f1(r.Cold.P99), f1(r.ITL.P50), f1(r.ITL.P90), f1(r.ITL.P99))
		}
		fmt.Fprintln(w)
	}
	if len(res.Added) > 0 {
		fmt.Fprintf(w, "**What Sluice adds to a model's time to first token.** The model is the plain net/http server's OpenAI-compatible chat completions (%.0f ms of thinking, 20 tokens). Each round, N generations go straight to it, N through Sluice and N through a bare reverse proxy (`net/http/httputil`), started interleaved, every one on a new connection; a first round, not counted, leaves the connections to the model open. Each TTFT has the model's own taken out (the model writes into its first token when it had the request and when it sent the token), ms\n\n",
			res.DemoTTFTMS)
		row("clients reach Sluice over", "N", "rounds", "direct p50", "p90", "p99", "Sluice p50", "p90", "p99", "bare proxy p50", "p90", "p99", "Sluice adds p50", "p90", "p99", "bare proxy adds p50", "p99")
		row("---", "---:", "---:", "---:", "---:", "---:", "---:", "---:", "---:", "---:", "---:", "---:", "---:", "---:", "---:", "---:", "---:")
		for _, r := range res.Added {
			proxy := []string{"–", "–", "–", "–", "–"}
			if r.Proxy.N > 0 {
				proxy = []string{f2(r.Proxy.P50), f2(r.Proxy.P90), f2(r.Proxy.P99), fmt.Sprintf("%+.2f", r.ProxyAdded(0.5)), fmt.Sprintf("%+.2f", r.ProxyAdded(0.99))}
			}
			row(upper(r.Transport), itoa(r.Gens), itoa(r.Rounds), f2(r.Direct.P50), f2(r.Direct.P90), f2(r.Direct.P99), f2(r.Sluice.P50), f2(r.Sluice.P90), f2(r.Sluice.P99),
				proxy[0], proxy[1], proxy[2], fmt.Sprintf("**%+.2f**", r.Added(0.5)), fmt.Sprintf("%+.2f", r.Added(0.9)), fmt.Sprintf("**%+.2f**", r.Added(0.99)), proxy[3], proxy[4])
		}
		fmt.Fprintln(w)
	}
	if len(res.Fanout) > 0 {
		fmt.Fprintln(w, "**Fan-out of one topic** (publishing over HTTP at a set rate; every subscriber counts what it receives)")
		fmt.Fprintln(w)
		row("server", "transport", "subscribers", "published/s", "delivered/s", "delivered / (published × subscribers)", "server cores", "client cores", "machine busy (kernel)")
		row("---", "---", "---:", "---:", "---:", "---:", "---:", "---:", "---:")
		for _, r := range res.Fanout {
			row(r.Server, upper(r.Transport), itoa(r.Subs), f1(float64(r.Published)/r.Seconds), fmt.Sprintf("%.0f", r.EventsPerSec),
				f2(r.Ratio), f2(r.ServerCores), f2(r.ClientCores), fmt.Sprintf("%.2f (%.2f)", r.Machine.Busy, r.Machine.Kernel))
		}
		fmt.Fprintln(w)
	}
	if len(res.Capacity) > 0 {
		fmt.Fprintf(w, "**Concurrent generations at %.0f tokens/s each**: inter-token delay, ms\n\n", res.DemoTPS)
		row("server", "transport", "generations", "tokens/s delivered", "ITL p50", "ITL p90", "ITL p99", "server cores", "client cores", "machine busy (kernel)", "server RSS")
		row("---", "---", "---:", "---:", "---:", "---:", "---:", "---:", "---:", "---:", "---:")
		for _, r := range res.Capacity {
			for _, p := range r.Points {
				row(r.Server, upper(r.Transport), itoa(p.Gens), itoa(int(p.Tokens)), f1(p.ITL.P50), f1(p.ITL.P90), f1(p.ITL.P99),
					f2(p.ServerCores), f2(p.ClientCores), fmt.Sprintf("%.2f (%.2f)", p.Machine.Busy, p.Machine.Kernel), fmt.Sprintf("%.0f MB", mb(p.Stats.RSSBytes)))
			}
		}
		fmt.Fprintln(w)
		for _, r := range res.Capacity {
			fmt.Fprintf(w, "- %s %s: at most **%d** generations with p99 inter-token delay ≤ %.0f ms.\n", r.Server, upper(r.Transport), r.Max, r.BoundMS)
		}
		fmt.Fprintln(w)
	}
	if len(res.Conversations) > 0 {
		res.markdownConversations(w)
	}
	if len(res.Floor) > 0 {
		fmt.Fprintln(w, "**The machine's floor**: goroutines of one process sleeping to deadlines at the demo pace, no I/O, no server: how late they wake, ms")
		fmt.Fprintln(w)
		row("goroutines", "lateness p50", "p99", "max")
		row("---:", "---:", "---:", "---:")
		for _, p := range res.Floor {
			row(itoa(p.Goroutines), f2(p.Lateness.P50), f1(p.Lateness.P99), f1(p.Lateness.Max))
		}
		fmt.Fprintln(w)
	}
}
