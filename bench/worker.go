package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// A worker is a client process: the coordinator starts several (`sluice
// bench-worker`), so that no process holds more than ~18,000 sockets, and
// talks to each in JSON lines over its stdin and stdout: one job, then
// "mark" (start counting) and "stop" (stop counting, close everything,
// report). A worker exits when its stdin closes or its deadline passes.

// Job is what a worker is asked to do.
type Job struct {
	Kind      string `json:"kind"`      // "idle", "fanout" or "gens"
	Transport string `json:"transport"` // "sse" or "ws"
	Host      string `json:"host"`      // host:port of the server
	Src       string `json:"src"`       // source address, 127.0.0.x
	N         int    `json:"n"`         // connections
	Topic     string `json:"topic"`     // idle, fanout
	Prompt    string `json:"prompt"`    // gens
	Model     string `json:"model"`     // gens; empty: "demo"
	// Conversation: each generation continues a conversation of its own,
	// made (POST /v1/conversations) before the generation is timed.
	Conversation bool `json:"conversation,omitempty"`
	// Once: each connection runs one generation, and the worker reports
	// when all are done; otherwise generations follow one another until stop.
	Once bool          `json:"once"`
	Ramp time.Duration `json:"ramp"` // spread connection starts over this long
	// Start, when set, is when gens begin their ramp (wall clock), so that
	// two workers' generations can interleave; otherwise they begin at once.
	Start        time.Time     `json:"start"`
	ReadInterval time.Duration `json:"read_interval"` // fanout: pause between reads, so that reads batch events
	Deadline     time.Time     `json:"deadline"`      // the worker gives up and exits then
}

// command is a coordinator → worker line.
type command struct {
	Cmd string `json:"cmd"` // "job", "mark", "stop"
	Job *Job   `json:"job,omitempty"`
}

// Report is a worker → coordinator line.
type Report struct {
	Ev     string `json:"ev"` // "ready", "marked", "result"
	Opened int    `json:"opened"`
	Failed int    `json:"failed"`
	Err    string `json:"err,omitempty"` // the first failure
	Events int64  `json:"events"`        // events received while marked
	Gens   int64  `json:"gens"`          // generations completed
	// Seconds is how long the worker counted, mark → stop (0: never
	// marked): the window of Events, CPU and the histograms (but for Once
	// jobs, which time every generation). A sum of reports holds the
	// workers' mean.
	Seconds float64 `json:"seconds"`
	// Gens: connect (TCP, plus the upgrade for WebSocket), overhead (request
	// sent → the model's first event, the role chunk), TTFT (request sent →
	// first content token), cold TTFT (dial → first content token),
	// inter-token delays (between content tokens); added, when the model
	// stamps its first token (the baseline does): TTFT less the model's own,
	// as it measured it.
	Connect  *Hist   `json:"connect,omitempty"`
	Overhead *Hist   `json:"overhead,omitempty"`
	TTFT     *Hist   `json:"ttft,omitempty"`
	Cold     *Hist   `json:"cold,omitempty"`
	ITL      *Hist   `json:"itl,omitempty"`
	Added    *Hist   `json:"added,omitempty"`
	CPU      float64 `json:"cpu_seconds"` // this process's CPU time while marked
}

// newReport returns a Report with empty histograms.
func newReport() Report {
	return Report{Connect: &Hist{}, Overhead: &Hist{}, TTFT: &Hist{}, Cold: &Hist{}, ITL: &Hist{}, Added: &Hist{}}
}

// mergeHists adds the histograms of o to r's.
func (r *Report) mergeHists(o *Report) {
	for _, p := range [][2]*Hist{{r.Connect, o.Connect}, {r.Overhead, o.Overhead},
		{r.TTFT, o.TTFT}, {r.Cold, o.Cold}, {r.ITL, o.ITL}, {r.Added, o.Added}} {
		p[0].Merge(p[1])
	}
}

// RunWorker is the body of `sluice bench-worker`.
func RunWorker(ctx context.Context, in io.Reader, out io.Writer) error {
	RaiseFileLimit()
	enc := json.NewEncoder(out)
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	cmds := make(chan command)
	go func() { // ends when stdin closes: the coordinator went away
		defer close(cmds)
		for sc.Scan() {
			var c command
			if json.Unmarshal(sc.Bytes(), &c) == nil {
				cmds <- c
			}
		}
	}()
	var w *worker
	for {
		var c command
		var ok bool
		var deadline <-chan time.Time
		if w != nil {
			deadline = w.deadline.C
		}
		select {
		case c, ok = <-cmds:
		case <-deadline:
			ok = false
		case <-ctx.Done():
			ok = false
		}
		if !ok {
			if w != nil {
				w.stop()
			}
			return nil
		}
		switch c.Cmd {
		case "job":
			if w != nil || c.Job == nil {
				return errors.New("bench-worker: one job per worker")
			}
			w = newWorker(*c.Job)
			if err := enc.Encode(w.open()); err != nil {
				return err
			}
		case "mark":
			if w == nil {
				return errors.New("bench-worker: mark before job")
			}
			w.mark()
			if err := enc.Encode(Report{Ev: "marked"}); err != nil {
				return err
			}
		case "stop":
			if w == nil {
				return errors.New("bench-worker: stop before job")
			}
			r := w.stop()
			return enc.Encode(r)
		}
	}
}

type worker struct {
	job      Job
	deadline *time.Timer
	ctx      context.Context
	cancel   context.CancelFunc
	wg       sync.WaitGroup // the goroutines of connections and generations
	loopWG   sync.WaitGroup // the SSE event loop, which outlives them

	recording atomic.Bool
	events    atomic.Int64
	gens      atomic.Int64
	cpuMark   float64
	markedAt  time.Time

	mu       sync.Mutex
	conns    map[net.Conn]struct{}
	opened   int
	failed   int
	firstErr string
	hists    Report // histograms merged from finished connections

	loop *sseLoop     // Linux: reads the generations, SSE and WebSocket
	h2   *h2Streams   // idle subscriptions over HTTP/2
	api  *http.Client // Job.Conversation: makes the conversations
}

func newWorker(j Job) *worker {
	w := &worker{job: j, conns: make(map[net.Conn]struct{})}
	w.ctx, w.cancel = context.WithDeadline(context.Background(), j.Deadline)
	w.deadline = time.NewTimer(time.Until(j.Deadline))
	w.hists = newReport()
	if j.Conversation {
		w.api = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{DialContext: dialer(j.Src).DialContext, MaxIdleConnsPerHost: 16}}
	}
	return w
}

func (w *worker) fail(err error) {
	w.mu.Lock()
	w.failed++
	if w.firstErr == "" {
		w.firstErr = err.Error()
	}
	w.mu.Unlock()
}

func (w *worker) track(c net.Conn) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.ctx.Err() != nil {
		c.Close()
		return false
	}
	w.conns[c] = struct{}{}
	w.opened++
	return true
}

// untrack closes c and forgets it.
func (w *worker) untrack(c net.Conn) {
	w.mu.Lock()
	delete(w.conns, c)
	w.mu.Unlock()
	c.Close()
}

// merge adds the histograms of h to the worker's.
func (w *worker) merge(h *Report) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.hists.mergeHists(h)
}

// open opens the job's connections, at most 256 dials at a time, and
// reports once all are open (or failed). Generations start here too, each
// at its ramp offset.
func (w *worker) open() Report {
	j := w.job
	d := dialer(j.Src)
	if j.Kind == "gens" {
		if err := w.startReader(); err != nil {
			w.fail(err)
			return Report{Ev: "ready", Failed: 1, Err: err.Error()}
		}
		first := max(time.Until(j.Start), 0) // zero Start: now
		for i := range j.N {
			w.wg.Add(1)
			go w.generate(d, first+time.Duration(int64(j.Ramp)*int64(i)/int64(max(j.N, 1))))
		}
		return Report{Ev: "ready", Opened: j.N}
	}
	if j.Transport == TransportH2 {
		w.h2 = newH2Streams(d)
	}
	sem := make(chan struct{}, 256)
	var opening sync.WaitGroup
	for i := range j.N {
		if w.ctx.Err() != nil {
			break
		}
		sem <- struct{}{}
		opening.Add(1)
		go func() {
			defer func() { <-sem; opening.Done() }()
			if j.Ramp > 0 {
				time.Sleep(time.Duration(int64(j.Ramp) * int64(i) / int64(max(j.N, 1))))
			}
			if w.h2 != nil {
				if err := w.h2.subscribe(j.Host, j.Topic); err != nil {
					w.fail(err)
					return
				}
				w.mu.Lock()
				w.opened++
				w.mu.Unlock()
				return
			}
			s, err := w.subscribe(d)
			if err != nil {
				w.fail(err)
				return
			}
			if !w.track(s.conn) {
				return
			}
			if j.Kind == "fanout" {
				w.wg.Add(1)
				go w.count(s)
			}
		}()
	}
	opening.Wait()
	w.mu.Lock()
	defer w.mu.Unlock()
	return Report{Ev: "ready", Opened: w.opened, Failed: w.failed, Err: w.firstErr}
}

// subscribe opens one topic subscription and waits until it is live.
func (w *worker) subscribe(d *net.Dialer) (*stream, error) {
	j := w.job
	if j.Transport == "ws" {
		s, err := openWS(d, j.Host)
		if err != nil {
			return nil, err
		}
		msg, _ := json.Marshal(map[string]string{"type": "topic.subscribe", "topic": j.Topic})
		if err := writeWS(s.conn, 0x1, msg); err != nil {
			s.Close()
			return nil, err
		}
		f, err := s.nextWS(nil, false)
		if err != nil || !bytes.Contains(f, []byte(`"type":"subscribed"`)) {
			s.Close()
			return nil, fmt.Errorf("topic.subscribe: %q %v", f, err)
		}
		return s, nil
	}
	return openSSE(d, j.Host, "/v1/topics/"+j.Topic+"/events")
}

// count counts the events of one subscription while the worker is marked.
// SSE: every event starts with an "id: " line, after the line before it
// (the retry line, a heartbeat comment or the event before, whose blank
// line ends it): no data line can hold "\nid: ", since each starts
// "data: "; WebSocket: every event is a frame.
func (w *worker) count(s *stream) {
	defer w.wg.Done()
	interval := w.job.ReadInterval
	if w.job.Transport == "ws" {
		buf := make([]byte, 0, 64)
		for {
			f, err := s.nextWS(buf, true)
			if err != nil {
				return
			}
			if w.recording.Load() && bytes.HasPrefix(f, []byte(`{"type":"event"`)) {
				w.events.Add(1)
			}
		}
	}
	c := newCounter(eventStart)
	buf := make([]byte, 16<<10)
	for {
		n, err := s.resp.Body.Read(buf)
		before := c.n
		c.feed(buf[:n])
		if w.recording.Load() {
			w.events.Add(c.n - before)
		}
		if err != nil {
			return
		}
		if interval > 0 && n < len(buf) {
			time.Sleep(interval)
		}
	}
}

func (w *worker) mark() {
	w.cpuMark, w.markedAt = cpuSeconds(), time.Now()
	w.events.Store(0)
	w.recording.Store(true)
}

// stop ends the job: with Once generations it first waits for them to
// finish (until the deadline); then it closes every connection and reports.
func (w *worker) stop() Report {
	if w.job.Kind == "gens" && w.job.Once {
		done := make(chan struct{})
		go func() { w.wg.Wait(); close(done) }()
		select {
		case <-done:
		case <-w.ctx.Done():
		}
	}
	// Counting ends here. Once jobs report their CPU even unmarked: since
	// the process started.
	cpu, secs := cpuSeconds()-w.cpuMark, 0.0
	if w.recording.Swap(false) {
		secs = time.Since(w.markedAt).Seconds()
	} else if !w.job.Once {
		cpu = 0
	}
	events := w.events.Load()
	w.cancel()
	w.mu.Lock()
	for c := range w.conns {
		c.Close()
	}
	w.mu.Unlock()
	if w.h2 != nil {
		w.h2.close()
	}
	w.wg.Wait()
	if w.api != nil {
		w.api.CloseIdleConnections()
	}
	w.loopWG.Wait()
	w.deadline.Stop()
	w.mu.Lock()
	defer w.mu.Unlock()
	r := w.hists
	r.Ev, r.Opened, r.Failed, r.Err = "result", w.opened, w.failed, w.firstErr
	r.Events, r.Gens, r.CPU, r.Seconds = events, w.gens.Load(), cpu, secs
	return r
}
