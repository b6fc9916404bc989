package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"runtime"
	"strings"
	"sync"
	"time"
)

// Config is what `sluice bench` is told; cmd/sluice fills it from flags.
type Config struct {
	// URL is a running server to measure (loopback only). Empty: the bench
	// starts a fresh `sluice serve` for every measurement, so that memory
	// figures do not carry over, with the demo pace below.
	URL      string
	DemoTTFT time.Duration
	DemoTPS  float64
	// ModelURL, with URL, is the model that server serves as "upstream"
	// (an OpenAI-compatible server that stamps its first token, as the
	// baseline does), for the "added" scenario. Without URL the bench
	// starts both.
	ModelURL string
	ProxyURL string // with ModelURL: a bare reverse proxy to it, to compare with (optional)

	Transports []string // "sse", "ws", "h2" (SSE over HTTPS and HTTP/2: idle only)
	Scenarios  []string // "idle", "ttft", "added", "fanout", "capacity", "floor", "cluster", "conversations"
	Nodes      int      // cluster: the nodes of its largest setup; 0 means 3
	// ConvGens are the levels of the conversations scenario: concurrent
	// generations a round, all its sides together; ConvRounds the rounds
	// counted at each (after one that is not).
	ConvGens   []int
	ConvRounds int
	// DatabaseURL, when set, adds PostgreSQL (a database the bench may
	// fill) to the conversations scenario's setups.
	DatabaseURL string
	Baseline    bool // also measure the naive net/http server (idle, fanout, capacity) and the raw floor (capacity)

	IdleSteps      []int         // idle subscribers, cumulatively, for memory per connection
	AddedGens      []int         // concurrent generations a side for added, level by level
	AddedSamples   int           // generations a side at least, per level, in rounds of AddedGens
	Gens           int           // concurrent generations for ttft
	FanoutSubs     int           // subscribers of the fan-out topic
	FanoutRate     int           // events published per second
	FanoutTime     time.Duration // measuring window
	CapacitySteps  []int         // concurrent generations to try, in order
	CapacityBound  time.Duration // p99 inter-token delay bound
	CapacityWindow time.Duration // measuring window per step
	Warmup         time.Duration // wait this long after connecting before measuring (idle: half)

	Duration       time.Duration // the whole run stops by itself after this long
	ConnsPerWorker int           // most connections one worker process holds
	Sources        int           // source addresses 127.0.0.2 … to spread connections over

	// Exe is the sluice binary that serves and runs workers; WorkerCommand
	// and WorkerEnv say how to start a worker (tests start themselves).
	Exe           string
	WorkerCommand []string
	WorkerEnv     []string
	ServerArgs    []string // more flags for the servers the bench starts

	Out io.Writer // the human table and progress
}

// Defaults fills zero fields.
func (c *Config) Defaults() {
	if len(c.Transports) == 0 {
		c.Transports = []string{"sse", "ws", TransportH2}
	}
	if len(c.Scenarios) == 0 {
		c.Scenarios = []string{"idle", "ttft", "added", "fanout", "capacity", "floor"}
	}
	if c.Gens <= 0 {
		c.Gens = 100
	}
	if len(c.AddedGens) == 0 {
		c.AddedGens = []int{10, 100}
	}
	if c.AddedSamples <= 0 {
		c.AddedSamples = 1000
	}
	if c.FanoutTime <= 0 {
		c.FanoutTime = 10 * time.Second
	}
	if c.CapacityBound <= 0 {
		c.CapacityBound = 50 * time.Millisecond
	}
	if c.CapacityWindow <= 0 {
		c.CapacityWindow = 8 * time.Second
	}
	if c.Warmup <= 0 {
		c.Warmup = 2 * time.Second
	}
	if c.Duration <= 0 {
		c.Duration = 15 * time.Minute
	}
	if c.ConnsPerWorker <= 0 {
		c.ConnsPerWorker = 8000
	}
	if c.Nodes <= 0 {
		c.Nodes = 3
	}
	if len(c.ConvGens) == 0 {
		c.ConvGens = []int{200}
	}
	if c.ConvRounds <= 0 {
		c.ConvRounds = 3
	}
	if c.Sources <= 0 {
		c.Sources = 16
	}
	if c.Out == nil {
		c.Out = io.Discard
	}
}

type runner struct {
	cfg      Config
	deadline time.Time
	src      int // next source address
	res      *Result

	certOnce sync.Once // the certificate of HTTPS servers (h2.go)
	certDir  string
	certErr  error
}

// Run runs the configured scenarios and returns their figures. It stops by
// itself after cfg.Duration.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	cfg.Defaults()
	for _, u := range []*string{&cfg.URL, &cfg.ModelURL, &cfg.ProxyURL} {
		if *u != "" {
			if err := CheckLoopback(*u); err != nil {
				return nil, err
			}
			*u = strings.TrimRight(*u, "/")
		}
	}
	RaiseFileLimit()
	ctx, cancel := context.WithTimeout(ctx, cfg.Duration)
	defer cancel()
	dl, _ := ctx.Deadline()
	r := &runner{cfg: cfg, deadline: dl, res: newResult(cfg)}
	defer func() {
		if r.certDir != "" {
			os.RemoveAll(r.certDir)
		}
	}()
	var errs []error
	for _, sc := range cfg.Scenarios {
		if sc == "cluster" {
			r.printf("== cluster: one node on memory, one on Redis, %d on Redis (SSE)\n", cfg.Nodes)
			if err := r.cluster(ctx); err != nil {
				errs = append(errs, fmt.Errorf("cluster: %w", err))
				r.printf("  failed: %v\n", err)
			}
			continue
		}
		if sc == "conversations" {
			r.printf("== conversations: chats with and without a conversation kept, on --data-dir off, SQLite%s (SSE)\n",
				map[bool]string{true: " and PostgreSQL", false: ""}[cfg.DatabaseURL != ""])
			if err := r.conversations(ctx); err != nil {
				errs = append(errs, fmt.Errorf("conversations: %w", err))
				r.printf("  failed: %v\n", err)
			}
			continue
		}
		if sc == "floor" {
			r.printf("== floor: the machine's timer lateness, no I/O\n")
			if err := r.floor(ctx); err != nil {
				errs = append(errs, err)
			}
			continue
		}
		for _, tr := range cfg.Transports {
			if err := r.scenario(ctx, sc, tr, false); err != nil {
				errs = append(errs, fmt.Errorf("%s over %s: %w", sc, tr, err))
				r.printf("  failed: %v\n", err)
			}
		}
		if cfg.Baseline && cfg.URL == "" && (sc == "idle" || sc == "fanout" || sc == "capacity") {
			if err := r.scenario(ctx, sc, "sse", true); err != nil {
				errs = append(errs, fmt.Errorf("%s on the baseline: %w", sc, err))
				r.printf("  failed: %v\n", err)
			}
		}
		if cfg.Baseline && cfg.URL == "" && sc == "capacity" {
			r.printf("== capacity over SSE (raw: the floor, no HTTP library, JSON or log)\n")
			if err := r.capacity(ctx, "sse", "raw"); err != nil {
				errs = append(errs, fmt.Errorf("capacity on the raw server: %w", err))
				r.printf("  failed: %v\n", err)
			}
		}
		if ctx.Err() != nil {
			errs = append(errs, fmt.Errorf("stopped after --duration %v", cfg.Duration))
			break
		}
	}
	r.res.Finished = time.Now().UTC()
	r.res.LoadAvg[1] = loadAvg()
	return r.res, errors.Join(errs...)
}

func (r *runner) printf(format string, args ...any) { fmt.Fprintf(r.cfg.Out, format, args...) }

func (r *runner) scenario(ctx context.Context, sc, tr string, baseline bool) error {
	name := "sluice"
	if baseline {
		name = "baseline"
	}
	r.printf("== %s over %s (%s)\n", sc, strings.ToUpper(tr), name)
	if tr == TransportH2 && sc != "idle" {
		r.printf("  skipped: over HTTP/2 the bench measures idle memory only\n")
		return nil
	}
	switch sc {
	case "idle":
		return r.idle(ctx, tr, baseline)
	case "ttft":
		return r.ttft(ctx, tr)
	case "added":
		return r.added(ctx, tr)
	case "fanout":
		return r.fanout(ctx, tr, baseline)
	case "capacity":
		return r.capacity(ctx, tr, name)
	}
	return fmt.Errorf("unknown scenario %q", sc)
}

// nextSrc returns the next source address, 127.0.0.2 onwards.
func (r *runner) nextSrc() string {
	s := fmt.Sprintf("127.0.0.%d", 2+r.src%r.cfg.Sources)
	r.src++
	return s
}

// group is the workers of one measurement.
type group struct {
	procs []*workerProc
}

// spawn splits n connections of job over workers and waits until every
// worker reports its connections open.
func (r *runner) spawn(ctx context.Context, job Job, n int, g *group) (opened, failed int, err error) {
	per := r.cfg.ConnsPerWorker
	k := (n + per - 1) / per
	var procs []*workerProc
	for i := range k {
		j := job
		j.N = n / k
		if i < n%k {
			j.N++
		}
		j.Src = r.nextSrc()
		p, err := r.startWorker(j)
		if err != nil {
			return opened, failed, err
		}
		procs = append(procs, p)
		g.procs = append(g.procs, p)
	}
	var firstErr string
	for _, p := range procs {
		rep, err := p.recv(ctx, time.Until(r.deadline))
		if err != nil {
			return opened, failed, err
		}
		opened += rep.Opened
		failed += rep.Failed
		if firstErr == "" {
			firstErr = rep.Err
		}
	}
	if failed > 0 {
		r.printf("  %d of %d connections failed; the first: %s\n", failed, n, firstErr)
	}
	return opened, failed, nil
}

// mark tells every worker to start counting.
func (g *group) mark(ctx context.Context) error {
	for _, p := range g.procs {
		if err := p.send(command{Cmd: "mark"}); err != nil {
			return err
		}
	}
	for _, p := range g.procs {
		if _, err := p.recv(ctx, 30*time.Second); err != nil {
			return err
		}
	}
	return nil
}

// stop ends every worker and merges their reports.
func (g *group) stop(ctx context.Context, wait time.Duration) (Report, error) {
	total := newReport()
	reports := 0
	var errs []error
	for _, p := range g.procs {
		if err := p.send(command{Cmd: "stop"}); err != nil {
			errs = append(errs, err)
		}
	}
	for _, p := range g.procs {
		rep, err := p.recv(ctx, wait)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		total.Opened += rep.Opened
		total.Failed += rep.Failed
		if total.Err == "" {
			total.Err = rep.Err
		}
		total.Events += rep.Events
		total.Gens += rep.Gens
		total.CPU += rep.CPU
		total.Seconds += rep.Seconds
		reports++
		total.mergeHists(&rep)
	}
	if reports > 0 {
		total.Seconds /= float64(reports) // the workers counted side by side
	}
	g.kill()
	return total, errors.Join(errs...)
}

func (g *group) kill() {
	var wg sync.WaitGroup
	for _, p := range g.procs {
		wg.Add(1)
		go func() { defer wg.Done(); p.kill() }()
	}
	wg.Wait()
	g.procs = nil
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// publisher publishes to a topic over HTTP at a steady rate until stopped,
// counting what it published.
type publisher struct {
	mu        sync.Mutex
	published int64
	failed    int64
	stop      chan struct{}
	done      chan struct{}
}

func startPublisher(host, topic string, rate int) *publisher {
	p := &publisher{stop: make(chan struct{}), done: make(chan struct{})}
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 8}}
	url := "http://" + host + "/v1/topics/" + topic + "/events"
	body := `{"event":"tick","data":"` + strings.Repeat("x", 48) + `"}`
	go func() {
		defer close(p.done)
		defer client.CloseIdleConnections()
		const tick = 10 * time.Millisecond
		start := time.Now()
		t := time.NewTicker(tick)
		defer t.Stop()
		// Bounded: two hours of ticks, more than --duration allows.
		for range int(2 * time.Hour / tick) {
			select {
			case <-p.stop:
				return
			case <-t.C:
			}
			// Publish what is due by now: rate × elapsed, minus what went.
			due := int64(time.Since(start).Seconds() * float64(rate))
			p.mu.Lock()
			n := due - p.published - p.failed
			p.mu.Unlock()
			for range min(n, int64(rate)) {
				resp, err := client.Post(url, "application/json", strings.NewReader(body))
				ok := err == nil && resp.StatusCode == http.StatusCreated
				if err == nil {
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
				p.mu.Lock()
				if ok {
					p.published++
				} else {
					p.failed++
				}
				p.mu.Unlock()
			}
		}
	}()
	return p
}

func (p *publisher) count() int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.published
}

func (p *publisher) end() {
	close(p.stop)
	<-p.done
}

// loadAvg is the first three fields of /proc/loadavg, or "".
func loadAvg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	return strings.Join(f[:min(3, len(f))], " ")
}

func newResult(cfg Config) *Result {
	return &Result{
		Started: time.Now().UTC(), GoVersion: runtime.Version(), NumCPU: runtime.NumCPU(),
		FileLimit: FileLimit(), LoadAvg: [2]string{loadAvg()}, DemoTTFTMS: float64(cfg.DemoTTFT) / 1e6, DemoTPS: cfg.DemoTPS, URL: cfg.URL,
	}
}
