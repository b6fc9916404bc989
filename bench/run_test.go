package bench_test

import (
	"context"
	"encoding/json"
	"fmt"
	"image/png"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/sluice-dev/sluice"
	"github.com/sluice-dev/sluice/bench"
	"github.com/sluice-dev/sluice/demo"
	"github.com/sluice-dev/sluice/internal/testenv"
	"github.com/sluice-dev/sluice/openai"
	"github.com/sluice-dev/sluice/ws"
)

// TestMain doubles as the bench's worker process: Run starts this test
// binary again with SLUICE_BENCH_WORKER=1, as `sluice bench` starts
// `sluice bench-worker`.
func TestMain(m *testing.M) {
	if os.Getenv("SLUICE_BENCH_WORKER") == "1" {
		if err := bench.RunWorker(context.Background(), os.Stdin, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, "worker:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	testenv.RunWithoutLeaks(m, http.DefaultClient)
}

// loopbackServer serves h on 127.0.0.1 until the test ends.
func loopbackServer(t *testing.T, h http.Handler) string {
	t.Helper()
	srv := httptest.NewServer(h) // on 127.0.0.1
	t.Cleanup(func() { srv.CloseClientConnections(); srv.Close() })
	return srv.URL
}

// sluiceServer is an in-process Sluice with both transports, a fast demo
// model and models, if any.
func sluiceServer(t *testing.T, models ...map[string]sluice.Model) string {
	t.Helper()
	// Cleanups run last first: the handler is waited for after the server
	// (registered next) has ended its generations and connections.
	var h *ws.Handler
	t.Cleanup(func() {
		if h != nil {
			h.Wait()
		}
	})
	o := testenv.Options{Demo: demo.Options{TokensPerSecond: 2000}}
	if len(models) > 0 {
		o.Models = models[0]
	}
	s := testenv.NewServer(t, o)
	stop, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	h = ws.NewHandler(ws.Options{Gate: s.Gate, Runner: s.Runner, Stop: stop, Logger: testenv.Logger(t)})
	s.API.Handle("GET /ws", h)
	s.API.CountWebSockets(func() int64 { return h.Stats().Connections })
	return s.URL
}

func config(t *testing.T, url string) bench.Config {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return bench.Config{
		URL: url, DemoTPS: 2000, Exe: exe,
		WorkerCommand: []string{exe, "-test.run=^$"}, WorkerEnv: []string{"SLUICE_BENCH_WORKER=1"},
		IdleSteps: []int{3, 6}, Gens: 4, FanoutSubs: 5, FanoutRate: 50, FanoutTime: 300 * time.Millisecond,
		CapacitySteps: []int{2, 4}, CapacityBound: time.Second, CapacityWindow: 300 * time.Millisecond,
		AddedGens: []int{2}, AddedSamples: 10,
		ConnsPerWorker: 3, Duration: time.Minute, Warmup: 100 * time.Millisecond,
	}
}

// TestTinyRunMeasuresEveryScenario runs every scenario over both
// transports with a handful of connections against an in-process server.
func TestTinyRunMeasuresEveryScenario(t *testing.T) {
	if testing.Short() {
		t.Skip("starts worker processes")
	}
	res, err := bench.Run(context.Background(), config(t, sluiceServer(t)))
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Idle) != 2 || len(res.TTFT) != 2 || len(res.Fanout) != 2 || len(res.Capacity) != 2 || len(res.Floor) != 2 {
		t.Fatalf("runs: %d idle, %d ttft, %d fanout, %d capacity", len(res.Idle), len(res.TTFT), len(res.Fanout), len(res.Capacity))
	}
	for _, r := range res.Idle {
		if last := r.Points[len(r.Points)-1]; last.Conns != 6 || last.Failed != 0 {
			t.Errorf("idle %s: %+v", r.Transport, last)
		}
	}
	for _, r := range res.TTFT {
		if r.Completed != 4 || r.TTFT.N != 4 || r.Overhead.N != 4 || r.ITL.N == 0 || r.Overhead.P50 > r.TTFT.P50 {
			t.Errorf("ttft %s: %+v", r.Transport, r)
		}
	}
	for _, r := range res.Fanout {
		if r.Subs != 5 || r.Published == 0 || r.Delivered == 0 || r.EventsPerSec <= 0 || r.Ratio <= 0 {
			t.Errorf("fanout %s: %+v", r.Transport, r)
		}
	}
	for _, r := range res.Capacity {
		if len(r.Points) != 2 || r.Points[0].ITL.N == 0 || r.Points[0].Tokens <= 0 || r.Points[0].ClientCores <= 0 {
			t.Errorf("capacity %s: %+v", r.Transport, r)
		}
	}
	dir := t.TempDir()
	if err := res.WriteJSON(filepath.Join(dir, "r.json")); err != nil {
		t.Fatal(err)
	}
	chart := filepath.Join(dir, "c.png")
	if err := res.Chart(chart); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(chart)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := png.Decode(f); err != nil {
		t.Fatalf("chart: %v", err)
	}
	res.PrintTable(io.Discard)
	if err := res.WriteMarkdown(filepath.Join(dir, "r.md")); err != nil {
		t.Fatal(err)
	}
}

// TestAddedComparesSluiceWithTheModelItServes: the baseline is the model,
// Sluice serves it as "upstream", and the run times both side by side, the
// model's own time to first token taken out of each.
func TestAddedComparesSluiceWithTheModelItServes(t *testing.T) {
	if testing.Short() {
		t.Skip("starts worker processes")
	}
	model := bench.NewBaseline()
	// The model thinks far longer than what a hop adds even on a loaded
	// machine, so that taking it out is told apart from the noise.
	const thinkMS = 250
	model.TTFT, model.TPS = thinkMS*time.Millisecond, 2000
	modelURL := loopbackServer(t, model)
	up, err := openai.NewUpstream(openai.UpstreamOptions{Name: "bench-model", BaseURL: modelURL + "/v1"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(up.Close)
	url := sluiceServer(t, map[string]sluice.Model{"upstream": openai.New(openai.Options{Upstream: up, Model: "demo"})})
	proxy := bench.NewBaseline()
	rp, err := bench.NewProxy(modelURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rp.Transport.CloseIdleConnections)
	proxy.Proxy = rp
	cfg := config(t, url)
	cfg.ModelURL, cfg.ProxyURL, cfg.Scenarios = modelURL, loopbackServer(t, proxy), []string{"added"}
	// Sixty samples of a model that thinks 250 ms each take 20 s alone and
	// near a minute on a machine loaded with other tests; the bound only
	// stops a run that hangs.
	cfg.Duration = 4 * time.Minute
	res, err := bench.Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Added) != 2 {
		t.Fatalf("added runs: %+v", res.Added)
	}
	for _, r := range res.Added {
		n := uint64(r.Gens * r.Rounds)
		if r.Gens != 2 || r.Rounds != 5 || r.Failed != 0 || r.Direct.N != n || r.Sluice.N != n || r.Proxy.N != n || r.DirectTTFT.N != n || r.SluiceTTFT.N != n {
			t.Errorf("%s: want %d timings a side, no failure: %+v", r.Transport, n, r)
			continue
		}
		// The TTFTs hold the model's thinking; the figures with it taken
		// out do not.
		for _, ttft := range []bench.Summary{r.DirectTTFT, r.SluiceTTFT} {
			if ttft.P50 < thinkMS {
				t.Errorf("%s: TTFT p50 %.2f ms, under the model's own %d ms", r.Transport, ttft.P50, thinkMS)
			}
		}
		if r.Direct.P50 >= thinkMS || r.Sluice.P50 >= thinkMS || r.Proxy.P50 >= thinkMS || r.Sluice.P50 <= 0 || r.Proxy.P50 <= 0 {
			t.Errorf("%s: the model's own TTFT was not taken out: direct %+v, through Sluice %+v, through the proxy %+v", r.Transport, r.Direct, r.Sluice, r.Proxy)
		}
	}
	// Without a model to compare with, a run against --url skips the
	// measurement rather than fail it.
	cfg.ModelURL, cfg.ProxyURL = "", ""
	res, err = bench.Run(context.Background(), cfg)
	if err != nil || len(res.Added) != 0 {
		t.Errorf("without --model-url: %v, %+v", err, res.Added)
	}
}

// TestBaselineServesTheBenchRoutes measures the naive server in-process.
func TestBaselineServesTheBenchRoutes(t *testing.T) {
	if testing.Short() {
		t.Skip("starts worker processes")
	}
	cfg := config(t, loopbackServer(t, bench.NewBaseline()))
	cfg.Transports, cfg.Scenarios = []string{"sse"}, []string{"idle", "fanout"}
	res, err := bench.Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Fanout) != 1 || res.Fanout[0].Delivered == 0 || res.Idle[0].Points[1].Stats.Streams != 6 {
		t.Fatalf("baseline: %+v %+v", res.Fanout, res.Idle)
	}
}

// TestRawServerIsTheFloor: the raw server (bench-baseline --raw) streams
// paced chat completions that the bench reads like Sluice's, reports its
// streams on /debug/stats, and stops with its context, connections and all.
func TestRawServerIsTheFloor(t *testing.T) {
	if testing.Short() {
		t.Skip("starts worker processes")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- bench.ServeBaseline(ctx, addr, bench.BaselineOptions{Raw: true, TTFT: 5 * time.Millisecond, TPS: 2000})
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("ServeBaseline: %v", err)
		}
	}()
	for i := 0; ; i++ { // until it listens
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
			break
		}
		if i == 100 {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	cfg := config(t, "http://"+addr)
	cfg.Transports, cfg.Scenarios, cfg.CapacitySteps = []string{"sse"}, []string{"capacity"}, []int{3}
	res, err := bench.Run(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	p := res.Capacity[0].Points[0]
	if p.Failed != 0 || p.ITL.N == 0 || p.Tokens <= 0 || p.Stats.Streams != 3 || p.Stats.RSSBytes == 0 {
		t.Errorf("raw server: %+v", p)
	}
}

func TestRefusesTargetsOffLoopback(t *testing.T) {
	for _, u := range []string{"http://10.0.0.1:8080", "http://example.com:80", "https://127.0.0.1:1", "127.0.0.1:8080", "http://192.168.1.2:80"} {
		if bench.CheckLoopback(u) == nil {
			t.Errorf("%s accepted", u)
		}
		if _, err := bench.Run(context.Background(), bench.Config{URL: u}); err == nil {
			t.Errorf("Run accepted %s", u)
		}
		for _, cfg := range []bench.Config{{URL: "http://127.0.0.1:1", ModelURL: u}, {URL: "http://127.0.0.1:1", ProxyURL: u}} {
			if _, err := bench.Run(context.Background(), cfg); err == nil {
				t.Errorf("Run accepted %+v", cfg)
			}
		}
	}
	for _, u := range []string{"http://127.0.0.1:8080", "http://127.0.0.9:1", "http://[::1]:80", "http://localhost:8080"} {
		if err := bench.CheckLoopback(u); err != nil {
			t.Errorf("%s: %v", u, err)
		}
	}
}

// TestWorkerReportsTheWindowItCounted: a worker's rates are its counts over
// the time from its mark to its stop, not over the time it takes to close
// its connections and exit.
func TestWorkerReportsTheWindowItCounted(t *testing.T) {
	for _, marked := range []bool{false, true} {
		inR, inW := io.Pipe()
		outR, outW := io.Pipe()
		done := make(chan error, 1)
		go func() { done <- bench.RunWorker(context.Background(), inR, outW); outW.Close() }()
		dec := json.NewDecoder(outR)
		send := func(cmd string, job *bench.Job) bench.Report {
			t.Helper()
			b, _ := json.Marshal(map[string]any{"cmd": cmd, "job": job})
			if _, err := inW.Write(append(b, '\n')); err != nil {
				t.Fatal(err)
			}
			var r bench.Report
			if err := dec.Decode(&r); err != nil {
				t.Fatal(err)
			}
			return r
		}
		send("job", &bench.Job{Kind: "idle", Deadline: time.Now().Add(time.Minute)})
		const window = 200 * time.Millisecond
		var counted time.Duration
		if marked {
			send("mark", nil)
			start := time.Now()
			time.Sleep(window) // the window itself: nothing to await
			counted = time.Since(start)
		}
		r := send("stop", nil)
		inW.Close()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		secs := time.Duration(r.Seconds * float64(time.Second))
		if marked && (secs < window || secs > counted+100*time.Millisecond) || !marked && secs != 0 {
			t.Errorf("marked %v: counted for %v, want about %v", marked, secs, counted)
		}
	}
}
