// Package api is Sluice's HTTP surface: the OpenAI-compatible chat API, the
// stream and topic routes and the seeds' broadcast demo. Handlers have each
// request admitted by the admit.Gate that every transport shares (keys,
// limits, models, ownership, topic rules), hand chats to the generation
// runner, and render logs onto the wire as Server-Sent Events. Every error
// leaves with the status that wire's one table gives its code.
package api

import (
	"context"
	"log/slog"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/sluice-dev/sluice"
	"github.com/sluice-dev/sluice/admit"
	"github.com/sluice-dev/sluice/convo"
	"github.com/sluice-dev/sluice/gen"
	"github.com/sluice-dev/sluice/hub"
	"github.com/sluice-dev/sluice/wire"
)

// Config holds the knobs of the HTTP layer. Zero fields take the defaults
// below.
type Config struct {
	Heartbeat    time.Duration // a ": ping" comment when nothing was sent for this long
	Retry        time.Duration // the reconnect delay suggested to clients (SSE retry:)
	WriteTimeout time.Duration // a write that takes longer drops the reader
	MaxBodyBytes int64         // request bodies over this are refused with 413

	// CORSOrigins may call the API from a browser ("*": any origin); none
	// means same-origin only.
	CORSOrigins []string

	// DrainReaders makes Drain (shutdown) also end, at once, the streams
	// of generations that readers attached to with GET /v1/streams/{id},
	// telling them to reconnect: set it when other nodes share the store
	// and can serve them, so that a node that is going away hands its
	// readers over while its generations finish. A chat completion's own
	// response stays with its generation either way: its client (an
	// OpenAI SDK) may have no way to resume.
	DrainReaders bool

	// AccessLogLevel is the level of the access log's lines, one per
	// request (info by default); NoAccessLog turns them off.
	AccessLogLevel slog.Level
	NoAccessLog    bool

	// Observers are told what the HTTP layer does, for metrics; nil ones
	// are not.
	Observers Observers

	// Conversations keeps conversations (the /v1/conversations routes);
	// nil: the server keeps none, and those routes answer 404 saying so.
	Conversations *convo.Service
}

// Observers watch the HTTP layer for metrics.
type Observers struct {
	Hub      hub.Observer    // SSE streams the hub serves (HTTP/1.1)
	Fallback StreamObserver  // SSE streams served in their handlers (HTTP/2)
	Requests RequestObserver // every request answered
}

// StreamObserver is told of the SSE streams served in handlers, as
// hub.Observer is of the hub's; its methods must be safe for concurrent
// use and must neither block, lock nor allocate.
type StreamObserver interface {
	Opened(topic bool)
	Closed(topic bool)
	Delivered(n int)
	CutSlow(reason string)
}

type nopStreams struct{}

func (nopStreams) Opened(bool)    {}
func (nopStreams) Closed(bool)    {}
func (nopStreams) Delivered(int)  {}
func (nopStreams) CutSlow(string) {}

// Defaults for Config.
const (
	DefaultHeartbeat    = 15 * time.Second
	DefaultRetry        = 3 * time.Second
	DefaultWriteTimeout = 30 * time.Second
	DefaultMaxBodyBytes = 4 << 20
	DefaultTopic        = "default"
)

// Server serves the HTTP API. Make one with New; it is an http.Handler.
type Server struct {
	cfg    Config
	store  sluice.Store
	runner *gen.Runner
	gate   *admit.Gate
	log    *slog.Logger
	mux    *http.ServeMux

	drainCtx context.Context // done when the server starts to shut down
	drain    context.CancelFunc
	hub      *hub.Hub
	streams  atomic.Int64 // SSE responses served outside the hub
	ws       atomic.Pointer[func() int64]
	fallback StreamObserver
	requests RequestObserver
	ready    atomic.Pointer[func(context.Context) error]
}

// New returns a Server that admits requests with gate (shared with the
// other transports), runs generations with runner and reports what store
// retains on /debug/stats.
func New(cfg Config, store sluice.Store, runner *gen.Runner, gate *admit.Gate, logger *slog.Logger) *Server {
	if cfg.Heartbeat <= 0 {
		cfg.Heartbeat = DefaultHeartbeat
	}
	if cfg.Retry <= 0 {
		cfg.Retry = DefaultRetry
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = DefaultWriteTimeout
	}
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if logger == nil {
		logger = slog.Default()
	}
	s := &Server{cfg: cfg, store: store, runner: runner, gate: gate, log: logger, mux: http.NewServeMux(),
		fallback: cfg.Observers.Fallback, requests: cfg.Observers.Requests}
	if s.fallback == nil {
		s.fallback = nopStreams{}
	}
	if s.requests == nil {
		s.requests = nopRequests{}
	}
	s.drainCtx, s.drain = context.WithCancel(context.Background())
	s.hub = hub.New(hub.Options{Heartbeat: cfg.Heartbeat, Retry: cfg.Retry, WriteTimeout: cfg.WriteTimeout, Logger: logger,
		ErrorData: wire.ErrorJSON, Observer: cfg.Observers.Hub})
	s.routes()
	return s
}

func (s *Server) routes() {
	s.mux.HandleFunc("POST /v1/chat/completions", s.handleChat)
	s.mux.HandleFunc("GET /v1/models", s.handleModels)
	s.mux.HandleFunc("GET /v1/models/{model...}", s.handleModel)
	s.mux.HandleFunc("GET /v1/streams/{id}", s.handleAttach)
	s.mux.HandleFunc("POST /v1/streams/{id}/cancel", s.handleCancel)
	s.mux.HandleFunc("GET /v1/topics/{name}/events", s.handleSubscribe)
	s.mux.HandleFunc("POST /v1/topics/{name}/events", s.handlePublish)
	s.mux.HandleFunc("GET /events", s.handleSubscribe)
	s.mux.HandleFunc("POST /send-message", s.handleSendMessage)
	s.mux.HandleFunc("GET /healthz", s.handleHealth)
	s.mux.HandleFunc("GET /readyz", s.handleReady)
	s.mux.HandleFunc("GET /debug/stats", s.handleStats)
	s.conversationRoutes()
}

// Handle adds a route open to all, for parts wired in by cmd: the UI, and
// the WebSocket endpoint, which admits its connections and what they carry
// itself (with the same admit.Gate).
func (s *Server) Handle(pattern string, h http.Handler) { s.mux.Handle(pattern, h) }

// HandleAPI adds a route that, like the API's own, needs an API key when
// the server has keys and counts against the caller's rate limit. The
// handler finds the key's name with Caller.
func (s *Server) HandleAPI(pattern string, h http.Handler) {
	s.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		p, ok := s.enter(w, r)
		if !ok {
			return
		}
		h.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), callerKey{}, p.Caller().Key)))
	})
}

type callerKey struct{}

// Caller returns the name of the API key that a request routed by
// HandleAPI presented ("" when the server has no keys).
func Caller(ctx context.Context) string {
	who, _ := ctx.Value(callerKey{}).(string)
	return who
}

// CountWebSockets makes /debug/stats count the connections that f counts
// (those of the WebSocket endpoint) among its streams. cmd wires it, so
// that api does not depend on the WebSocket transport.
func (s *Server) CountWebSockets(f func() int64) { s.ws.Store(&f) }

// ServeHTTP dispatches to the routes; unknown routes get an OpenAI-style
// 404, and a known route asked with the wrong method a 405 with Allow.
// Every request gets a request ID (X-Request-ID, echoed; see
// sluice.RequestID) and one access log line once answered: a stream the hub
// took over is logged when it ends.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	id := requestID(r.Header.Get(HeaderRequestID))
	w.Header().Set(HeaderRequestID, id)
	a := &access{ResponseWriter: w, id: id, start: time.Now(), method: r.Method, path: r.URL.Path, addr: r.RemoteAddr}
	a.refs.Store(1)
	r = r.WithContext(context.WithValue(sluice.WithRequestID(r.Context(), id), accessKey{}, a))
	defer s.done(a)
	s.serve(a, r)
}

func (s *Server) serve(w *access, r *http.Request) {
	setSecurityHeaders(w.Header())
	if s.cors(w, r) {
		return
	}
	// Handler only looks the route up; ServeHTTP also fills PathValue.
	_, pattern := s.mux.Handler(r)
	w.route = pattern
	if pattern == "" {
		if allow := s.allowedMethods(r); len(allow) > 0 {
			writeMethodError(w, r, s.log, allow)
			return
		}
		writeError(w, r, s.log, routeError(r))
		return
	}
	s.mux.ServeHTTP(w, r)
}

// Drain tells every open topic subscription to end, for shutdown, and
// refuses new ones; with Config.DrainReaders, the readers of generations
// that attached with GET /v1/streams/{id} too. Other generation readers
// end by themselves once their generation has ended.
func (s *Server) Drain() {
	s.drain()
	s.hub.Drain()
}

// Shutdown waits for every stream the server handed over to end (call it
// after the generations have been stopped), closing what is left when ctx
// is done. Streams still in handlers are the http.Server's to wait for.
func (s *Server) Shutdown(ctx context.Context) error {
	s.Drain()
	return s.hub.Shutdown(ctx)
}

func (s *Server) handleHealth(w http.ResponseWriter, r *http.Request) {
	status, code := "ok", http.StatusOK
	if s.drainCtx.Err() != nil {
		status, code = "draining", http.StatusServiceUnavailable
	}
	writeJSON(w, code, map[string]any{"status": status, "generations": s.runner.Running()})
}

// CheckReady makes /readyz ask f too whether this node takes new work (cmd
// wires the store's check: a Redis store must answer).
func (s *Server) CheckReady(f func(ctx context.Context) error) { s.ready.Store(&f) }

// readyTimeout bounds /readyz's check of the store, so that a load balancer
// gets an answer before its own timeout.
const readyTimeout = 2 * time.Second

// handleReady answers whether this node takes new work: 200 {"status":
// "ready"}, or 503 when it drains ("draining") or its store does not answer
// ("store_unreachable", the error in the log), so that a load balancer sends
// new work elsewhere. /healthz only says the process is alive.
func (s *Server) handleReady(w http.ResponseWriter, r *http.Request) {
	if s.drainCtx.Err() != nil {
		writeJSON(w, http.StatusServiceUnavailable, map[string]any{"status": "draining"})
		return
	}
	if f := s.ready.Load(); f != nil {
		ctx, cancel := context.WithTimeout(r.Context(), readyTimeout)
		defer cancel()
		if err := (*f)(ctx); err != nil {
			s.log.Warn("not ready: the store does not answer", "request_id", sluice.RequestID(r.Context()), "err", err)
			writeJSON(w, http.StatusServiceUnavailable, map[string]any{"status": "store_unreachable"})
			return
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"status": "ready"})
}
