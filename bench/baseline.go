package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"runtime"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Baseline is the yardstick the report measures Sluice against: the plain
// net/http SSE server of the articles Sluice grew from. Each subscriber is
// a handler goroutine with a channel; a publish sends to every channel, and
// each handler writes and flushes every event on its own. It keeps nothing
// for replay and drops an event for a subscriber whose channel is full.
// It serves the routes the bench uses: GET /v1/topics/{name}/events (any
// GET: one topic for all names), POST /v1/topics/{name}/events, POST
// /v1/chat/completions and GET /debug/stats.
type Baseline struct {
	// TTFT and TPS pace the chat completions it streams: a goroutine per
	// request, a timer per token, a write and a flush per token.
	TTFT time.Duration
	TPS  float64
	// Proxy, when set, answers chat completions instead: a bare reverse
	// proxy to another server, the yardstick for what Sluice adds as one.
	Proxy http.Handler

	mu      sync.RWMutex
	subs    map[chan []byte]struct{}
	nextID  int64
	dropped int64
	streams int64
}

// NewBaseline returns an empty baseline server.
func NewBaseline() *Baseline { return &Baseline{subs: make(map[chan []byte]struct{})} }

func (b *Baseline) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.Method == "GET" && r.URL.Path == "/debug/stats":
		b.stats(w, r)
	case r.Method == "POST" && r.URL.Path == "/v1/chat/completions" && b.Proxy != nil:
		b.Proxy.ServeHTTP(w, r)
	case r.Method == "POST" && r.URL.Path == "/v1/chat/completions":
		b.chat(w, r)
	case r.Method == "GET":
		b.subscribe(w, r)
	case r.Method == "POST":
		b.publish(w, r)
	default:
		http.NotFound(w, r)
	}
}

func (b *Baseline) subscribe(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("Connection", "keep-alive")
	ch := make(chan []byte, 64)
	b.mu.Lock()
	b.subs[ch] = struct{}{}
	b.streams++
	b.mu.Unlock()
	defer func() {
		b.mu.Lock()
		delete(b.subs, ch)
		b.streams--
		b.mu.Unlock()
	}()
	flusher := w.(http.Flusher)
	fmt.Fprint(w, ": connected\n\n")
	flusher.Flush()
	for {
		select {
		case msg := <-ch:
			if _, err := w.Write(msg); err != nil {
				return
			}
			flusher.Flush()
		case <-r.Context().Done():
			return
		}
	}
}

// chat streams a paced answer (answerTokens long) in chat.completion.chunk
// events ending in [DONE]: an OpenAI-compatible model, which Sluice can
// serve as an upstream. Its first token is stamped (modelStamp) with when it
// had the request and when it sent the token, so that a client can take the
// model's own time to first token out of what it measures.
func (b *Baseline) chat(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	received := time.Now().UnixNano()
	n := answerTokens(body)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	flusher := w.(http.Flusher)
	const chunk = `{"id":"chatcmpl-baseline","object":"chat.completion.chunk","model":"demo","choices":[{"index":0,"delta":{"content":" token"},"finish_reason":null}]}`
	fmt.Fprint(w, roleEvent)
	flusher.Flush()
	p := newPace(b.TTFT, b.TPS)
	defer p.stop()
	for i := range n {
		if !p.wait(i, r.Context().Done()) {
			return
		}
		var err error
		if i == 0 {
			first := fmt.Sprintf(`"content":"%s%d/%d"`, modelStamp, received, time.Now().UnixNano())
			_, err = fmt.Fprintf(w, "id: 1\ndata: %s\n\n", strings.Replace(chunk, `"content":" token"`, first, 1))
		} else {
			_, err = fmt.Fprintf(w, "id: %d\ndata: %s\n\n", i+1, chunk)
		}
		if err != nil {
			return
		}
		flusher.Flush()
	}
	fmt.Fprintf(w, "id: %d\ndata: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\nid: %d\ndata: [DONE]\n\n", n+1, n+2)
	flusher.Flush()
}

// roleEvent is the first event of the baseline's and the raw server's
// answers: the role chunk, sent before any thinking.
const roleEvent = "id: 0\ndata: " + `{"choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}` + "\n\n"

// answerTokens is how many tokens the baseline and the raw server answer a
// request body with: 2,000 when it mentions "long", 20 for "short", else 250.
func answerTokens(body []byte) int {
	switch {
	case bytes.Contains(body, []byte("long")):
		return 2000
	case bytes.Contains(body, []byte("short")):
		return 20
	}
	return 250
}

// pace times an answer's tokens like the demo model: token i is due at
// start + ttft + i/tps, deadlines from the start rather than sleeps added
// up, with one timer.
type pace struct {
	start          time.Time
	ttft, interval time.Duration
	t              *time.Timer
}

func newPace(ttft time.Duration, tps float64) *pace {
	p := &pace{start: time.Now(), ttft: ttft, t: time.NewTimer(time.Hour)}
	if tps > 0 {
		p.interval = time.Duration(float64(time.Second) / tps)
	}
	return p
}

// wait returns true once token i is due, or false if done is closed first
// (a nil done is never closed).
func (p *pace) wait(i int, done <-chan struct{}) bool {
	d := time.Until(p.start.Add(p.ttft + time.Duration(i)*p.interval))
	if d <= 0 {
		return true
	}
	p.t.Reset(d)
	select {
	case <-p.t.C:
		return true
	case <-done:
		return false
	}
}

func (p *pace) stop() { p.t.Stop() }

func (b *Baseline) publish(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Event string          `json:"event"`
		Data  json.RawMessage `json:"data"`
	}
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&body); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var s string
	if json.Unmarshal(body.Data, &s) != nil {
		s = string(body.Data)
	}
	b.mu.Lock()
	b.nextID++
	id := b.nextID
	msg := fmt.Appendf(nil, "id: %d\nevent: %s\ndata: %s\n\n", id, body.Event, s)
	for ch := range b.subs {
		select {
		case ch <- msg:
		default:
			b.dropped++
		}
	}
	b.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusCreated)
	fmt.Fprintf(w, `{"id":"%d"}`+"\n", id)
}

func (b *Baseline) stats(w http.ResponseWriter, r *http.Request) {
	if r.URL.Query().Get("gc") == "1" {
		runtime.GC()
	}
	b.mu.RLock()
	streams := b.streams
	b.mu.RUnlock()
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(selfStats(streams))
}

// selfStats is this process's figures for GET /debug/stats, with streams
// open.
func selfStats(streams int64) ServerStats {
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}, {Name: "/memory/classes/total:bytes"}}
	metrics.Read(s)
	return ServerStats{Streams: streams, Goroutines: runtime.NumGoroutine(),
		HeapBytes: s[0].Value.Uint64(), GoSysBytes: s[1].Value.Uint64(), RSSBytes: selfRSS()}
}

// selfRSS reads this process's resident set size from /proc.
func selfRSS() uint64 {
	st, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range bytes.Split(st, []byte("\n")) {
		if v, ok := bytes.CutPrefix(line, []byte("VmRSS:")); ok {
			f := bytes.Fields(v)
			if len(f) > 0 {
				kb, _ := strconv.ParseUint(string(f[0]), 10, 64)
				return kb << 10
			}
		}
	}
	return 0
}

// NewProxy returns the bare reverse proxy to target (http://host:port) that
// a baseline serves with --proxy: the standard library's, flushing every
// write at once as a streaming proxy must, keeping as many connections to
// target as Sluice does.
func NewProxy(target string) (*Proxy, error) {
	u, err := url.Parse(target)
	if err != nil || u.Scheme != "http" || u.Host == "" {
		return nil, fmt.Errorf("proxy target %q: want http://host:port", target)
	}
	t := &http.Transport{MaxIdleConns: 1024, MaxIdleConnsPerHost: 1024, IdleConnTimeout: 90 * time.Second}
	return &Proxy{Transport: t, rp: &httputil.ReverseProxy{
		Rewrite:       func(pr *httputil.ProxyRequest) { pr.SetURL(u) },
		FlushInterval: -1,
		Transport:     t,
	}}, nil
}

// Proxy is NewProxy's reverse proxy. It reads the request body whole before
// passing the request on: streamed through, the body is closed by net/http
// as soon as the answer's head is written back, and the Transport's last
// read of it then fails and cuts the connection to the model, and with it
// the answer (golang/go#40747; it cut 2 answers in 300 here).
type Proxy struct {
	Transport *http.Transport
	rp        *httputil.ReverseProxy
}

func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	r.Body, r.ContentLength = io.NopCloser(bytes.NewReader(body)), int64(len(body))
	p.rp.ServeHTTP(w, r)
}

// BaselineOptions say what `sluice bench-baseline` serves.
type BaselineOptions struct {
	TTFT  time.Duration // the pace of its chat completions
	TPS   float64
	Proxy string // http://host:port: proxy chat completions there instead
	Raw   bool   // serve paced streams with no HTTP library at all: the floor (raw.go)
}

// ServeBaseline runs the baseline server on addr (a loopback address) until
// ctx is done.
func ServeBaseline(ctx context.Context, addr string, o BaselineOptions) error {
	if err := CheckLoopback("http://" + addr); err != nil {
		return err
	}
	RaiseFileLimit()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	if o.Raw {
		return serveRaw(ctx, ln, o.TTFT, o.TPS)
	}
	b := NewBaseline()
	b.TTFT, b.TPS = o.TTFT, o.TPS
	if o.Proxy != "" {
		if b.Proxy, err = NewProxy(o.Proxy); err != nil {
			ln.Close()
			return err
		}
	}
	hs := &http.Server{Handler: b, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		hs.Close()
	}()
	if err := hs.Serve(ln); err != http.ErrServerClosed {
		return err
	}
	return nil
}
