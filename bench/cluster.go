package bench

import (
	"context"
	"fmt"
	"time"
)

// ClusterRun is one setup of the cluster scenario: Nodes nodes, on memory
// or on one Redis that the bench started, measured alike, so that the
// setups can be read side by side.
type ClusterRun struct {
	Setup  string        `json:"setup"` // "memory ×1", "redis ×1", "redis ×3"
	Nodes  int           `json:"nodes"`
	Redis  bool          `json:"redis"`
	Gens   ClusterGens   `json:"gens"`
	Fanout ClusterFanout `json:"fanout"`
	Added  ClusterAdded  `json:"added"`
}

// ClusterGens is Gens concurrent generations spread evenly over the nodes.
type ClusterGens struct {
	Gens      int     `json:"gens"`
	Completed int64   `json:"completed"`
	Failed    int     `json:"failed"`
	Overhead  Summary `json:"overhead"` // request written → the model's first event, ms
	TTFT      Summary `json:"ttft"`
	ITL       Summary `json:"itl"`
	Tokens    int64   `json:"tokens"` // content tokens delivered
	Seconds   float64 `json:"seconds"`
	NodeCores float64 `json:"node_cores"` // all the nodes' CPU over the window, in cores
	// NodeCPUPerToken is the nodes' CPU time per delivered token, µs: with
	// the Redis figures, what projects the setup onto more cores.
	NodeCPUPerToken float64    `json:"node_cpu_us_per_token"`
	Redis           *RedisLoad `json:"redis,omitempty"`
}

// ClusterFanout is one topic, published to on the first node, read by
// Subs subscribers spread evenly over the nodes.
type ClusterFanout struct {
	Subs            int        `json:"subs"`
	Rate            int        `json:"publish_rate"`
	Seconds         float64    `json:"seconds"`
	Published       int64      `json:"published"`
	Delivered       int64      `json:"delivered"`
	EventsPerSec    float64    `json:"delivered_per_second"`
	Ratio           float64    `json:"delivered_ratio"`
	NodeCores       float64    `json:"node_cores"`
	NodeCPUPerEvent float64    `json:"node_cpu_us_per_event"` // per delivered event
	Redis           *RedisLoad `json:"redis,omitempty"`       // calls per delivered event
}

// ClusterAdded is what the setup adds to a model's time to first token,
// measured as the added scenario does (AddedRun), its generations spread
// over the nodes.
type ClusterAdded struct {
	Gens   int     `json:"gens"`
	Rounds int     `json:"rounds"`
	Failed int     `json:"failed"`
	Direct Summary `json:"direct"`
	Sluice Summary `json:"sluice"`
}

// AddedP50 is what the setup adds at the median, ms.
func (a ClusterAdded) AddedP50() float64 { return a.Sluice.P50 - a.Direct.P50 }

// AddedP99 is what it adds at the 99th percentile, ms.
func (a ClusterAdded) AddedP99() float64 { return a.Sluice.P99 - a.Direct.P99 }

// cluster measures one node on memory, one node on Redis and cfg.Nodes
// nodes on Redis, one setup after the other, over SSE: concurrent
// generations, fan-out and added TTFT, with the Redis figures. The bench
// starts a redis-server of its own, emptied between setups.
func (r *runner) cluster(ctx context.Context) error {
	if r.cfg.URL != "" {
		r.printf("  skipped: the cluster scenario starts its own nodes and Redis (no --url)\n")
		return nil
	}
	redis, err := r.startRedis(ctx)
	if err != nil {
		return err
	}
	defer stopRedis(redis)
	model, err := r.startServer(ctx, true) // the model of added
	if err != nil {
		return err
	}
	defer model.stop()
	setups := []struct {
		nodes int
		redis bool
	}{{1, false}, {1, true}, {r.cfg.Nodes, true}}
	for _, s := range setups {
		run := ClusterRun{Nodes: s.nodes, Redis: s.redis, Setup: fmt.Sprintf("memory ×%d", s.nodes)}
		var rd *server
		extra := []string{"--upstream-url", "http://" + model.host + "/v1", "--upstream-models", "upstream=demo"}
		if s.redis {
			rd = redis
			run.Setup = fmt.Sprintf("redis ×%d", s.nodes)
			if _, err := redisDo(redis.host, "FLUSHALL"); err != nil {
				return err
			}
			extra = append(extra, "--redis-url", "redis://"+redis.host+"/0")
		}
		r.printf("== cluster: %s\n", run.Setup)
		if err := r.clusterSetup(ctx, &run, rd, model.host, extra); err != nil {
			return fmt.Errorf("%s: %w", run.Setup, err)
		}
		r.res.Cluster = append(r.res.Cluster, run)
	}
	return nil
}

func (r *runner) clusterSetup(ctx context.Context, run *ClusterRun, redis *server, model string, extra []string) error {
	var nodes []*server
	defer func() {
		for _, n := range nodes {
			n.stop()
		}
	}()
	for range run.Nodes {
		n, err := r.startServer(ctx, false, extra...)
		if err != nil {
			return err
		}
		nodes = append(nodes, n)
	}
	var err error
	if run.Gens, err = r.clusterGens(ctx, nodes, redis); err != nil {
		return err
	}
	g := run.Gens
	r.printf("  %d generations: overhead p50 %.2f p99 %.2f ms, TTFT p50 %.1f p99 %.1f ms, %d tokens; nodes %.2f cores, %.1f µs CPU/token%s\n",
		g.Completed, g.Overhead.P50, g.Overhead.P99, g.TTFT.P50, g.TTFT.P99, g.Tokens, g.NodeCores, g.NodeCPUPerToken, redisLine(g.Redis))
	if run.Fanout, err = r.clusterFanout(ctx, nodes, redis); err != nil {
		return err
	}
	f := run.Fanout
	r.printf("  fan-out to %d subscribers: %.0f events/s delivered (%.1f%%); nodes %.2f cores, %.2f µs CPU/event%s\n",
		f.Subs, f.EventsPerSec, 100*f.Ratio, f.NodeCores, f.NodeCPUPerEvent, redisLine(f.Redis))
	if run.Added, err = r.clusterAdded(ctx, nodes, model); err != nil {
		return err
	}
	a := run.Added
	r.printf("  added TTFT, %d×%d generations: p50 %.2f ms, p99 %.2f ms\n", a.Gens, a.Rounds, a.AddedP50(), a.AddedP99())
	return nil
}

func redisLine(l *RedisLoad) string {
	if l == nil {
		return ""
	}
	return fmt.Sprintf("; Redis %.2f cores, %.1f MB, %.2f commands (%.2f scripts of %.0f µs) each", l.Cores, mb(l.UsedMemory), l.CallsPerUnit, l.ScriptsPerUnit, l.ScriptUsec)
}

// nodesCPU is the CPU time of every node so far, in seconds.
func nodesCPU(nodes []*server) float64 {
	var sum float64
	for _, n := range nodes {
		sum += n.cpu()
	}
	return sum
}

// spread splits n into len(nodes) parts as even as can be.
func spread(n, parts, i int) int {
	k := n / parts
	if i < n%parts {
		k++
	}
	return k
}

func (r *runner) clusterGens(ctx context.Context, nodes []*server, redis *server) (ClusterGens, error) {
	n := r.cfg.Gens
	out := ClusterGens{Gens: n}
	rw, err := startRedisWindow(redis)
	if err != nil {
		return out, err
	}
	start, cpu0 := time.Now(), nodesCPU(nodes)
	var g group
	defer g.kill()
	for i, nd := range nodes {
		k := spread(n, len(nodes), i)
		if k == 0 {
			continue
		}
		job := Job{Kind: "gens", Transport: "sse", Host: nd.host, Prompt: "Hello! How does streaming work?", Once: true,
			Ramp: time.Duration(n) * time.Millisecond}
		if _, _, err := r.spawn(ctx, job, k, &g); err != nil {
			return out, err
		}
	}
	rep, err := g.stop(ctx, time.Until(r.deadline))
	if err != nil {
		return out, err
	}
	out.Seconds = time.Since(start).Seconds()
	out.NodeCores = (nodesCPU(nodes) - cpu0) / out.Seconds
	out.Completed, out.Failed = rep.Gens, rep.Failed
	out.Overhead, out.TTFT, out.ITL = rep.Overhead.Summary(), rep.TTFT.Summary(), rep.ITL.Summary()
	// Every generation's first content token, then one per inter-token delay.
	out.Tokens = rep.Gens + int64(out.ITL.N)
	if out.Tokens > 0 {
		out.NodeCPUPerToken = 1e6 * (nodesCPU(nodes) - cpu0) / float64(out.Tokens)
	}
	if rep.Failed > 0 {
		r.printf("  %d failed: %s\n", rep.Failed, rep.Err)
	}
	out.Redis, err = rw.end(out.Tokens)
	return out, err
}

func (r *runner) clusterFanout(ctx context.Context, nodes []*server, redis *server) (ClusterFanout, error) {
	out := ClusterFanout{Rate: r.cfg.FanoutRate}
	var g group
	defer g.kill()
	const topic = "bench-cluster-fanout"
	for i, nd := range nodes {
		k := spread(r.cfg.FanoutSubs, len(nodes), i)
		if k == 0 {
			continue
		}
		opened, _, err := r.spawn(ctx, Job{Kind: "fanout", Transport: "sse", Host: nd.host, Topic: topic, ReadInterval: 20 * time.Millisecond}, k, &g)
		if err != nil {
			return out, err
		}
		out.Subs += opened
	}
	pub := startPublisher(nodes[0].host, topic, r.cfg.FanoutRate)
	defer pub.end()
	if err := sleep(ctx, r.cfg.Warmup); err != nil {
		return out, err
	}
	if err := g.mark(ctx); err != nil {
		return out, err
	}
	rw, err := startRedisWindow(redis)
	if err != nil {
		return out, err
	}
	pub0, cpu0, start := pub.count(), nodesCPU(nodes), time.Now()
	if err := sleep(ctx, r.cfg.FanoutTime); err != nil {
		return out, err
	}
	out.Seconds = time.Since(start).Seconds()
	cpu := nodesCPU(nodes) - cpu0
	out.Published = pub.count() - pub0
	rep, err := g.stop(ctx, time.Minute)
	if err != nil {
		return out, err
	}
	out.Delivered = rep.Events
	out.EventsPerSec = perSecond(float64(rep.Events), rep.Seconds)
	out.NodeCores = cpu / out.Seconds
	if exp := perSecond(float64(out.Published), out.Seconds) * float64(out.Subs); exp > 0 {
		out.Ratio = out.EventsPerSec / exp
	}
	if delivered := out.EventsPerSec * out.Seconds; delivered > 0 {
		out.NodeCPUPerEvent = 1e6 * cpu / delivered
	}
	out.Redis, err = rw.end(int64(out.EventsPerSec * out.Seconds))
	return out, err
}

// clusterAdded runs rounds of AddedGens[0] generations asked of the model
// directly and as many through the nodes (spread evenly), their starts
// interleaved, as addedLevel does for one server.
func (r *runner) clusterAdded(ctx context.Context, nodes []*server, model string) (ClusterAdded, error) {
	n := r.cfg.AddedGens[0]
	out := ClusterAdded{Gens: n, Rounds: max(5, (r.cfg.AddedSamples+n-1)/n)}
	direct := Job{Kind: "gens", Transport: "sse", Host: model, Prompt: "short answer please", Once: true}
	jobs := []Job{direct}
	counts := []int{n}
	for i, nd := range nodes {
		if k := spread(n, len(nodes), i); k > 0 {
			via := direct
			via.Host, via.Model = nd.host, "upstream"
			jobs, counts = append(jobs, via), append(counts, k)
		}
	}
	ramp := time.Duration(2*n) * time.Millisecond
	for i := range jobs {
		jobs[i].Ramp = ramp
	}
	// The nodes' sides start together, a millisecond after the model's.
	sum, err := r.rounds(ctx, sides{jobs: jobs, counts: counts, after: func(i int) time.Duration { return time.Duration(min(i, 1)) * time.Millisecond }}, out.Rounds)
	dsum, ssum := sum[0], newReport()
	for i := range sum {
		out.Failed += sum[i].Failed
		if i > 0 {
			ssum.mergeHists(&sum[i])
		}
	}
	if err != nil {
		return out, err
	}
	out.Direct, out.Sluice = dsum.Added.Summary(), ssum.Added.Summary()
	return out, nil
}
