package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
)

// WriteJSON writes the result to path.
func (res *Result) WriteJSON(path string) error {
	b, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// PrintTable writes the result as human tables.
func (res *Result) PrintTable(w io.Writer) {
	fmt.Fprintf(w, "\n%s, %d CPUs, open-file limit %d; load average %s at the start, %s at the end\n",
		res.GoVersion, res.NumCPU, res.FileLimit, res.LoadAvg[0], res.LoadAvg[1])
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	line := func(cells ...string) { fmt.Fprintln(tw, strings.Join(cells, "\t")+"\t") }
	if len(res.Idle) > 0 {
		fmt.Fprintln(w, "\nServer memory with idle topic subscribers (after a GC)")
		line("server", "transport", "conns", "RSS MB", "RSS/conn KB", "heap/conn KB", "goroutines")
		for _, r := range res.Idle {
			for _, p := range r.Points {
				line(r.Server, r.Transport, itoa(p.Conns), f1(mb(p.Stats.RSSBytes)), f1(p.RSSPerConn/1024), f1(p.HeapPerConn/1024), itoa(p.Stats.Goroutines))
			}
		}
		tw.Flush()
	}
	if len(res.TTFT) > 0 {
		fmt.Fprintf(w, "\nLatency of concurrent generations (demo model: first token after %.0f ms, %.0f tokens/s), ms\n", res.DemoTTFTMS, res.DemoTPS)
		line("transport", "gens", "done", "overhead p50", "p99", "TTFT p50", "p90", "p99", "cold p50", "p99", "ITL p50", "p90", "p99")
		for _, r := range res.TTFT {
			line(r.Transport, itoa(r.Gens), itoa(int(r.Completed)), f2(r.Overhead.P50), f2(r.Overhead.P99),
				f1(r.TTFT.P50), f1(r.TTFT.P90), f1(r.TTFT.P99), f1(r.Cold.P50), f1(r.Cold.P99), f1(r.ITL.P50), f1(r.ITL.P90), f1(r.ITL.P99))
		}
		tw.Flush()
		fmt.Fprintln(w, "overhead: request written → the model's first event (its role chunk, emitted when it starts).")
		fmt.Fprintln(w, "cold: dial → first content token, including the TCP connect and, for WebSocket, the upgrade.")
	}
	if len(res.Added) > 0 {
		fmt.Fprintln(w, "\nWhat Sluice adds to a model's time to first token: TTFT less the model's own, the model asked directly, through Sluice and through a bare reverse proxy side by side, ms")
		line("transport", "N×rounds", "direct p50", "p99", "Sluice p50", "p90", "p99", "proxy p50", "p99", "Sluice adds p50", "p90", "p99", "proxy adds p50", "p99")
		for _, r := range res.Added {
			proxy := []string{"–", "–", "–", "–"}
			if r.Proxy.N > 0 {
				proxy = []string{f2(r.Proxy.P50), f2(r.Proxy.P99), f2(r.ProxyAdded(0.5)), f2(r.ProxyAdded(0.99))}
			}
			line(r.Transport, fmt.Sprintf("%d×%d", r.Gens, r.Rounds), f2(r.Direct.P50), f2(r.Direct.P99), f2(r.Sluice.P50), f2(r.Sluice.P90), f2(r.Sluice.P99),
				proxy[0], proxy[1], f2(r.Added(0.5)), f2(r.Added(0.9)), f2(r.Added(0.99)), proxy[2], proxy[3])
		}
		tw.Flush()
	}
	if len(res.Fanout) > 0 {
		fmt.Fprintln(w, "\nFan-out of one topic")
		line("server", "transport", "subs", "published/s", "delivered/s", "ratio", "server cores", "client cores")
		for _, r := range res.Fanout {
			line(r.Server, r.Transport, itoa(r.Subs), f1(float64(r.Published)/r.Seconds), f0(r.EventsPerSec), f2(r.Ratio), f2(r.ServerCores), f2(r.ClientCores))
		}
		tw.Flush()
	}
	if len(res.Capacity) > 0 {
		fmt.Fprintln(w, "\nConcurrent generations at a pace: inter-token delay, ms")
		line("server", "transport", "gens", "tokens/s", "ITL p50", "p90", "p99", "server cores", "client cores", "RSS MB")
		for _, r := range res.Capacity {
			for _, p := range r.Points {
				line(r.Server, r.Transport, itoa(p.Gens), itoa(int(p.Tokens)), f1(p.ITL.P50), f1(p.ITL.P90), f1(p.ITL.P99), f2(p.ServerCores), f2(p.ClientCores), f0(mb(p.Stats.RSSBytes)))
			}
		}
		tw.Flush()
		for _, r := range res.Capacity {
			fmt.Fprintf(w, "%s %s: at most %d generations at %.0f tokens/s with p99 inter-token delay ≤ %.0f ms\n", r.Server, r.Transport, r.Max, r.TPS, r.BoundMS)
		}
	}
	if len(res.Cluster) > 0 {
		res.printCluster(w)
	}
	if len(res.Conversations) > 0 {
		res.printConversations(w)
	}
}

// printCluster writes the cluster scenario's setups side by side.
func (res *Result) printCluster(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	line := func(cells ...string) { fmt.Fprintln(tw, strings.Join(cells, "\t")+"\t") }
	redis := func(l *RedisLoad) []string {
		if l == nil {
			return []string{"–", "–", "–", "–", "–"}
		}
		return []string{f2(l.Cores), f1(mb(l.UsedMemory)), f2(l.CallsPerUnit), f2(l.ScriptsPerUnit), f1(l.ScriptUsec)}
	}
	fmt.Fprintf(w, "\nCluster: concurrent generations spread over the nodes (demo model: first token after %.0f ms, %.0f tokens/s), ms\n", res.DemoTTFTMS, res.DemoTPS)
	line("setup", "gens", "overhead p50", "p99", "TTFT p50", "p99", "ITL p99", "tokens", "node cores", "node µs/token", "Redis cores", "Redis MB", "cmds/token", "scripts/token", "µs/script")
	for _, r := range res.Cluster {
		g := r.Gens
		line(append([]string{r.Setup, itoa(int(g.Completed)), f2(g.Overhead.P50), f2(g.Overhead.P99), f1(g.TTFT.P50), f1(g.TTFT.P99), f1(g.ITL.P99),
			itoa(int(g.Tokens)), f2(g.NodeCores), f1(g.NodeCPUPerToken)}, redis(g.Redis)...)...)
	}
	tw.Flush()
	fmt.Fprintln(w, "\nCluster: fan-out of one topic, published on the first node, subscribers spread over the nodes")
	line("setup", "subs", "published/s", "delivered/s", "ratio", "node cores", "node µs/event", "Redis cores", "Redis MB", "cmds/event", "scripts/event", "µs/script")
	for _, r := range res.Cluster {
		f := r.Fanout
		line(append([]string{r.Setup, itoa(f.Subs), f1(perSecond(float64(f.Published), f.Seconds)), f0(f.EventsPerSec), f2(f.Ratio),
			f2(f.NodeCores), f2(f.NodeCPUPerEvent)}, redis(f.Redis)...)...)
	}
	tw.Flush()
	fmt.Fprintln(w, "\nCluster: what each setup adds to a model's time to first token (as in the added scenario), ms")
	line("setup", "N×rounds", "direct p50", "through the nodes p50", "p99", "adds p50", "adds p99")
	for _, r := range res.Cluster {
		a := r.Added
		line(r.Setup, fmt.Sprintf("%d×%d", a.Gens, a.Rounds), f2(a.Direct.P50), f2(a.Sluice.P50), f2(a.Sluice.P99), f2(a.AddedP50()), f2(a.AddedP99()))
	}
	tw.Flush()
	fmt.Fprintln(w, "cmds: every command Redis ran, those inside scripts included; scripts: the appends, reads and opens (one round trip each, or a pipeline's share).")
	for _, r := range res.Cluster {
		for _, l := range []*RedisLoad{r.Gens.Redis, r.Fanout.Redis} {
			if l == nil {
				continue
			}
			var cmds []string
			for _, c := range l.Commands {
				cmds = append(cmds, fmt.Sprintf("%s %d (%.1f µs)", c.Name, c.Calls, c.UsecPerCall))
			}
			fmt.Fprintf(w, "%s: Redis ran %d commands: %s\n", r.Setup, l.Calls, strings.Join(cmds, ", "))
		}
	}
}

func f0(v float64) string { return fmt.Sprintf("%.0f", v) }
func f1(v float64) string { return fmt.Sprintf("%.1f", v) }
func f2(v float64) string { return fmt.Sprintf("%.2f", v) }
