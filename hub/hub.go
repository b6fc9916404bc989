// Package hub delivers logs to many Server-Sent Events connections without
// a goroutine per connection. It takes over (hijacks) each connection once
// its response headers are decided and keeps only a cursor for it. The
// delivering itself is the fan-out core the WebSocket transport shares
// (see internal/fanout for how and why it is built that way): each batch
// of new events is read and encoded into SSE once, and the same bytes are
// written to every connection that is up to date, by the appending
// goroutine or by the log's pump, without waiting on any socket
// (internal/sockio). What the hub adds is the connection: a hijacked HTTP
// response, its heartbeats, its end (a last event, a drain comment), and
// its catching up in a goroutine of its own, reading the log itself, when
// it is behind or too slow to take a write at once; it then rejoins. The
// log is the buffer: a slow connection costs at most one pending batch.
//
// In the flow request → model → log → reader → transport, the hub is the
// reader for SSE; it imports the root package and the sse encoder only
// (and the internal fan-out core).
package hub

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluice-dev/sluice"
	"github.com/sluice-dev/sluice/internal/fanout"
	"github.com/sluice-dev/sluice/internal/sockio"
)

// Options configure a Hub. Zero fields take the defaults.
type Options struct {
	Heartbeat    time.Duration // a ": ping" comment after this long without a write; 15s
	Retry        time.Duration // the reconnect delay sent first (SSE retry:); 3s
	WriteTimeout time.Duration // a connection that takes no bytes for this long is dropped; 30s
	// SendBuffer is the kernel's send buffer for each connection; 64 KiB.
	// Token streams are a few KB a second, so this holds many seconds of
	// them, while bounding what a client that stops reading can pin in the
	// kernel (left to itself, Linux lets it grow to megabytes).
	SendBuffer int
	// MaxLag is how many events a connection that could not take a write
	// at once may be sent while it catches up; one that has not caught up
	// by then gets a last "sluice.resume" event and is closed, and resumes
	// with Last-Event-ID. 4096 when zero.
	MaxLag int
	// ErrorData makes the data of the last event of a connection whose
	// log cannot be read (its store is unreachable, or the log is gone)
	// from why: the API gives an OpenAI-style error object, which is how
	// clients read an error in a stream. The event has no ID, so that the
	// client resumes after the last event it got. nil: a fixed object.
	ErrorData func(error) []byte
	Logger    *slog.Logger
	// Observer, when set, is told of connections, deliveries and slow
	// readers (for metrics).
	Observer Observer
}

// Hub owns the connections handed to it with Attach. It is safe for
// concurrent use. Drain ends topic subscriptions; Shutdown waits for every
// connection to end.
type Hub struct {
	opts Options
	log  *slog.Logger
	obs  Observer

	mu       sync.Mutex
	feeds    map[string]*feed // by log name
	subs     map[*sub]struct{}
	draining bool
	idle     chan struct{} // closed and replaced when subs empties

	fan  fanout.Config        // what the feeds share
	wg   sync.WaitGroup       // pumps, catch-up goroutines, the heartbeat and hang-up loops
	stop chan struct{}        // closed by Shutdown: stops the heartbeat loop
	hang *sockio.Poller[*sub] // finds clients that hang up; nil where that cannot be watched
}

// New returns a running hub. Shutdown stops it.
func New(opts Options) *Hub {
	if opts.Heartbeat <= 0 {
		opts.Heartbeat = 15 * time.Second
	}
	if opts.Retry <= 0 {
		opts.Retry = 3 * time.Second
	}
	if opts.WriteTimeout <= 0 {
		opts.WriteTimeout = 30 * time.Second
	}
	if opts.SendBuffer <= 0 {
		opts.SendBuffer = 64 << 10
	}
	if opts.MaxLag <= 0 {
		opts.MaxLag = 4096
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.ErrorData == nil {
		opts.ErrorData = func(error) []byte {
			return []byte(`{"error":{"message":"The stream cannot be read now; reconnect shortly.","type":"server_error","code":"unavailable"}}`)
		}
	}
	if opts.Observer == nil {
		opts.Observer = nopObserver{}
	}
	h := &Hub{opts: opts, log: opts.Logger, obs: opts.Observer, feeds: make(map[string]*feed), subs: make(map[*sub]struct{}),
		idle: make(chan struct{}), stop: make(chan struct{})}
	h.fan = fanout.Config{WG: &h.wg, Logger: h.log, Name: "hub", Counter: h.obs}
	h.wg.Add(1)
	go h.heartbeats()
	// Every connection is watched for its client hanging up, so that one
	// that leaves is found at once rather than at its next write.
	if h.hang = sockio.NewPoller[*sub](sockio.HangUp); h.hang != nil {
		h.wg.Add(1)
		go func() {
			defer h.wg.Done()
			h.hang.Run(func(s *sub) { s.gone() })
		}()
	}
	return h
}

// ErrNotHijackable is returned by Attach when the response cannot be taken
// over (HTTP/2, or a ResponseWriter that is not a connection); the caller
// then serves the stream itself.
var ErrNotHijackable = errors.New("hub: the connection cannot be taken over")

// AttachOptions say how one connection ends, besides the end of its log.
type AttachOptions struct {
	// Topic marks a subscription to a topic, which Drain ends (a topic
	// never ends by itself).
	Topic bool
	// Drain marks a generation's reader that Drain ends too, telling it
	// to reconnect: another node can serve it (its log is in a store
	// that the nodes share).
	Drain bool
	// OnGone runs, once, when the client goes away before the log ended.
	OnGone func()
	// OnClose runs, once, when the connection is closed for any reason
	// (after OnGone, if that runs).
	OnClose func()
	// Written, when set, is added the bytes written to the connection,
	// the response head included, as they are written (for access logs).
	Written *atomic.Int64
}

// Attach takes over the connection of w, writes the response head (status
// 200 and w's headers) and the retry line, and streams l to it from just
// after the event ID after. It returns at once; the hub owns the connection
// from then on, and the handler must not touch w again. The caller should
// have checked after (see sluice.Log.Read). On ErrNotHijackable nothing was
// written.
func (h *Hub) Attach(w http.ResponseWriter, l sluice.Log, after string, opts AttachOptions) error {
	h.mu.Lock()
	if h.draining && (opts.Topic || opts.Drain) {
		h.mu.Unlock()
		return sluice.Errorf(sluice.EUNAVAILABLE, "The server is shutting down.")
	}
	h.mu.Unlock()

	conn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return ErrNotHijackable
	}
	// Bytes the client sent after its request (pipelining) are never read:
	// a stream is the last response on its connection.
	_ = brw
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.SetWriteBuffer(h.opts.SendBuffer)
	}
	head := responseHead(w.Header(), Jitter(h.opts.Retry))
	s := &sub{hub: h, topic: opts.Topic, drain: opts.Topic || opts.Drain, onGone: opts.OnGone, onClose: opts.OnClose, written: opts.Written, cursor: after}
	s.conn.Init(conn)
	s.catching.Store(true) // by this goroutine, below
	s.touch()
	if err := s.writeBlocking(head); err != nil {
		s.finish(nil, true) // the client left already; nothing to report to it
		return nil
	}

	h.mu.Lock()
	if h.draining && (opts.Topic || opts.Drain) {
		h.mu.Unlock()
		s.closeWith(h.drainFrame())
		return nil
	}
	f := h.feeds[l.Name()]
	if f == nil {
		f = newFeed(h, l)
		h.feeds[l.Name()] = f
	}
	f.refs++
	s.feed = f
	h.subs[s] = struct{}{}
	h.mu.Unlock()
	h.obs.Opened(s.topic)
	h.hang.Watch(s, &s.conn, true)

	// The handler's goroutine brings the connection up to date, then leaves
	// it to the feed.
	s.catchUp()
	return nil
}

// Jitter spreads a reconnect delay by up to half again, so that clients
// dropped together do not all come back at once. The API spreads its
// Retry-After answers with it too.
func Jitter(d time.Duration) time.Duration {
	return d + time.Duration(rand.Int64N(int64(d)/2+1))
}

// DrainMessage is the comment that ends a stream at shutdown, before the
// client reconnects (to another node).
const DrainMessage = "server shutting down; reconnect"

// Len reports how many connections the hub holds.
func (h *Hub) Len() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.subs)
}

// Drain tells every topic subscriber, and every stream attached with
// AttachOptions.Drain, to reconnect elsewhere and closes it; new ones are
// refused. The other streams go on until their logs end.
func (h *Hub) Drain() {
	h.mu.Lock()
	h.draining = true
	var topics []*sub
	for s := range h.subs {
		if s.drain {
			topics = append(topics, s)
		}
	}
	h.mu.Unlock()
	for _, s := range topics {
		s.closeWith(h.drainFrame())
	}
}

// Shutdown waits until every connection has ended or ctx is done, then
// closes the rest, stops the hub and waits for its goroutines.
func (h *Hub) Shutdown(ctx context.Context) error {
	var err error
	for {
		h.mu.Lock()
		n, idle := len(h.subs), h.idle
		h.mu.Unlock()
		if n == 0 {
			break
		}
		select {
		case <-idle:
			continue
		case <-ctx.Done():
			err = ctx.Err()
		}
		break
	}
	h.mu.Lock()
	rest := make([]*sub, 0, len(h.subs))
	for s := range h.subs {
		rest = append(rest, s)
	}
	h.mu.Unlock()
	for _, s := range rest {
		s.closeWith(h.drainFrame())
	}
	close(h.stop)
	h.hang.Stop()
	h.wg.Wait()
	return err
}

// remove forgets s, and its feed when s was the feed's last connection.
func (h *Hub) remove(s *sub) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.subs[s]; !ok {
		return
	}
	delete(h.subs, s)
	h.obs.Closed(s.topic)
	if len(h.subs) == 0 {
		close(h.idle)
		h.idle = make(chan struct{})
	}
	f := s.feed
	f.refs--
	if f.refs == 0 {
		f.Stop()
		if h.feeds[f.Log().Name()] == f {
			delete(h.feeds, f.Log().Name())
		}
	}
}

// heartbeats pings connections that have been quiet for a heartbeat, which
// also finds connections whose client has gone. (ws's loop looks alike but
// is its own: a WebSocket ping is answered, and an unanswered one closes
// the connection; an SSE comment is not.)
func (h *Hub) heartbeats() {
	defer h.wg.Done()
	period := max(h.opts.Heartbeat/4, 10*time.Millisecond)
	t := time.NewTicker(period)
	defer t.Stop()
	var quiet []*sub
	for {
		select {
		case <-h.stop:
			return
		case <-t.C:
		}
		due := time.Now().Add(-h.opts.Heartbeat).UnixNano()
		quiet = quiet[:0]
		h.mu.Lock()
		for s := range h.subs {
			if s.lastWrite.Load() <= due {
				quiet = append(quiet, s)
			}
		}
		h.mu.Unlock()
		for _, s := range quiet {
			s.ping()
		}
	}
}
