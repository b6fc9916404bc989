package bench

import (
	"context"
	"strings"
	"time"
)

// Result is everything a run measured: the JSON of --json.
type Result struct {
	Started    time.Time `json:"started"`
	Finished   time.Time `json:"finished"`
	GoVersion  string    `json:"go_version"`
	NumCPU     int       `json:"num_cpu"`
	FileLimit  uint64    `json:"file_limit"`
	URL        string    `json:"url,omitempty"` // empty: servers started by the bench
	DemoTTFTMS float64   `json:"demo_ttft_ms"`
	DemoTPS    float64   `json:"demo_tps"`
	// LoadAvg is /proc/loadavg at the start and the end: other work on the
	// machine takes cores from the server and the clients.
	LoadAvg  [2]string     `json:"loadavg"`
	Idle     []IdleRun     `json:"idle,omitempty"`
	TTFT     []TTFTRun     `json:"ttft,omitempty"`
	Added    []AddedRun    `json:"added,omitempty"`
	Fanout   []FanoutRun   `json:"fanout,omitempty"`
	Capacity []CapacityRun `json:"capacity,omitempty"`
	Floor    []FloorPoint  `json:"floor,omitempty"`
	Cluster  []ClusterRun  `json:"cluster,omitempty"`
	// Conversations: ConvRun.
	Conversations []ConvRun `json:"conversations,omitempty"`
}

// IdleRun is server memory against idle topic subscribers.
type IdleRun struct {
	Server    string      `json:"server"` // "sluice" or "baseline"
	Transport string      `json:"transport"`
	Before    ServerStats `json:"before"`
	Points    []IdlePoint `json:"points"`
}

// IdlePoint is the server's figures with Conns subscribers open.
type IdlePoint struct {
	Conns       int         `json:"conns"`
	Failed      int         `json:"failed"`
	Stats       ServerStats `json:"stats"`
	RSSPerConn  float64     `json:"rss_bytes_per_conn"`  // (RSS now − RSS before) / Conns
	HeapPerConn float64     `json:"heap_bytes_per_conn"` // the same for the live heap
}

// TTFTRun is the latency of Gens concurrent generations, each on a new
// connection.
type TTFTRun struct {
	Transport string  `json:"transport"`
	Gens      int     `json:"gens"`
	Completed int64   `json:"completed"`
	Failed    int     `json:"failed"`
	Connect   Summary `json:"connect"`  // TCP connect (+ WebSocket upgrade)
	Overhead  Summary `json:"overhead"` // request written → the built-in model's first event (its role chunk)
	TTFT      Summary `json:"ttft"`     // request written → first content token
	Cold      Summary `json:"cold"`     // dial → first content token: the seeds' "first response"
	ITL       Summary `json:"itl"`      // between content tokens
	ClientCPU float64 `json:"client_cpu_seconds"`
}

// AddedRun is what Sluice adds to a model's time to first token: the
// same model asked directly, through Sluice, and through a bare reverse
// proxy, side by side. Each figure is the client's TTFT less the model's
// own, which the model measured (from having the request to sending its
// first token) and wrote into that token; so the model's thinking, and how
// late its timer fired, are out of them all.
type AddedRun struct {
	Transport  string  `json:"transport"` // to Sluice; the model and the proxy are asked over HTTP (SSE)
	Gens       int     `json:"gens"`      // concurrent generations a side
	Rounds     int     `json:"rounds"`
	Failed     int     `json:"failed"`
	Direct     Summary `json:"direct"`      // asking the model itself
	Sluice     Summary `json:"sluice"`      // asking Sluice, which asks the model
	Proxy      Summary `json:"proxy"`       // asking net/http/httputil's ReverseProxy (N = 0: not measured)
	DirectTTFT Summary `json:"direct_ttft"` // the TTFTs themselves, the model's thinking included
	SluiceTTFT Summary `json:"sluice_ttft"`
}

// Added is what Sluice adds at quantile q (0.5, 0.9 or 0.99): through
// Sluice less directly; ProxyAdded the same for the bare proxy.
func (a AddedRun) Added(q float64) float64      { return a.Sluice.at(q) - a.Direct.at(q) }
func (a AddedRun) ProxyAdded(q float64) float64 { return a.Proxy.at(q) - a.Direct.at(q) }

func (s Summary) at(q float64) float64 {
	switch q {
	case 0.5:
		return s.P50
	case 0.9:
		return s.P90
	}
	return s.P99
}

// added measures what Sluice adds to the time to first token of a model it
// serves, at each level of concurrency in cfg.AddedGens, beside what a bare
// reverse proxy adds. The model is the baseline's chat completions (a plain
// net/http OpenAI-compatible server); Sluice serves it as the model
// "upstream", and a second baseline proxies to it. Each round has N
// generations go straight to the model, N through Sluice and N through the
// proxy, their starts interleaved (one a millisecond), every one on a new
// connection, so that all sides share the machine's load; the answers
// are short (20 tokens), so that the rounds are too.
func (r *runner) added(ctx context.Context, tr string) error {
	var hosts [3]string // the model, Sluice, the proxy ("": none)
	if r.cfg.URL != "" {
		if r.cfg.ModelURL == "" {
			r.printf("  skipped: with --url, --model-url must name the model that server serves as \"upstream\"\n")
			return nil
		}
		// Checked by Run: loopback http://host:port URLs.
		for i, u := range []string{r.cfg.ModelURL, r.cfg.URL, r.cfg.ProxyURL} {
			hosts[i] = strings.TrimPrefix(u, "http://")
		}
	} else {
		model, err := r.startServer(ctx, true)
		if err != nil {
			return err
		}
		defer model.stop()
		srv, err := r.startServer(ctx, false, "--upstream-url", "http://"+model.host+"/v1", "--upstream-models", "upstream=demo")
		if err != nil {
			return err
		}
		defer srv.stop()
		proxy, err := r.startServer(ctx, true, "--proxy", "http://"+model.host)
		if err != nil {
			return err
		}
		defer proxy.stop()
		hosts = [3]string{model.host, srv.host, proxy.host}
	}
	for _, n := range r.cfg.AddedGens {
		run, err := r.addedLevel(ctx, tr, n, hosts)
		if err != nil {
			return err
		}
		r.printf("  %d×%d generations a side: TTFT less the model's own, direct p50 %.2f p99 %.2f ms, through Sluice p50 %.2f p99 %.2f ms, through a bare proxy p50 %.2f p99 %.2f ms\n",
			run.Rounds, n, run.Direct.P50, run.Direct.P99, run.Sluice.P50, run.Sluice.P99, run.Proxy.P50, run.Proxy.P99)
		r.res.Added = append(r.res.Added, run)
	}
	return nil
}

func (r *runner) addedLevel(ctx context.Context, tr string, n int, hosts [3]string) (AddedRun, error) {
	direct := Job{Kind: "gens", Transport: "sse", Host: hosts[0], Prompt: "short answer please", Once: true}
	via, proxy := direct, direct
	via.Transport, via.Host, via.Model = tr, hosts[1], "upstream"
	proxy.Host = hosts[2]
	jobs := []Job{direct, via}
	if hosts[2] != "" {
		jobs = append(jobs, proxy)
	}
	// One start a millisecond, the sides taking turns; every generation
	// outlasts the ramp (the model thinks, then sends 20 tokens), so N of
	// each side are under way at once.
	ramp := time.Duration(n*len(jobs)) * time.Millisecond
	for i := range jobs {
		jobs[i].Ramp = ramp
	}
	// At least cfg.AddedSamples generations a side, so that a p99 is not
	// one sample, in at least 5 rounds.
	run := AddedRun{Transport: tr, Gens: n, Rounds: max(5, (r.cfg.AddedSamples+n-1)/n)}
	counts := make([]int, len(jobs))
	for i := range counts {
		counts[i] = n
	}
	// Each side a millisecond after the one before.
	sum, err := r.rounds(ctx, sides{jobs: jobs, counts: counts, after: func(i int) time.Duration { return time.Duration(i) * time.Millisecond }}, run.Rounds)
	for _, rep := range sum {
		run.Failed += rep.Failed
	}
	if err != nil {
		return run, err
	}
	run.Direct, run.Sluice = sum[0].Added.Summary(), sum[1].Added.Summary()
	run.DirectTTFT, run.SluiceTTFT = sum[0].TTFT.Summary(), sum[1].TTFT.Summary()
	if len(sum) > 2 {
		run.Proxy = sum[2].Added.Summary()
	}
	return run, nil
}

// FanoutRun is one topic delivered to Subs subscribers.
type FanoutRun struct {
	Server       string      `json:"server"`
	Transport    string      `json:"transport"`
	Subs         int         `json:"subs"`
	Rate         int         `json:"publish_rate"`
	Seconds      float64     `json:"seconds"` // the window Published was counted in
	Published    int64       `json:"published"`
	Delivered    int64       `json:"delivered"` // counted by the workers, mark → stop
	EventsPerSec float64     `json:"delivered_per_second"`
	Ratio        float64     `json:"delivered_ratio"` // delivered / (published × subs), each per second of its window
	ServerCores  float64     `json:"server_cores"`    // CPU the server used, in cores (-1: unknown)
	ClientCores  float64     `json:"client_cores"`
	Machine      MachineLoad `json:"machine"`
}

// CapacityRun is inter-token delay against concurrent generations.
type CapacityRun struct {
	Server    string          `json:"server"`
	Transport string          `json:"transport"`
	BoundMS   float64         `json:"bound_ms"`
	TPS       float64         `json:"tps"`
	Max       int             `json:"max_within_bound"` // most generations with p99 ≤ bound (0: none)
	Points    []CapacityPoint `json:"points"`
}

// CapacityPoint is one step of a capacity run.
type CapacityPoint struct {
	Gens        int         `json:"gens"`
	Failed      int         `json:"failed"`
	ITL         Summary     `json:"itl"`
	Tokens      int64       `json:"tokens_per_second"`
	ServerCores float64     `json:"server_cores"`
	ClientCores float64     `json:"client_cores"`
	Machine     MachineLoad `json:"machine"`
	Stats       ServerStats `json:"stats"`
}

func (r *runner) idle(ctx context.Context, tr string, baseline bool) error {
	var extra []string
	if tr == TransportH2 {
		if r.cfg.URL != "" {
			r.printf("  skipped: with --url, the bench does not know the server's certificate\n")
			return nil
		}
		var err error
		if extra, err = r.tlsArgs(); err != nil {
			return err
		}
	}
	srv, err := r.startServer(ctx, baseline, extra...)
	if err != nil {
		return err
	}
	defer srv.stop()
	var g group
	defer g.kill()
	if err := sleep(ctx, r.cfg.Warmup/4); err != nil {
		return err
	}
	before, err := srv.stats(ctx)
	if err != nil {
		return err
	}
	run := IdleRun{Server: serverName(baseline), Transport: tr, Before: before}
	open, failed := 0, 0
	for _, n := range r.cfg.IdleSteps {
		if n <= open {
			continue
		}
		o, f, err := r.spawn(ctx, Job{Kind: "idle", Transport: tr, Host: srv.host, Topic: "bench-idle"}, n-open, &g)
		if err != nil {
			return err
		}
		open, failed = open+o, failed+f // o counts the connections opened, f those that failed
		// Let the server settle: accept backlogs drain, buffers shrink.
		if err := sleep(ctx, r.cfg.Warmup/2); err != nil {
			return err
		}
		st, err := srv.stats(ctx)
		if err != nil {
			return err
		}
		p := IdlePoint{Conns: open, Failed: failed, Stats: st}
		if open > 0 {
			p.RSSPerConn = (float64(st.RSSBytes) - float64(before.RSSBytes)) / float64(open)
			p.HeapPerConn = (float64(st.HeapBytes) - float64(before.HeapBytes)) / float64(open)
		}
		run.Points = append(run.Points, p)
		r.printf("  %6d idle: RSS %6.1f MB (%5.1f KB/conn), heap %6.1f MB (%5.1f KB/conn), %d goroutines\n",
			open, mb(st.RSSBytes), p.RSSPerConn/1024, mb(st.HeapBytes), p.HeapPerConn/1024, st.Goroutines)
	}
	r.res.Idle = append(r.res.Idle, run)
	return nil
}

func (r *runner) ttft(ctx context.Context, tr string) error {
	srv, err := r.startServer(ctx, false)
	if err != nil {
		return err
	}
	defer srv.stop()
	var g group
	defer g.kill()
	n := r.cfg.Gens
	job := Job{Kind: "gens", Transport: tr, Host: srv.host, Prompt: "Hello! How does streaming work?", Once: true,
		Ramp: time.Duration(n) * time.Millisecond}
	if _, _, err := r.spawn(ctx, job, n, &g); err != nil {
		return err
	}
	rep, err := g.stop(ctx, time.Until(r.deadline))
	if err != nil {
		return err
	}
	run := TTFTRun{Transport: tr, Gens: n, Completed: rep.Gens, Failed: rep.Failed, Connect: rep.Connect.Summary(),
		Overhead: rep.Overhead.Summary(), TTFT: rep.TTFT.Summary(), Cold: rep.Cold.Summary(), ITL: rep.ITL.Summary(), ClientCPU: rep.CPU}
	if rep.Failed > 0 {
		r.printf("  %d failed: %s\n", rep.Failed, rep.Err)
	}
	r.printf("  %d generations: overhead p50 %.2f p99 %.2f ms; TTFT p50 %.1f p99 %.1f ms; cold p50 %.1f p99 %.1f ms; ITL p50 %.1f p99 %.1f ms\n",
		rep.Gens, run.Overhead.P50, run.Overhead.P99, run.TTFT.P50, run.TTFT.P99, run.Cold.P50, run.Cold.P99, run.ITL.P50, run.ITL.P99)
	r.res.TTFT = append(r.res.TTFT, run)
	return nil
}

func (r *runner) fanout(ctx context.Context, tr string, baseline bool) error {
	srv, err := r.startServer(ctx, baseline)
	if err != nil {
		return err
	}
	defer srv.stop()
	var g group
	defer g.kill()
	n := r.cfg.FanoutSubs
	job := Job{Kind: "fanout", Transport: tr, Host: srv.host, Topic: "bench-fanout",
		ReadInterval: 20 * time.Millisecond}
	open, _, err := r.spawn(ctx, job, n, &g)
	if err != nil {
		return err
	}
	pub := startPublisher(srv.host, "bench-fanout", r.cfg.FanoutRate)
	defer pub.end()
	if err := sleep(ctx, r.cfg.Warmup); err != nil {
		return err
	}
	if err := g.mark(ctx); err != nil {
		return err
	}
	pub0, cw := pub.count(), startCPUWindow(srv)
	if err := sleep(ctx, r.cfg.FanoutTime); err != nil {
		return err
	}
	window, serverCores, machine := cw.end(srv)
	pub1 := pub.count()
	rep, err := g.stop(ctx, time.Minute)
	if err != nil {
		return err
	}
	// The workers count from their mark to their stop, a little longer
	// than the window: rates each over its own window.
	run := FanoutRun{Server: serverName(baseline), Transport: tr, Subs: open, Rate: r.cfg.FanoutRate, Seconds: window,
		Published: pub1 - pub0, Delivered: rep.Events, EventsPerSec: perSecond(float64(rep.Events), rep.Seconds),
		ServerCores: serverCores, ClientCores: perSecond(rep.CPU, rep.Seconds), Machine: machine}
	if exp := perSecond(float64(run.Published), window) * float64(open); exp > 0 {
		run.Ratio = run.EventsPerSec / exp
	}
	r.printf("  %d subscribers, %d published: %.0f events/s delivered (%.1f%% of published × subscribers); server %.2f cores, clients %.2f cores, machine %.2f busy (%.2f kernel)\n",
		open, run.Published, run.EventsPerSec, 100*run.Ratio, run.ServerCores, run.ClientCores, run.Machine.Busy, run.Machine.Kernel)
	r.res.Fanout = append(r.res.Fanout, run)
	return nil
}

// capacity runs the capacity steps against server: "sluice", "baseline"
// or "raw" (the floor: raw.go).
func (r *runner) capacity(ctx context.Context, tr, server string) error {
	run := CapacityRun{Server: server, Transport: tr, BoundMS: ms(r.cfg.CapacityBound), TPS: r.cfg.DemoTPS}
	defer func() {
		run.finish()
		r.res.Capacity = append(r.res.Capacity, run)
	}()
	for _, n := range r.cfg.CapacitySteps {
		p, err := r.capacityStep(ctx, tr, n, server)
		if err != nil {
			return err
		}
		run.Points = append(run.Points, p)
		within := run.within(p)
		r.printf("  %5d generations: ITL p50 %.1f p90 %.1f p99 %.1f ms, %d tokens/s; server %.2f cores, clients %.2f cores, machine %.2f busy (%.2f kernel)%s\n",
			n, p.ITL.P50, p.ITL.P90, p.ITL.P99, p.Tokens, p.ServerCores, p.ClientCores, p.Machine.Busy, p.Machine.Kernel, map[bool]string{true: "", false: "  (over the bound)"}[within])
		// Every step runs, past the bound too, to draw the curve.
	}
	return nil
}

// within reports whether a step kept the pace: p99 inter-token delay within
// the bound, no failure, and at least 95 % of the tokens due delivered (a
// server that falls behind and sends tokens in bursts can show small
// delays between the tokens it does deliver).
func (run *CapacityRun) within(p CapacityPoint) bool {
	due := float64(p.Gens) * run.TPS
	return p.ITL.N > 0 && p.ITL.P99 <= run.BoundMS && p.Failed == 0 && (run.TPS <= 0 || float64(p.Tokens) >= 0.95*due)
}

// finish sets Max: the largest step within the bound before the first
// step over it.
func (run *CapacityRun) finish() {
	run.Max = 0
	for _, p := range run.Points {
		if !run.within(p) {
			break
		}
		run.Max = p.Gens
	}
}

// Finish recomputes what is derived from the points, for a result read
// back from JSON.
func (res *Result) Finish() {
	for i := range res.Capacity {
		res.Capacity[i].finish()
	}
}

func (r *runner) capacityStep(ctx context.Context, tr string, n int, server string) (CapacityPoint, error) {
	p := CapacityPoint{Gens: n, ServerCores: -1}
	var extra []string
	if server == "raw" {
		extra = []string{"--raw"}
	}
	srv, err := r.startServer(ctx, server != "sluice", extra...)
	if err != nil {
		return p, err
	}
	defer srv.stop()
	var g group
	defer g.kill()
	ramp := min(time.Duration(n)*time.Millisecond, 5*time.Second)
	// "long" makes the demo model answer with ~2000 tokens: at 50 tokens/s
	// every generation outlasts the window.
	job := Job{Kind: "gens", Transport: tr, Host: srv.host, Prompt: "long answer please", Ramp: ramp}
	if _, _, err := r.spawn(ctx, job, n, &g); err != nil {
		return p, err
	}
	if err := sleep(ctx, ramp+r.cfg.DemoTTFT+r.cfg.Warmup); err != nil {
		return p, err
	}
	if err := g.mark(ctx); err != nil {
		return p, err
	}
	cw := startCPUWindow(srv)
	if err := sleep(ctx, r.cfg.CapacityWindow); err != nil {
		return p, err
	}
	_, p.ServerCores, p.Machine = cw.end(srv)
	st, _ := srv.stats(ctx)
	rep, err := g.stop(ctx, time.Minute)
	if err != nil {
		return p, err
	}
	// Tokens and client CPU over the workers' own window, mark → stop,
	// which the stats call above is inside of.
	p.Failed, p.ITL, p.Stats = rep.Failed, rep.ITL.Summary(), st
	p.Tokens = int64(perSecond(float64(rep.ITL.N), rep.Seconds))
	p.ClientCores = perSecond(rep.CPU, rep.Seconds)
	if rep.Failed > 0 {
		r.printf("  %d failed: %s\n", rep.Failed, rep.Err)
	}
	return p, nil
}

// cpuWindow is the server's and the machine's CPU time at the start of a
// measuring window.
type cpuWindow struct {
	start   time.Time
	server  float64 // -1: unknown
	machine cpuTimes
}

func startCPUWindow(srv *server) cpuWindow {
	return cpuWindow{start: time.Now(), server: srv.cpu(), machine: machineCPU()}
}

// end returns the window's length in seconds, the cores the server used
// over it (-1: unknown) and the machine's load.
func (w cpuWindow) end(srv *server) (secs, serverCores float64, machine MachineLoad) {
	cpu, m := srv.cpu(), machineCPU()
	secs = time.Since(w.start).Seconds()
	serverCores = -1
	if w.server >= 0 && cpu >= 0 {
		serverCores = (cpu - w.server) / secs
	}
	return secs, serverCores, machineLoad(w.machine, m, secs)
}

// perSecond is v over secs, or 0 when nothing was timed.
func perSecond(v, secs float64) float64 {
	if secs <= 0 {
		return 0
	}
	return v / secs
}

func serverName(baseline bool) string {
	if baseline {
		return "baseline"
	}
	return "sluice"
}

func mb(b uint64) float64        { return float64(b) / (1 << 20) }
func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
