package redis

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/rueidis"

	"github.com/sluice-dev/sluice"
)

// Deferred appends: a generation writes a token as soon as its model
// gives it, without waiting for Redis (Log.Defer), and the store's one
// coalescer sends what its logs have queued in rounds: one script run per
// log per round, all of a round's runs in one pipeline. Appends that come
// within Options.Coalesce of their log's last run wait for the next round
// and go together. A token stream faster than a round trip then costs a
// script run per round, not per token, and a node's thousands of
// generations a round trip per round, not one each (rueidis pipelines
// them either way, but each would still be a command for Redis to run).
//
// A log's first event, and one after a quiet spell (quietSpell: the model
// was thinking), goes alone, at once, from the writer's own goroutine: it
// waits neither for the window nor for a round under way, whose answer
// comes only once Redis has run every script of the round. That is the
// time to the first token: on a loaded machine those waits took
// milliseconds (a probe of sluice bench --scenarios cluster at load ~20:
// about 2 ms for the window and 3 ms for the round). The writer waits one
// round trip then, while its log is quiet anyway. A stream's later
// tokens go in rounds: an append of its own for each costs a node more
// CPU per token (a third more, measured) than a share of a round.
//
// The queue of a log is bounded: a writer that outruns Redis waits in
// Defer, so memory never grows past the bound for a slow store.
const (
	maxQueueEvents = 1024    // events a log may have queued
	maxQueueBytes  = 1 << 20 // bytes of data a log may have queued (one larger event is let in alone)
	maxRunEvents   = 256     // events one script run carries
	maxRunBytes    = 256 << 10
	roundTimeout   = 10 * time.Second
)

// DefaultCoalesce is the least time between two rounds of deferred
// appends when Options.Coalesce is zero.
const DefaultCoalesce = 2 * time.Millisecond

// quietSpell is how long a log has had no append for its next deferred
// one to go alone, at once (or the window, if longer): longer than the
// gap between two tokens of a stream (20 ms at 50 a second), as short as
// a model thinking.
const quietSpell = 50 * time.Millisecond

// queue is a log's deferred appends; it is guarded by Log.qmu.
type queue struct {
	events  []sluice.Event // queued, not yet sent; their data is the log's own copy
	bytes   int
	sending int           // events sent in the round, or the run alone, under way
	last    time.Time     // when the last run of the log's appends began
	listed  bool          // the log is in the coalescer's list
	err     error         // why a deferred append failed; the queue takes no more
	changed chan struct{} // closed and replaced when a round has answered
}

// coalescer sends deferred appends in rounds.
type coalescer struct {
	s    *Store
	wake chan struct{} // has a signal when a log was listed

	lastAlone atomic.Int64 // when the last run alone began, Unix ns: the next round waits the window after it too

	mu     sync.Mutex
	logs   []*Log // the logs with events queued and not yet taken, each once
	closed bool   // the store has closed: no round will come
}

// Defer queues ev to be appended to l after the events queued before it,
// and returns without waiting for Redis, unless l's queue is full (it then
// waits for room, or ctx), or ev is l's first or comes after a quiet
// spell: ev is then appended at once, before Defer returns (see above),
// unless this node's readers have been handed it already (a log this
// node writes, see provisional.go): it is sent at once then too, but
// Defer does not wait for the answer. It reports the error that stopped
// an earlier deferred append, or ev's own when Defer waited for it, after
// which l's queue takes no more; or EFULL for an event past a full log's
// bound. ev must not end the log: Append ends it, after the queued
// events. Flush waits for them. With Options.Coalesce negative, Defer is
// Append (and hands nothing out before Redis has it).
func (l *Log) Defer(ctx context.Context, ev sluice.Event) error {
	if size := len(ev.Name) + len(ev.Data); size > l.s.opts.MaxEventBytes {
		return sluice.Errorf(sluice.ETOOLARGE, "An event of %d bytes is too large (at most %d).", size, l.s.opts.MaxEventBytes)
	}
	if ev.End != sluice.EndNone {
		return errors.New("redis: a deferred append may not end the log")
	}
	if l.s.opts.Coalesce < 0 {
		_, err := l.Append(ctx, ev)
		return err
	}
	l.qmu.Lock()
	for l.q.err == nil && len(l.q.events) > 0 &&
		(len(l.q.events) >= maxQueueEvents || l.q.bytes+len(ev.Data) > maxQueueBytes) {
		ch := l.waitChanged()
		l.qmu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
		l.qmu.Lock()
	}
	if err := l.q.err; err != nil {
		l.qmu.Unlock()
		return err
	}
	ev.ID = ""
	ev.Data = append([]byte(nil), ev.Data...)
	provided, err := l.provide(ev)
	if err != nil {
		l.qmu.Unlock()
		return err
	}
	if now := time.Now(); len(l.q.events) == 0 && l.q.sending == 0 && now.Sub(l.q.last) >= max(quietSpell, l.s.opts.Coalesce) {
		l.q.sending, l.q.last = 1, now
		l.qmu.Unlock()
		if provided {
			// This node's readers have it already: the writer need not
			// wait for Redis (its next event, the first token after a
			// role chunk, would wait behind the round trip).
			return l.s.coalescer.goAlone(l, ev, now)
		}
		return l.s.coalescer.alone(ctx, l, ev, now)
	}
	l.q.events = append(l.q.events, ev)
	l.q.bytes += len(ev.Data)
	list := !l.q.listed
	l.q.listed = true
	l.qmu.Unlock()
	if list {
		l.s.coalescer.list(l)
	}
	return nil
}

// Flush waits until every event deferred to l has been appended, or has
// failed, or ctx is done, and reports the error that stopped a deferred
// append, if one did.
func (l *Log) Flush(ctx context.Context) error {
	l.qmu.Lock()
	for len(l.q.events) > 0 || l.q.sending > 0 {
		ch := l.waitChanged()
		l.qmu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
		l.qmu.Lock()
	}
	err := l.q.err
	l.qmu.Unlock()
	return err
}

// waitChanged returns the channel that the next answered round closes.
// l.qmu must be held.
func (l *Log) waitChanged() <-chan struct{} {
	if l.q.changed == nil {
		l.q.changed = make(chan struct{})
	}
	return l.q.changed
}

// alone appends ev to l at once, as the one event of a run that began at
// start (l.q.sending is 1 for it), and reports the error that stopped it.
func (c *coalescer) alone(ctx context.Context, l *Log, ev sluice.Event, start time.Time) error {
	c.lastAlone.Store(start.UnixNano())
	c.mu.Lock()
	closed := c.closed
	c.mu.Unlock()
	if closed {
		l.qmu.Lock()
		l.q.sending = 0
		l.qmu.Unlock()
		fail(l, errClosed)
		return errClosed
	}
	// Bounded as a round is: the caller's context may have no end (a
	// generation writes with one that outlives its cancellation).
	ctx, cancel := context.WithTimeout(ctx, roundTimeout)
	defer cancel()
	res := appendScript.Exec(ctx, c.s.client, l.keys, l.appendArgs([]sluice.Event{ev}))
	c.s.observe("append", start, res.Error())
	if top, n, err := l.appendResult(res); err == nil && n == 1 {
		l.s.feeds.appended(l, top, []sluice.Event{ev}, false) // ev.Data is Defer's copy
	}
	if _, list := l.answered(res, 1); list {
		c.list(l)
	}
	l.qmu.Lock()
	defer l.qmu.Unlock()
	return l.q.err
}

// goAlone is alone in a goroutine of the store's, for an event that this
// node's readers have been handed already: it returns at once, and a
// failure is reported by the log's next Defer or Flush.
func (c *coalescer) goAlone(l *Log, ev sluice.Event, start time.Time) error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return c.alone(context.Background(), l, ev, start) // fails at once
	}
	// Under c.mu while not closed: the store's Close, which waits for
	// stopped, marks the coalescer closed before its run goroutine is
	// done, so this Add never comes after that Wait.
	c.s.stopped.Add(1)
	c.mu.Unlock()
	go func() {
		defer c.s.stopped.Done()
		_ = c.alone(context.Background(), l, ev, start)
	}()
	return nil
}

// answered takes the answer to a run of sent events of l's queue: the
// log's top offset after it, and whether l has events queued meanwhile
// that no round has listed (a run alone leaves them to its answer); it
// marks them listed then, for the caller to list.
func (l *Log) answered(res rueidis.RedisResult, sent int) (top uint64, list bool) {
	top, n, err := l.appendResult(res)
	l.qmu.Lock()
	defer l.qmu.Unlock()
	if err == nil && n != sent {
		err = unavailable(errors.New("redis: a deferred append to " + l.name + " appended part of its events"))
	}
	if err != nil && l.q.err == nil {
		l.q.err = err
		l.q.events, l.q.bytes = nil, 0 // what follows a lost event must not be appended
		defer l.abandon()
	}
	l.q.sending = 0
	if l.q.changed != nil {
		close(l.q.changed)
		l.q.changed = nil
	}
	if len(l.q.events) > 0 && !l.q.listed {
		l.q.listed = true
		return top, true
	}
	return top, false
}

// list puts l in the next round.
func (c *coalescer) list(l *Log) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		fail(l, errClosed)
		return
	}
	c.logs = append(c.logs, l)
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// errClosed is what deferred appends meet once the store is closed.
var errClosed = &sluice.Error{Code: sluice.EUNAVAILABLE, Kind: "store_closed", Message: "The log store is closed."}

// run sends rounds until the store closes, and then fails what is left,
// so that no writer waits for a round that will not come.
func (c *coalescer) run() {
	defer c.s.stopped.Done()
	defer c.failAll()
	var last time.Time // when the last round began
	var logs []*Log
	for {
		select {
		case <-c.s.stop:
			return
		case <-c.wake:
		}
		if alone := time.Unix(0, c.lastAlone.Load()); alone.After(last) {
			last = alone
		}
		if wait := time.Until(last.Add(c.s.opts.Coalesce)); wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-c.s.stop:
				t.Stop()
				return
			case <-t.C:
			}
		}
		last = time.Now()
		c.mu.Lock()
		logs, c.logs = c.logs, logs[:0]
		c.mu.Unlock()
		c.round(logs)
		clear(logs)
		c.mu.Lock()
		more := len(c.logs) > 0
		c.mu.Unlock()
		if more {
			select {
			case c.wake <- struct{}{}:
			default:
			}
		}
	}
}

// failAll fails the deferred appends still queued.
func (c *coalescer) failAll() {
	c.mu.Lock()
	logs := c.logs
	c.logs, c.closed = nil, true
	c.mu.Unlock()
	for _, l := range logs {
		fail(l, errClosed)
	}
}

// fail drops what l has queued, and makes err its error unless it has one.
func fail(l *Log, err error) {
	l.qmu.Lock()
	defer l.qmu.Unlock()
	if l.q.err == nil {
		l.q.err = err
		defer l.abandon()
	}
	l.q.events, l.q.bytes, l.q.listed = nil, 0, false
	if l.q.changed != nil {
		close(l.q.changed)
		l.q.changed = nil
	}
}

// round sends one script run for each of logs, in one pipeline, and hands
// each log its answer.
func (c *coalescer) round(logs []*Log) {
	execs := make([]rueidis.LuaExec, 0, len(logs))
	sent := make([][]sluice.Event, 0, len(logs))
	var relist []*Log
	kept := logs[:0]
	now := time.Now()
	for _, l := range logs {
		l.qmu.Lock()
		if len(l.q.events) == 0 || l.q.sending > 0 {
			// Dropped after a failure, or a run alone is under way, whose
			// answer lists what is queued: one run of a log at a time
			// keeps its events in order.
			l.q.listed = false
			l.qmu.Unlock()
			continue
		}
		kept = append(kept, l)
		n, size := 0, 0
		for n < len(l.q.events) && n < maxRunEvents && (n == 0 || size+len(l.q.events[n].Data) <= maxRunBytes) {
			size += len(l.q.events[n].Data)
			n++
		}
		execs = append(execs, rueidis.LuaExec{Keys: l.keys, Args: l.appendArgs(l.q.events[:n])})
		sent = append(sent, l.q.events[:n:n]) // the log's own copies, handed to the window once stored
		l.q.events = l.q.events[n:]
		l.q.bytes -= size
		l.q.sending, l.q.last = n, now
		if len(l.q.events) == 0 {
			l.q.events = nil // let the backing array go
			l.q.listed = false
		} else {
			relist = append(relist, l)
		}
		l.qmu.Unlock()
	}
	logs = kept
	if len(logs) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), roundTimeout)
	defer cancel()
	start := time.Now()
	results := appendScript.ExecMulti(ctx, c.s.client, execs...)
	c.s.observe("append", start, firstError(results))
	for i, l := range logs {
		// Into the window before Flush hears of it: a poll after Flush
		// finds them there.
		if top, n, err := l.appendResult(results[i]); err == nil && n == len(sent[i]) {
			l.s.feeds.appended(l, top, sent[i], false)
		}
		if _, list := l.answered(results[i], len(sent[i])); list {
			relist = append(relist, l)
		}
	}
	for _, l := range relist {
		c.list(l)
	}
}
