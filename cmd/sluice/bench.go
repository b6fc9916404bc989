package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/sluice-dev/sluice/bench"
)

const benchUsage = `sluice bench measures a Sluice server on this machine over SSE and WebSocket:
latency of concurrent generations, memory per idle connection, topic fan-out,
how many paced generations fit under an inter-token delay bound, and what
keeping conversations costs them (--scenarios conversations).

Without --url it starts a fresh "sluice serve" (this binary) on a loopback
port for every measurement, with --demo-ttft and --demo-tps. Clients run in
worker processes of this binary, spread over 127.0.0.x source addresses.

Flags:
`

// runBench is `sluice bench`.
func runBench(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var cfg bench.Config
	var transports, scenarios, idle, addedGens, capSteps, convGens, jsonOut, chartOut, mdOut, from string
	fs := flag.NewFlagSet("sluice bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, benchUsage); fs.PrintDefaults() }
	fs.StringVar(&cfg.URL, "url", "", "a running server to measure, http://127.0.0.1:PORT (loopback only); empty: start servers")
	fs.DurationVar(&cfg.DemoTTFT, "demo-ttft", 300*time.Millisecond, "started servers: the demo model's time to first token")
	fs.Float64Var(&cfg.DemoTPS, "demo-tps", 50, "started servers: the demo model's tokens per second")
	fs.StringVar(&transports, "transports", "sse,ws,h2", "transports to measure: sse, ws, h2 (SSE over HTTPS and HTTP/2; idle memory only)")
	fs.StringVar(&scenarios, "scenarios", "idle,ttft,added,fanout,capacity,floor", "what to measure: idle, ttft, added (what Sluice adds to a model's TTFT), fanout, capacity, floor (timer lateness with no I/O), cluster (ttft, fanout and added for one node on memory, one on Redis and --nodes on Redis, side by side; starts redis-server), conversations (inter-token delay, added TTFT and database writes of chats with and without a conversation kept, on --data-dir off and SQLite, and PostgreSQL with --database-url, side by side)")
	fs.IntVar(&cfg.Nodes, "nodes", 3, "cluster: the nodes of its largest setup, all on one Redis")
	fs.StringVar(&convGens, "conv-gens", "200", "conversations: concurrent generations a round, all sides together, level by level")
	fs.IntVar(&cfg.ConvRounds, "conv-rounds", 3, "conversations: rounds counted at each level (after one that is not)")
	fs.StringVar(&cfg.DatabaseURL, "database-url", "", "conversations: also measure a server keeping them in this PostgreSQL database (the bench writes into it)")
	fs.StringVar(&cfg.ModelURL, "model-url", "", "with --url: the model that server serves as \"upstream\", for added (a running sluice bench-baseline)")
	fs.StringVar(&cfg.ProxyURL, "proxy-url", "", "with --model-url: a bare reverse proxy to that model, to compare with (a running sluice bench-baseline --proxy)")
	fs.BoolVar(&cfg.Baseline, "baseline", true, "also measure the naive net/http SSE server (idle, fanout, capacity) and, for capacity, the raw floor (bare writes, no HTTP library)")
	fs.StringVar(&idle, "idle", "1000,5000,10000,15000", "idle subscribers to hold, step by step, for memory per connection")
	fs.IntVar(&cfg.Gens, "gens", 100, "concurrent generations for the latency (ttft) measurement")
	fs.StringVar(&addedGens, "added-gens", "10,100", "concurrent generations a side, level by level, for added")
	fs.IntVar(&cfg.FanoutSubs, "fanout-subs", 10000, "subscribers of the fan-out topic")
	fs.IntVar(&cfg.FanoutRate, "fanout-rate", 100, "events published to the fan-out topic per second")
	fs.DurationVar(&cfg.FanoutTime, "fanout-time", 10*time.Second, "fan-out measuring window")
	fs.StringVar(&capSteps, "capacity", "500,1000,2000,3000,5000", "concurrent generations to try at --demo-tps, in order, until the bound is passed")
	fs.DurationVar(&cfg.CapacityBound, "bound", 50*time.Millisecond, "p99 inter-token delay bound for --capacity")
	fs.DurationVar(&cfg.CapacityWindow, "window", 8*time.Second, "measuring window of each capacity step")
	fs.DurationVar(&cfg.Duration, "duration", 15*time.Minute, "stop everything after this long (hard cap)")
	fs.IntVar(&cfg.ConnsPerWorker, "conns-per-worker", 8000, "most connections one worker process holds (at most 18000)")
	fs.StringVar(&jsonOut, "json", "", "write the result as JSON to this file")
	fs.StringVar(&chartOut, "chart", "", "draw latency and memory against connections into this PNG file")
	fs.StringVar(&mdOut, "markdown", "", "write the result as Markdown tables (those of docs/benchmarks.md) to this file")
	fs.StringVar(&from, "from", "", "measure nothing: read a --json result back and print, draw and write it again")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	var errs []error
	cfg.Transports = splitList(transports)
	cfg.Scenarios = splitList(scenarios)
	for _, t := range cfg.Transports {
		if t != "sse" && t != "ws" && t != bench.TransportH2 {
			errs = append(errs, fmt.Errorf("--transports: %q is none of sse, ws and h2", t))
		}
	}
	for _, s := range cfg.Scenarios {
		if !strings.Contains(",idle,ttft,added,fanout,capacity,floor,cluster,conversations,", ","+s+",") {
			errs = append(errs, fmt.Errorf("--scenarios: unknown %q", s))
		}
	}
	var err error
	if cfg.AddedGens, err = ints(addedGens); err != nil {
		errs = append(errs, fmt.Errorf("--added-gens: %v", err))
	}
	if cfg.IdleSteps, err = ints(idle); err != nil {
		errs = append(errs, fmt.Errorf("--idle: %v", err))
	}
	if cfg.CapacitySteps, err = ints(capSteps); err != nil {
		errs = append(errs, fmt.Errorf("--capacity: %v", err))
	}
	if cfg.ConvGens, err = ints(convGens); err != nil {
		errs = append(errs, fmt.Errorf("--conv-gens: %v", err))
	}
	if cfg.ConvRounds < 1 || cfg.ConvRounds > 100 {
		errs = append(errs, fmt.Errorf("--conv-rounds: %d is not within 1..100", cfg.ConvRounds))
	}
	if u, err := url.Parse(cfg.DatabaseURL); cfg.DatabaseURL != "" && (err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql")) {
		errs = append(errs, errors.New("--database-url: want postgres://[user:password@]host[:port]/database"))
	}
	if cfg.URL != "" {
		if err := bench.CheckLoopback(cfg.URL); err != nil {
			errs = append(errs, fmt.Errorf("--url: %v", err))
		}
	}
	if cfg.Nodes < 1 || cfg.Nodes > 16 {
		errs = append(errs, fmt.Errorf("--nodes: %d is not within 1..16", cfg.Nodes))
	}
	if cfg.ConnsPerWorker < 1 || cfg.ConnsPerWorker > 18000 {
		errs = append(errs, fmt.Errorf("--conns-per-worker: %d is not within 1..18000", cfg.ConnsPerWorker))
	}
	if cfg.Duration <= 0 || cfg.Duration > 2*time.Hour {
		errs = append(errs, fmt.Errorf("--duration: %v is not within (0, 2h]", cfg.Duration))
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	cfg.Exe, cfg.WorkerCommand, cfg.Out = exe, []string{exe, "bench-worker"}, stdout

	var res *bench.Result
	var runErr error
	if from != "" {
		b, err := os.ReadFile(from)
		if err != nil {
			return err
		}
		res = new(bench.Result)
		if err := json.Unmarshal(b, res); err != nil {
			return fmt.Errorf("--from: %w", err)
		}
		res.Finish()
	} else {
		res, runErr = bench.Run(ctx, cfg)
	}
	if res != nil {
		res.PrintTable(stdout)
		if jsonOut != "" {
			if err := res.WriteJSON(jsonOut); err != nil {
				return err
			}
		}
		if mdOut != "" {
			if err := res.WriteMarkdown(mdOut); err != nil {
				return err
			}
		}
		if chartOut != "" {
			if err := res.Chart(chartOut); err != nil {
				return err
			}
		}
	}
	return runErr
}

func ints(s string) ([]int, error) {
	var out []int
	for _, f := range splitList(s) {
		n, err := strconv.Atoi(f)
		if err != nil || n < 1 {
			return nil, fmt.Errorf("%q is not a positive number", f)
		}
		out = append(out, n)
	}
	return out, nil
}

// runBenchBaseline is the hidden `sluice bench-baseline --addr`: the naive
// server the bench measures Sluice against.
func runBenchBaseline(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("sluice bench-baseline", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "127.0.0.1:8081", "loopback address to listen on")
	ttft := fs.Duration("demo-ttft", 300*time.Millisecond, "time to the first token of its chat completions")
	tps := fs.Float64("demo-tps", 50, "tokens per second of its chat completions")
	proxy := fs.String("proxy", "", "proxy chat completions to this server (http://host:port) instead of answering them")
	raw := fs.Bool("raw", false, "serve paced chat streams with no HTTP library, JSON or log: the floor of a capacity step")
	if err := fs.Parse(args); err != nil {
		return err
	}
	return bench.ServeBaseline(ctx, *addr, bench.BaselineOptions{TTFT: *ttft, TPS: *tps, Proxy: *proxy, Raw: *raw})
}
