package ws

import (
	"context"
	"encoding/json"
	"log/slog"
	"math"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/sluice-dev/sluice"
	"github.com/sluice-dev/sluice/admit"
	"github.com/sluice-dev/sluice/gen"
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
	// may open a connection from (see websocket.AcceptOptions). By default
	// only same-origin pages may, which stops cross-site WebSocket hijacking.
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
type Handler struct {
	opts Options
	log  *slog.Logger

	mu      sync.Mutex
	active  map[*conn]struct{} // connections being served
	waiting bool               // Wait was called: refuse new connections
	idle    chan struct{}      // closed when active empties while waiting

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
	return &Handler{opts: opts, log: opts.Logger, active: make(map[*conn]struct{})}
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
// nothing would otherwise hold its writer for the write timeout), and
// Shutdown returns ctx's error once they have ended.
func (h *Handler) Shutdown(ctx context.Context) error {
	h.mu.Lock()
	h.waiting = true
	if len(h.active) == 0 {
		h.mu.Unlock()
		return nil
	}
	if h.idle == nil {
		h.idle = make(chan struct{})
	}
	idle := h.idle
	h.mu.Unlock()
	select {
	case <-idle:
		return nil
	case <-ctx.Done():
	}
	h.mu.Lock()
	for c := range h.active {
		_ = c.ws.CloseNow() // its reads and writes fail, and serve returns
	}
	h.mu.Unlock()
	<-idle
	return ctx.Err()
}

// refusing reports whether Shutdown has been called.
func (h *Handler) refusing() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.waiting
}

// enter counts c in, unless Shutdown has been called.
func (h *Handler) enter(c *conn) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.waiting {
		return false
	}
	h.active[c] = struct{}{}
	return true
}

func (h *Handler) leave(c *conn) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.active, c)
	if len(h.active) == 0 && h.idle != nil {
		close(h.idle)
		h.idle = nil
	}
}

// ServeHTTP admits the connection (see Options.Gate), upgrades the request
// to a WebSocket and serves it until it closes. A refused connection is
// answered as the SSE API answers a refused request: the status, headers
// and error object that wire gives the error.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	caller, err := h.opts.Gate.Identify(r.Header.Get("Authorization"), r.RemoteAddr, r.Header.Values("X-Forwarded-For"))
	var done func() // gives back the place the connection holds in the stream limits
	if err == nil {
		done, err = h.opts.Gate.Connect(caller)
	}
	if err == nil && (h.opts.Stop.Err() != nil || h.refusing()) {
		done()
		err = errDraining
	}
	if err != nil {
		h.refuse(w, r, err)
		return
	}
	wc, err := websocket.Accept(w, r, &websocket.AcceptOptions{
		OriginPatterns: h.opts.OriginPatterns,
		// Compression would cost each connection a flate state of tens of
		// kilobytes and every event a compression pass; chunks are small.
		CompressionMode: websocket.CompressionDisabled,
	})
	if err != nil {
		done()
		h.log.Debug("ws: upgrade refused", "remote", r.RemoteAddr, "err", err)
		return // Accept has answered
	}
	wc.SetReadLimit(h.opts.MaxMessageBytes)
	// The connection is served by a goroutine of its own, and the handler
	// returns: net/http then lets go of the request and response it keeps
	// for a handler (a few kilobytes per connection), and the deep stack of
	// the handler's goroutine goes with them.
	// Nothing of r goes into the goroutine, so that the request is freed.
	c := newConn(h, wc, caller, r.URL.Path, sluice.RequestID(r.Context()))
	if !h.enter(c) { // Shutdown began during the handshake
		done()
		_ = wc.CloseNow()
		return
	}
	h.conns.Add(1)
	go func() {
		defer done()
		defer h.leave(c)
		defer h.conns.Add(-1)
		c.serve()
	}()
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
