package ws

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/url"
	"path"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluice-dev/sluice"
	"github.com/sluice-dev/sluice/admit"
	"github.com/sluice-dev/sluice/gen"
	"github.com/sluice-dev/sluice/internal/fanout"
	"github.com/sluice-dev/sluice/internal/sockio"
	"github.com/sluice-dev/sluice/wire"
)

// Options configure a Handler. Gate and Runner are required; zero fields of
// the rest take the defaults below.
type Options struct {
	// Gate admits each connection (a key when the server has keys, and a
	// place in the stream limits) and each operation it carries, as it
	// admits the SSE API's requests: give both transports the same one.
	Gate   *admit.Gate
	Runner *gen.Runner

	Heartbeat        time.Duration // ping after this long without sending (DefaultHeartbeat)
	WriteTimeout     time.Duration // cut off a reader that takes no data this long (DefaultWriteTimeout)
	MaxMessageBytes  int64         // largest client message (DefaultMaxMessageBytes)
	SendBuffer       int           // bytes of frames queued per connection (DefaultSendBuffer)
	MaxSubscriptions int           // subscriptions per connection (DefaultMaxSubscriptions)

	// OriginPatterns are the hosts, besides the request's own, that browsers
	// may open a connection from (path.Match patterns, as
	// github.com/coder/websocket's AcceptOptions took them). By default only
	// same-origin pages may, which stops cross-site WebSocket hijacking.
	OriginPatterns []string

	// Stop, when done, drains every connection: topic subscriptions end,
	// new subscriptions are refused, and each connection closes with 1001
	// once its generations have ended. Nil means never.
	Stop context.Context

	Logger *slog.Logger
	// Observer, when set, is told of subscriptions, deliveries and slow
	// readers (for metrics).
	Observer Observer
}

// Defaults for Options: the SSE API's heartbeat and write timeout, and room
// for its largest request body (4 MiB) in a chat.start.
const (
	DefaultHeartbeat        = 15 * time.Second
	DefaultWriteTimeout     = 30 * time.Second
	DefaultMaxMessageBytes  = 4<<20 + 64<<10
	DefaultSendBuffer       = 64 << 10
	DefaultMaxSubscriptions = 64
)

// Handler serves GET /ws. Make one with NewHandler. Wait returns once
// every connection it served has ended.
//
// It keeps no goroutine per connection: one poller goroutine learns which
// connections have bytes to read (read.go), the logs' feeds write events
// to the connections that follow them (feed.go), one heartbeat goroutine
// pings quiet connections, and a connection has a goroutine of its own only
// while it is being read or while its socket is full (send.go). Both start
// with the first connection and end with Shutdown.
type Handler struct {
	opts Options
	log  *slog.Logger

	mu       sync.Mutex
	active   map[*conn]struct{} // connections being served
	waiting  bool               // Wait was called: refuse new connections
	draining bool               // Options.Stop is done
	idle     chan struct{}      // closed when active empties while waiting
	feeds    map[string]*feed   // by log name
	started  bool               // the poller and heartbeat goroutines run
	stopped  bool
	stopBeat chan struct{}
	// stopDrain unregisters drainAll from Options.Stop.
	stopDrain func() bool

	poll *sockio.Poller[*conn] // which connections have bytes to read; nil where that cannot be watched
	fan  fanout.Config         // what the feeds share
	wg   sync.WaitGroup        // every goroutine the handler starts

	conns   atomic.Int64
	subs    atomic.Int64
	cutoffs atomic.Int64
}

// Stats are a Handler's counters.
type Stats struct {
	Connections   int64 `json:"connections"`   // open now
	Subscriptions int64 `json:"subscriptions"` // open now
	SlowCutoffs   int64 `json:"slow_cutoffs"`  // connections cut off for reading too slowly, ever
}

// NewHandler returns a Handler for the given options.
func NewHandler(opts Options) *Handler {
	if opts.Heartbeat <= 0 {
		opts.Heartbeat = DefaultHeartbeat
	}
	if opts.WriteTimeout <= 0 {
		opts.WriteTimeout = DefaultWriteTimeout
	}
	if opts.MaxMessageBytes <= 0 {
		opts.MaxMessageBytes = DefaultMaxMessageBytes
	}
	if opts.SendBuffer <= 0 {
		opts.SendBuffer = DefaultSendBuffer
	}
	if opts.MaxSubscriptions <= 0 {
		opts.MaxSubscriptions = DefaultMaxSubscriptions
	}
	if opts.Stop == nil {
		opts.Stop = context.Background()
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Observer == nil {
		opts.Observer = nopObserver{}
	}
	h := &Handler{opts: opts, log: opts.Logger, active: make(map[*conn]struct{}), feeds: make(map[string]*feed),
		stopBeat: make(chan struct{})}
	// The transport's Observer counts each subscription's events as they
	// are queued to it (conn.deliver), so the feeds count nothing.
	h.fan = fanout.Config{WG: &h.wg, Logger: h.log, Name: "ws"}
	// Registered once, it holds no goroutine until Stop is done.
	h.stopDrain = context.AfterFunc(opts.Stop, h.drainAll)
	return h
}

// Stats returns the handler's counters.
func (h *Handler) Stats() Stats {
	return Stats{Connections: h.conns.Load(), Subscriptions: h.subs.Load(), SlowCutoffs: h.cutoffs.Load()}
}

// Wait refuses new connections and returns once every connection has
// ended. Connections end by themselves once Options.Stop is done and their
// generations have ended; http.Server.Shutdown does not wait for them,
// because they are hijacked.
func (h *Handler) Wait() { _ = h.Shutdown(context.Background()) }

// Shutdown is Wait bounded by ctx: once ctx is done, the connections still
// open are closed at once, whatever their clients do (one that reads
// nothing would otherwise hold its flusher for the write timeout), and
// Shutdown returns ctx's error once they have ended. Then the handler's
// own goroutines end.
func (h *Handler) Shutdown(ctx context.Context) error {
	h.mu.Lock()
	h.waiting = true
	var err error
	if len(h.active) > 0 {
		if h.idle == nil {
			h.idle = make(chan struct{})
		}
		idle := h.idle
		h.mu.Unlock()
		select {
		case <-idle:
		case <-ctx.Done():
			err = ctx.Err()
			h.mu.Lock()
			rest := make([]*conn, 0, len(h.active))
			for c := range h.active {
				rest = append(rest, c)
			}
			h.mu.Unlock()
			for _, c := range rest {
				c.destroy()
			}
			<-idle
		}
		h.mu.Lock()
	}
	stop := h.started && !h.stopped
	h.stopped = true
	h.mu.Unlock()
	h.stopDrain()
	if stop {
		close(h.stopBeat)
		h.poll.Stop()
	}
	h.wg.Wait()
	return err
}

// enter counts c in, unless Shutdown has been called, and starts the
// handler's goroutines with its first connection. The caller must call
// h.wg.Done once it has started c (so that Shutdown, which waits for the
// group, cannot begin to wait meanwhile). It reports whether the server
// drains, for c to drain too.
func (h *Handler) enter(c *conn) (ok, draining bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.waiting {
		return false, false
	}
	if !h.started {
		h.started = true
		h.poll = sockio.NewPoller[*conn](sockio.Readable)
		if h.poll != nil {
			h.wg.Add(1)
			go func() {
				defer h.wg.Done()
				h.poll.Run(h.ready)
			}()
		}
		h.wg.Add(1)
		go h.heartbeats()
	}
	h.wg.Add(1)
	h.active[c] = struct{}{}
	h.conns.Add(1)
	return true, h.draining
}

func (h *Handler) leave(c *conn) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.active[c]; !ok {
		return
	}
	delete(h.active, c)
	h.conns.Add(-1)
	if len(h.active) == 0 && h.idle != nil {
		close(h.idle)
		h.idle = nil
	}
}

// ready starts a read turn for a connection that has bytes to read,
// unless one is under way.
func (h *Handler) ready(c *conn) {
	if !c.reading.CompareAndSwap(false, true) {
		return
	}
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		c.readTurn(true)
	}()
}

// drainAll runs when Options.Stop is done: every connection drains.
func (h *Handler) drainAll() {
	h.mu.Lock()
	h.draining = true
	conns := make([]*conn, 0, len(h.active))
	for c := range h.active {
		conns = append(conns, c)
	}
	h.mu.Unlock()
	for _, c := range conns {
		c.drain()
	}
}

// heartbeats pings connections that have been quiet for a heartbeat, and
// closes those whose ping went unanswered (see conn.heartbeat).
func (h *Handler) heartbeats() {
	defer h.wg.Done()
	t := time.NewTicker(max(h.opts.Heartbeat/4, 10*time.Millisecond))
	defer t.Stop()
	var conns []*conn
	for {
		select {
		case <-h.stopBeat:
			return
		case <-t.C:
		}
		conns = conns[:0]
		h.mu.Lock()
		for c := range h.active {
			conns = append(conns, c)
		}
		h.mu.Unlock()
		now := time.Now().UnixNano()
		for _, c := range conns {
			c.heartbeat(now)
		}
		clear(conns)
	}
}

// feedFor returns the feed of log l, made on first use, and counts one
// more subscription to it; unref gives it back.
func (h *Handler) feedFor(l sluice.Log, field, name string) *feed {
	h.mu.Lock()
	defer h.mu.Unlock()
	f := h.feeds[l.Name()]
	if f == nil {
		f = newFeed(h, l, field, name)
		h.feeds[l.Name()] = f
	}
	f.refs++
	return f
}

func (h *Handler) unref(f *feed) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if f.refs--; f.refs == 0 {
		f.Stop()
		if h.feeds[f.Log().Name()] == f {
			delete(h.feeds, f.Log().Name())
		}
	}
}

// Subprotocol is the WebSocket subprotocol a client may ask for. A
// browser cannot set Authorization on a WebSocket, so it offers its API key
// as a second protocol, KeyProtocolPrefix followed by the key in base64url
// without padding, beside this one, which the server selects: the key then
// travels in a header, as Authorization would, never in the URL (which
// proxies and servers log) and never back in the answer.
const (
	Subprotocol       = "sluice"
	KeyProtocolPrefix = "sluice.key."
)

// keyFromProtocols finds an API key offered in Sec-WebSocket-Protocol.
func keyFromProtocols(values []string) (string, bool) {
	for _, v := range values {
		for p := range strings.SplitSeq(v, ",") {
			enc, ok := strings.CutPrefix(strings.TrimSpace(p), KeyProtocolPrefix)
			if !ok {
				continue
			}
			key, err := base64.RawURLEncoding.DecodeString(enc)
			if err != nil {
				return "", true // a key, badly written: refused as a wrong key
			}
			return string(key), true
		}
	}
	return "", false
}

// ServeHTTP admits the connection (see Options.Gate), upgrades the request
// to a WebSocket and serves it until it closes. A refused connection is
// answered as the SSE API answers a refused request: the status, headers
// and error object that wire gives the error. The API key is taken from
// Authorization, or else from Sec-WebSocket-Protocol (see Subprotocol).
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	auth := r.Header.Get("Authorization")
	if auth == "" {
		if key, ok := keyFromProtocols(r.Header.Values("Sec-WebSocket-Protocol")); ok {
			auth = "Bearer " + key
		}
	}
	caller, err := h.opts.Gate.Identify(auth, r.RemoteAddr, r.Header.Values("X-Forwarded-For"))
	var done func() // gives back the place the connection holds in the stream limits
	if err == nil {
		done, err = h.opts.Gate.Connect(caller)
	}
	if err == nil && (h.opts.Stop.Err() != nil || h.refusing()) {
		done()
		err = errDraining
	}
	if err == nil {
		if err = checkHandshake(r); err != nil {
			done()
			if r.Header.Get("Sec-WebSocket-Version") != "" && r.Header.Get("Sec-WebSocket-Version") != "13" {
				w.Header().Set("Sec-WebSocket-Version", "13") // RFC 6455 4.2.2
			}
		}
	}
	if err == nil && !h.originAllowed(r) {
		done()
		err = &sluice.Error{Code: sluice.EFORBIDDEN, Kind: "origin_not_allowed",
			Message: "Pages from " + truncate(r.Header.Get("Origin")) + " may not open WebSocket connections to this server."}
	}
	if err != nil {
		h.refuse(w, r, err)
		return
	}
	answerHandshake(w, r)
	nc, brw, err := http.NewResponseController(w).Hijack() // net/http writes the 101 first
	if err != nil {
		done()
		h.log.Debug("ws: the connection could not be taken over", "remote", r.RemoteAddr, "err", err)
		return
	}
	// Nothing of r or of net/http's buffers goes on with the connection, so
	// that they are freed: only bytes the client sent after its handshake.
	c := newConn(h, nc, caller, r.URL.Path, sluice.RequestID(r.Context()), done)
	if n := brw.Reader.Buffered(); n > 0 {
		b, _ := brw.Reader.Peek(n)
		c.rd.leftover = bytes.Clone(b)
	}
	if tc, ok := nc.(*net.TCPConn); ok {
		// The kernel's buffer holds SendBuffer, as the hub's does: many
		// seconds of tokens, while bounding what a client that stops
		// reading pins (left to itself, Linux lets it grow to megabytes).
		_ = tc.SetWriteBuffer(h.opts.SendBuffer)
	}
	ok, draining := h.enter(c)
	if !ok { // Shutdown began during the handshake
		done()
		_ = nc.Close()
		return
	}
	defer h.wg.Done()
	early := c.rd.leftover != nil // read before the poller may start a turn
	if h.poll.Watch(c, &c.nc, !early) {
		if early {
			h.ready(c)
		}
	} else {
		h.wg.Add(1)
		go func() {
			defer h.wg.Done()
			c.readTurn(false)
		}()
	}
	if draining {
		c.drain()
	}
}

// originAllowed reports whether a browser page may open the connection: a
// request with no Origin (not from a browser), from the server's own host,
// or from a host that matches Options.OriginPatterns (path.Match patterns;
// one with "://" is matched against scheme://host), which stops cross-site
// WebSocket hijacking.
func (h *Handler) originAllowed(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" {
		return false
	}
	if strings.EqualFold(u.Host, r.Host) {
		return true
	}
	for _, p := range h.opts.OriginPatterns {
		target := u.Host
		if strings.Contains(p, "://") {
			target = u.Scheme + "://" + u.Host
		}
		if ok, _ := path.Match(strings.ToLower(p), strings.ToLower(target)); ok {
			return true
		}
	}
	return false
}

// refusing reports whether Shutdown has been called.
func (h *Handler) refusing() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.waiting
}

// refuse answers a request for a connection that may not be opened.
func (h *Handler) refuse(w http.ResponseWriter, r *http.Request, err error) {
	h.logError(r.Method, r.URL.Path, sluice.RequestID(r.Context()), err)
	if after := wire.RetryAfter(err); after > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int(math.Max(1, math.Ceil(after.Seconds())))))
	}
	if sluice.ErrorCode(err) == sluice.EUNAUTHORIZED {
		w.Header().Set("WWW-Authenticate", `Bearer realm="sluice"`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(wire.Status(err))
	_ = json.NewEncoder(w).Encode(wire.Error(err))
}

// logError logs an error answered to a client with the fields and at the
// level that the SSE API logs its errors with (api's writeError), so that
// operators read both transports alike: method is the HTTP method of a
// refused upgrade, or the type of a refused message; requestID is the
// upgrade request's, which every message of the connection shares.
func (h *Handler) logError(method, path, requestID string, err error) {
	status := wire.Status(err)
	if status >= 500 {
		h.log.Error("request failed", "method", method, "path", path, "status", status, "request_id", requestID, "err", err)
	} else {
		h.log.Debug("request refused", "method", method, "path", path, "status", status, "request_id", requestID, "err", err)
	}
}

var errDraining = &sluice.Error{Code: sluice.EUNAVAILABLE, Kind: "server_shutting_down",
	Message: "The server is shutting down; reconnect."}
