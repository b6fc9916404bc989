// Package gen runs generations: it starts a model on a chat request in a
// goroutine of its own and writes the answer into the log gen/<id> as
// chat.completion.chunk events, ending the log with [DONE] or an error event.
// The HTTP request that started a generation is only its first reader, so an
// answer outlives a dropped connection and can be resumed.
package gen

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/sluice-dev/sluice"
	"github.com/sluice-dev/sluice/wire"
)

// LogName returns the name of the log that generation id writes.
func LogName(id string) string { return "gen/" + id }

// Peers are the other nodes that share the store, as generations see
// them: a generation runs on the node that started it, and a request to
// stop it may come to any node. The Redis store is one (it carries the
// requests); a store of one node has none.
type Peers interface {
	// RequestStop asks the node that writes l to stop it, and reports
	// whether a node was asked: false when l has ended, is gone or has no
	// writer. It returns once the request is on its way.
	RequestStop(ctx context.Context, l sluice.Log) (bool, error)
	// OnStop makes stop be called with the name of each log that this
	// node writes and another node asks to stop. stop returns at once.
	OnStop(stop func(logName string))
}

// StopWait bounds how long Stop waits for a generation that another node
// runs to end, when Peers do not say how soon they find a lost node (see
// lostBound): long enough for a node that is lost rather than slow to be
// found so.
const StopWait = 5 * time.Second

// lostBound is Peers that state within what time a lost node's logs are
// ended (the Redis store: its lease and a third, 4 s by default). Stop
// waits that long and a second more.
type lostBound interface{ LostWithin() time.Duration }

// Options configure a Runner.
type Options struct {
	Store         sluice.Store
	Peers         Peers // nil: every generation runs on this node
	MaxConcurrent int   // generations running at once; 0 means 1000
	MaxPerOwner   int   // generations one owner may run at once; 0 means no limit but MaxConcurrent
	Logger        *slog.Logger
	Observer      Observer // told of every generation, for metrics; nil: none
}

// Runner starts, tracks and stops generations. It is safe for concurrent
// use. Shutdown ends every generation and waits for their goroutines.
type Runner struct {
	store    sluice.Store
	peers    Peers
	log      *slog.Logger
	obs      Observer
	slots    chan struct{}
	perOwner int
	wg       sync.WaitGroup
	ctx      context.Context // parent of every generation; cancelled by Shutdown
	cancel   context.CancelCauseFunc

	mu      sync.Mutex
	running map[string]*Generation
	owners  map[string]int // running generations by owner
	closing bool
}

// Generation is a running or finished answer.
type Generation struct {
	ID      string
	Model   string
	Created int64
	Owner   string
	Log     sluice.Log
	// RequestID is the ID of the request that started the generation
	// (sluice.RequestID), in its log lines; "" when none.
	RequestID string

	cancel context.CancelCauseFunc
	done   chan struct{}
	err    error        // why it ended, if not done; set before done closes
	usage  sluice.Usage // what the model reported; set before done closes

	// Set by Start before it closes created, which run waits for before
	// it touches the log.
	created   chan struct{}
	createErr error   // why the log could not be created; Log is nil then
	tracker   Tracker // the metrics' view of the generation, once created
}

// Done is closed when the generation has written its last event.
func (g *Generation) Done() <-chan struct{} { return g.done }

// Err returns, once Done is closed, the error that ended the generation, or
// nil when it completed.
func (g *Generation) Err() error {
	select {
	case <-g.done:
		return g.err
	default:
		return nil
	}
}

// Usage returns, once Done is closed, the tokens the model reported for
// the answer (those counted so far when it did not complete), whether or
// not the client asked for them in the stream: the conversation recorder
// stores them.
func (g *Generation) Usage() sluice.Usage {
	select {
	case <-g.done:
		return g.usage
	default:
		return sluice.Usage{}
	}
}

// Errors that say why a generation was stopped.
var (
	errCancelled = &sluice.Error{Code: sluice.ECANCELLED, Kind: "cancelled", Message: "The generation was cancelled."}
	errShutdown  = &sluice.Error{Code: sluice.EUNAVAILABLE, Kind: "server_shutting_down", Message: "The server is shutting down; the answer is incomplete."}
	errBusy      = &sluice.Error{Code: sluice.EUNAVAILABLE, Kind: "too_many_generations", RetryAfter: time.Second,
		Message: "Too many answers are being generated at once; try again shortly."}
	errOwnerBusy = &sluice.Error{Code: sluice.ERATELIMIT, Kind: "too_many_generations_for_key", RetryAfter: time.Second,
		Message: "This API key has as many answers running as it may; wait for one to finish."}
	// errNodeLost is never returned here: a store that several nodes share
	// ends the log with it when the node running the generation is lost
	// (sluice.LogOptions.Lost).
	errNodeLost = &sluice.Error{Code: sluice.EUNAVAILABLE, Kind: "node_lost",
		Message: "The server generating this answer was lost (it stopped, or lost its connection); the answer is incomplete."}
	lostEnding = wire.ErrorJSON(errNodeLost)
)

// NewRunner returns a runner writing into opts.Store.
func NewRunner(opts Options) *Runner {
	if opts.MaxConcurrent <= 0 {
		opts.MaxConcurrent = 1000
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Observer == nil {
		opts.Observer = nopObserver{}
	}
	ctx, cancel := context.WithCancelCause(context.Background())
	r := &Runner{
		store: opts.Store, peers: opts.Peers, log: opts.Logger, obs: opts.Observer, slots: make(chan struct{}, opts.MaxConcurrent), perOwner: opts.MaxPerOwner,
		ctx: ctx, cancel: cancel, running: make(map[string]*Generation), owners: make(map[string]int),
	}
	if r.peers != nil {
		r.peers.OnStop(r.stopLog)
	}
	return r
}

// NewID returns a fresh, unguessable generation ID (128 random bits).
func NewID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	return hex.EncodeToString(b[:])
}

// StartFor is Start for a request that carries no request ID.
func (r *Runner) StartFor(owner string, req *sluice.ChatRequest, m sluice.Model) (*Generation, error) {
	return r.Start(context.Background(), owner, req, m)
}

// Start begins answering req with m, under the model name the client
// asked for, as a generation that only owner may read and stop ("": anyone;
// see sluice.LogOptions.Owner). It returns at once; the answer is written
// into the generation's log. ctx only lends the generation its values (the
// request ID, for its log lines and its model's): the generation outlives
// it. It fails with EUNAVAILABLE when the runner is full or shutting down,
// and ERATELIMIT when owner runs as many as it may.
func (r *Runner) Start(ctx context.Context, owner string, req *sluice.ChatRequest, m sluice.Model) (*Generation, error) {
	select {
	case r.slots <- struct{}{}:
	default:
		r.obs.Refused("max-generations", errBusy.Kind)
		return nil, errBusy
	}
	r.mu.Lock()
	var err error
	limit := ""
	switch {
	case r.closing:
		err, limit = errShutdown, "shutdown"
	case owner != "" && r.perOwner > 0 && r.owners[owner] >= r.perOwner:
		err, limit = errOwnerBusy, "max-generations-per-key"
	default:
		r.owners[owner]++
		r.wg.Add(1) // here, so that Shutdown cannot miss it
	}
	r.mu.Unlock()
	if err != nil {
		<-r.slots
		r.obs.Refused(limit, sluice.ErrorKind(err))
		return nil, err
	}

	g := &Generation{ID: NewID(), Model: req.Model, Created: time.Now().Unix(), Owner: owner,
		RequestID: sluice.RequestID(ctx), done: make(chan struct{}), created: make(chan struct{})}
	gctx, cancel := context.WithCancelCause(r.ctx)
	if g.RequestID != "" {
		gctx = sluice.WithRequestID(gctx, g.RequestID)
	}
	g.cancel = cancel

	// The model starts while the log is created, and its first event
	// waits for the log: a store that several nodes share (Redis) takes a
	// round trip to create it, which would otherwise come before the
	// model's request and add to the time to the first token. Should the
	// log not be created, the model is stopped before it has written
	// anything, and Start waits for it to be.
	go r.run(gctx, g, req, m)
	l, err := r.store.Create(r.ctx, LogName(g.ID), sluice.LogOptions{Owner: owner, Lost: lostEnding})
	if err != nil {
		g.createErr = err
		close(g.created)
		cancel(err)
		<-g.done
		return nil, err
	}
	g.Log = l
	g.tracker = r.obs.Started(g.Model)
	r.mu.Lock()
	r.running[g.ID] = g
	r.mu.Unlock()
	close(g.created)
	return g, nil
}

// release gives back what Start took for g.
func (r *Runner) release(g *Generation) {
	r.mu.Lock()
	delete(r.running, g.ID)
	if r.owners[g.Owner]--; r.owners[g.Owner] <= 0 {
		delete(r.owners, g.Owner)
	}
	r.mu.Unlock()
	<-r.slots
}

// Cancel stops the generation id, which then ends its log with a
// cancellation event. It reports whether the generation was running; an
// unknown or already finished generation is not an error.
func (r *Runner) Cancel(id string) bool {
	r.mu.Lock()
	g := r.running[id]
	r.mu.Unlock()
	if g == nil {
		return false
	}
	g.cancel(errCancelled)
	<-g.done
	return true
}

// Stop stops generation id, whose log is l, wherever it runs: here, as
// Cancel does, or on the node that runs it, through Peers; then it waits
// until l has ended, for at most StopWait (see lostBound), and returns how l then stands
// ("open" when the wait ran out: the generation has not stopped yet). A
// generation that has ended already is not an error: its end is returned.
func (r *Runner) Stop(ctx context.Context, id string, l sluice.Log) (sluice.End, error) {
	if !r.Cancel(id) && r.peers != nil {
		asked, err := r.peers.RequestStop(ctx, l)
		if err != nil {
			return sluice.EndNone, err
		}
		if asked {
			wait := StopWait
			if lb, ok := r.peers.(lostBound); ok {
				wait = lb.LostWithin() + time.Second
			}
			wctx, cancel := context.WithTimeout(ctx, wait)
			awaitEnd(wctx, l)
			cancel()
		}
	}
	_, end, err := l.Last(ctx)
	return end, err
}

// deferrer is a log that takes events without waiting for each to be
// stored (the Redis store's, which coalesces them into one script run per
// few milliseconds under load): a generation's chunks go so, and its last
// events, whose Append waits for those before, as Append. Defer reports a
// failure of an earlier deferred event, Flush of any.
type deferrer interface {
	Defer(ctx context.Context, ev sluice.Event) error
	Flush(ctx context.Context) error
}

// awaitEnd waits until l has ended, or ctx is done.
func awaitEnd(ctx context.Context, l sluice.Log) {
	for ctx.Err() == nil {
		id, end, err := l.Last(ctx)
		if err != nil || end != sluice.EndNone {
			return
		}
		// With no room for events, Read only waits for the next one.
		if _, err := l.Read(ctx, id, nil); err != nil && !errors.Is(err, io.EOF) {
			return
		}
	}
}

// stopLog stops the generation that writes the named log, if it runs
// here, without waiting for it: Peers calls it when another node asks.
func (r *Runner) stopLog(name string) {
	id, ok := strings.CutPrefix(name, LogName(""))
	if !ok {
		return
	}
	r.mu.Lock()
	g := r.running[id]
	r.mu.Unlock()
	if g != nil {
		g.cancel(errCancelled)
	}
}

// Running reports how many generations are running.
func (r *Runner) Running() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.running)
}

// Close refuses new generations from now on (EUNAVAILABLE, which clients
// are told to retry elsewhere or later); running ones go on. Shutdown
// calls it.
func (r *Runner) Close() {
	r.mu.Lock()
	r.closing = true
	r.mu.Unlock()
}

// Shutdown refuses new generations, lets running ones finish until ctx is
// done, then stops the rest with an error event and waits for them all.
func (r *Runner) Shutdown(ctx context.Context) error {
	r.Close()

	idle := make(chan struct{})
	go func() { r.wg.Wait(); close(idle) }()
	select {
	case <-idle:
		return nil
	case <-ctx.Done():
	}
	r.cancel(errShutdown)
	<-idle
	return ctx.Err()
}

// upstreamer is a model served by an upstream, which it names (openai.Model).
type upstreamer interface{ Upstream() string }

func (r *Runner) run(ctx context.Context, g *Generation, req *sluice.ChatRequest, m sluice.Model) {
	defer r.wg.Done()
	defer func() {
		r.release(g)
		close(g.done)
		g.cancel(nil)
	}()

	start := time.Now()
	chunks := wire.NewChunks("chatcmpl-"+g.ID, g.Model, g.Created, req.IncludeUsage)
	// The log is written with a context that outlives cancellation, so the
	// ending event is always stored.
	wctx := context.WithoutCancel(ctx)
	var buf []byte // each chunk is encoded here; the log keeps a copy
	var (
		tr        Tracker
		dl        deferrer
		deferring bool
	)
	// created waits, once, for Start to have created the log (see Start).
	created := sync.OnceValue(func() error {
		<-g.created
		if g.createErr == nil {
			tr = g.tracker
			dl, deferring = g.Log.(deferrer)
		}
		return g.createErr
	})
	write := func(ev sluice.Event) error {
		if err := created(); err != nil {
			return err
		}
		if deferring {
			return dl.Defer(wctx, ev)
		}
		_, err := g.Log.Append(wctx, ev)
		return err
	}
	var (
		tokens    int // deltas that carried some of the answer
		ttft      time.Duration
		lastToken time.Time
	)
	usage, err := m.Stream(ctx, req, func(d sluice.Delta) error {
		buf = chunks.AppendDelta(buf[:0], d)
		if err := write(sluice.Event{Data: buf}); err != nil {
			return err
		}
		if d.Content != "" || d.ReasoningContent != "" || len(d.ToolCalls) > 0 {
			now := time.Now()
			if tokens == 0 {
				ttft = now.Sub(start)
				tr.FirstToken(ttft)
			} else {
				tr.NextToken(now.Sub(lastToken))
			}
			lastToken = now
			tokens++
		}
		return nil
	})
	if created() != nil {
		return // no log to end: Start reports why
	}
	if err != nil && ctx.Err() != nil {
		err = context.Cause(ctx)
	}
	if err == nil && deferring {
		err = dl.Flush(wctx) // the last tokens may yet fail
	}

	end := sluice.EndDone
	data := []byte(wire.Done)
	switch {
	case err == nil:
		if req.IncludeUsage {
			if _, err = g.Log.Append(wctx, sluice.Event{Data: chunks.Usage(usage)}); err != nil {
				end, data = sluice.EndError, wire.ErrorJSON(err)
			}
		}
	case errors.Is(err, errCancelled):
		end, data = sluice.EndCancelled, wire.ErrorJSON(err)
	default:
		end, data = sluice.EndError, wire.ErrorJSON(err)
	}
	if end != sluice.EndDone {
		g.err = err
	}
	g.usage = usage
	// The generation is counted and logged as ended before its ending event
	// is stored: a reader that has seen the end then finds it in the
	// metrics and the log.
	reason := endReason(end, err)
	tr.Ended(reason)
	r.logEnd(g, m, reason, start, tokens, ttft, usage, end, err)
	if _, aerr := g.Log.Append(wctx, sluice.Event{Data: data, End: end}); aerr != nil {
		r.log.Error("generation: cannot end log", "id", g.ID, "request_id", g.RequestID, "err", aerr)
	}
}

// logEnd writes the one line that says all an operator asks of a
// generation, under the ID of the request that started it.
func (r *Runner) logEnd(g *Generation, m sluice.Model, reason string, start time.Time, tokens int, ttft time.Duration,
	usage sluice.Usage, end sluice.End, err error) {
	attrs := []any{"id", g.ID, "request_id", g.RequestID, "model", g.Model, "owner", g.Owner}
	if u, ok := m.(upstreamer); ok && u.Upstream() != "" {
		attrs = append(attrs, "upstream", u.Upstream())
	}
	attrs = append(attrs, "end", reason, "duration", time.Since(start).Round(time.Millisecond), "tokens", tokens)
	if tokens > 0 {
		attrs = append(attrs, "ttft", ttft.Round(time.Millisecond))
	}
	attrs = append(attrs, "prompt_tokens", usage.PromptTokens, "completion_tokens", usage.CompletionTokens)
	if err != nil && end == sluice.EndError {
		r.log.Warn("generation failed", append(attrs, "err", err)...)
		return
	}
	r.log.Info("generation ended", attrs...)
}

// endReason is what a Tracker is told of a generation that ended with end
// after err.
func endReason(end sluice.End, err error) string {
	switch {
	case end == sluice.EndDone:
		return EndDone
	case end == sluice.EndCancelled:
		return EndCancelled
	case errors.Is(err, errShutdown):
		return EndShutdown
	}
	return EndError
}
