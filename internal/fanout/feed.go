package fanout

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/sluice-dev/sluice"
	"github.com/sluice-dev/sluice/internal/eventid"
)

// inlineSubs is the most current readers that the appending goroutine
// writes to itself; a feed with more hands delivery to its pump.
const inlineSubs = 4

// notifier is a log that calls fn in the appending goroutine after every
// append (memory.Log does).
type notifier interface {
	Notify(fn func()) (stop func())
}

// Sub constrains a Feed's readers, which it writes to while they are
// current. It is a type parameter rather than an interface value so that a
// feed's lists of readers (thousands, for a topic) cost one word a reader,
// as the transport's own pointer type does.
type Sub interface {
	comparable
	// Deliver writes frame, the wire form of n events of which the last
	// has the ID id, to the reader, whose cursor is then id; ended says
	// that the log's last event is among them, and the feed calls it no
	// more. Inline, it runs in the goroutine that appended to the log (a
	// generation's writer) and must not wait on the socket; from the pump
	// it may wait briefly. A reader that cannot take the write leaves the
	// feed (Feed.Leave) and catches up by itself. A feed makes one
	// delivery at a time, so Deliver is never called twice at once for one
	// feed; frame is the feed's until Deliver returns.
	Deliver(frame []byte, n int, id string, ended, inline bool)
}

// Encoder puts events in a transport's wire form.
type Encoder interface {
	// AppendEvent appends the wire form of ev to b.Frame; it may use
	// b.Spare as scratch space. It keeps nothing of ev.
	AppendEvent(b *Batch, ev *sluice.Event)
}

// Transport is a feed's side that knows the wire. Usually the transport's
// own feed type, which embeds the Feed, implements it.
type Transport[S Sub] interface {
	Encoder
	// Failed is told, once, that the log cannot be read (its store is
	// unreachable, or the log is gone). current are the readers that were
	// current, which the feed has dropped: each is to be told and closed.
	// Readers catching up meet err themselves, reading or joining. The
	// feed takes no one from then on: the transport should forget it, so
	// that a reader that comes later gets a new feed, which tries the log
	// afresh. It runs in the pump, with no lock of the feed's held.
	Failed(current []S, err error)
}

// Counter is told how many events each delivery round wrote.
type Counter interface {
	Delivered(n int)
}

// Config is what the feeds of one transport share. Its fields must not
// change once a feed has started with it.
type Config struct {
	// WG counts the feeds' pump goroutines; the transport waits on it
	// when it shuts down, after it has stopped every feed.
	WG *sync.WaitGroup
	// Logger logs a batch that could not be read, prefixed with Name.
	Logger *slog.Logger
	Name   string
	// Counter, when set, is told after each delivery round of the
	// batch's events times the readers it was written to.
	Counter Counter
}

// Feed is one log and the readers that follow it on one node. One
// delivery at a time reads the new events for the current readers,
// encodes each batch once and writes the same bytes to all of them (see
// the package comment for who delivers). Its methods are safe for
// concurrent use. A Feed must not be copied once started. S is the
// transport's reader type.
type Feed[S Sub] struct {
	cfg    *Config
	t      Transport[S]
	log    sluice.Log
	ctx    context.Context
	cancel context.CancelFunc

	// kicks counts appends not yet looked at; whoever moves it from 0 to
	// 1 delivers (or hands delivery to the pump) until it can put it back
	// to 0 with nothing new.
	once       sync.Once // runs begin
	kicks      atomic.Int32
	wake       chan struct{} // hands delivery to the pump; buffered
	stopNotify func()

	mu      sync.Mutex
	head    string // ID of the newest event delivered
	ids     eventid.Keeper
	ended   bool  // the log's last event has been delivered
	current []S   // readers whose cursor is head
	pumping bool  // the pump goroutine has been started
	begun   bool  // head has been read from the log (begin)
	stopped bool  // Stop has been called: no pump may start
	err     error // why the log could not be read; the feed takes no one after it

	// to is the current readers as a delivery round found them, written
	// outside mu (a reader may Leave as it is written). Only the one
	// delivery under way uses it; it is kept, emptied, for the next.
	to []S
}

// Start makes f, a zero Feed, the feed of l; delivery begins with the
// first Join, which reads where the log stands (see begin). t encodes the
// events and is told of a failure. The caller serialises Start with the
// lookup that made f (a node holds one feed per log); Start itself calls
// nothing of the store's, so that the caller may hold a lock that every
// log shares (the transport's map of feeds) while it runs: a log in a
// slow store then holds up no other.
func (f *Feed[S]) Start(l sluice.Log, t Transport[S], cfg *Config) {
	f.cfg, f.t, f.log = cfg, t, l
	f.ctx, f.cancel = context.WithCancel(context.Background())
	if n, ok := l.(notifier); ok {
		f.wake = make(chan struct{}, 1)
		f.stopNotify = n.Notify(f.kick)
	}
}

// begin reads the log's newest event, from which delivery starts (whoever
// joins catches up to it by itself), and starts the pump of a log that
// does not notify. It runs once, from the first Join, in the joining
// reader's goroutine and under no lock but the feed's own Once: readers of
// the same log that come meanwhile wait for it in Join, those of other
// logs go on. (The log notifies from Start on: nothing appended before
// the look is missed, and what was appended between the look and
// delivery beginning is delivered by the kick at the end.)
func (f *Feed[S]) begin() {
	head, _, _ := f.log.Last(f.ctx)
	f.mu.Lock()
	f.head = head
	f.begun = true
	pump := f.wake == nil && !f.stopped
	if pump {
		f.pumping = true
		f.cfg.WG.Add(1) // under mu with stopped: never after Stop (and the transport's Wait)
	}
	f.mu.Unlock()
	if pump {
		go f.pump()
	} else if f.wake != nil {
		f.kick()
	}
}

// Begin reads where the log stands, once (see begin), unless it has been
// read already. Join calls it; a transport may call it earlier, outside a
// lock that Join is called under, so that the store call holds up nothing
// but the readers of this log.
func (f *Feed[S]) Begin() { f.once.Do(f.begin) }

// Log returns the feed's log.
func (f *Feed[S]) Log() sluice.Log { return f.log }

// Context is done once the feed has stopped: readers catching up read
// the log with it.
func (f *Feed[S]) Context() context.Context { return f.ctx }

// Stop ends delivery, once the feed has no reader left. Its pump, if it
// has one, ends soon after (the transport waits for it through
// Config.WG).
func (f *Feed[S]) Stop() {
	f.mu.Lock()
	f.stopped = true
	f.mu.Unlock()
	f.cancel()
	if f.stopNotify != nil {
		f.stopNotify()
	}
}

// kick is called after every append to a notifying log.
func (f *Feed[S]) kick() {
	if f.kicks.Add(1) != 1 || f.ctx.Err() != nil {
		return // a delivery under way will look again
	}
	f.mu.Lock()
	inline := len(f.current) <= inlineSubs
	if !inline && !f.pumping && !f.stopped {
		f.pumping = true
		f.cfg.WG.Add(1)
		go f.pump()
	}
	f.mu.Unlock()
	if inline {
		f.deliverKicked(true)
		return
	}
	f.wake <- struct{}{} // the pump delivers; it has room for one
}

// deliverKicked delivers until no append has come in since it last looked.
func (f *Feed[S]) deliverKicked(inline bool) {
	for {
		n := f.kicks.Load()
		if f.deliver(inline) {
			f.kicks.Store(0) // the log has ended: nothing more to deliver
			return
		}
		if f.kicks.CompareAndSwap(n, 0) {
			return
		}
	}
}

// pump delivers in a goroutine of its own: when a notifying feed hands it
// delivery, or, for a log that does not notify, whenever the log grows.
func (f *Feed[S]) pump() {
	defer f.cfg.WG.Done()
	for {
		if f.wake != nil {
			select {
			case <-f.wake:
				f.deliverKicked(false)
				continue
			case <-f.ctx.Done():
				return
			}
		}
		f.mu.Lock()
		head := f.head
		f.mu.Unlock()
		// Wait with no buffer, then read into buffers from a pool: a
		// thousand idle pumps hold none.
		if _, err := f.log.Read(f.ctx, head, nil); err != nil {
			switch {
			case errors.Is(err, io.EOF):
				f.mu.Lock()
				f.ended = true
				f.mu.Unlock()
			case f.ctx.Err() == nil:
				f.fail(err)
			}
			return // ended, stopped (no reader is left) or failed
		}
		if f.deliver(false) {
			return
		}
	}
}

// deliver reads what the log has after the head, encodes it and writes it
// to every current reader, batch by batch, and reports whether the log's
// last event has been delivered. Buffers come from a pool: the one that
// delivers takes buffers another has just used, still in the processor's
// cache.
func (f *Feed[S]) deliver(inline bool) (ended bool) {
	b := GetBatch()
	defer b.Put()
	for {
		f.mu.Lock()
		head, ended, begun := f.head, f.ended, f.begun
		f.mu.Unlock()
		if ended {
			return true
		}
		if !begun {
			return false // nobody is current yet; begin kicks once it has the head
		}
		err := b.Read(f.ctx, f.log, head)
		n := len(b.Events)
		if n == 0 {
			if err != nil && !errors.Is(err, context.Canceled) && !errors.Is(err, io.EOF) {
				f.cfg.Logger.Error(f.cfg.Name+": reading a log", "log", f.log.Name(), "err", err)
			}
			return errors.Is(err, io.EOF)
		}
		last, _ := b.Encode(f.t, "", 0)
		f.mu.Lock()
		if f.head != head {
			// The head moved while this batch was read: Start set it
			// from the log's newest event after a delivery had begun (a
			// log that notifies may kick one before). The batch may hold
			// events the readers have: read again.
			f.mu.Unlock()
			continue
		}
		// The batch's IDs may live in its scratch space: the head outlives
		// it, and so does every cursor set from it.
		id := f.ids.Keep(last.ID)
		f.head = id
		f.ended = last.End != sluice.EndNone
		ended = f.ended
		f.to = append(f.to[:0], f.current...)
		if ended {
			f.current = nil
		}
		f.mu.Unlock()
		for _, s := range f.to {
			s.Deliver(b.Frame, n, id, ended, inline)
		}
		if f.cfg.Counter != nil {
			f.cfg.Counter.Delivered(n * len(f.to))
		}
		clear(f.to) // let departed readers be collected
		if ended || n < cap(b.Events) {
			return ended
		}
	}
}

// Join makes s current if cursor, the ID of the last event s was written,
// is the feed's head, and reports the head otherwise, which s must reach
// first. An ended feed takes no one; a failed one says why. The first Join
// reads where the log stands (a store call; others of the log wait for
// it). The caller
// holds whatever keeps s's cursor still, so that no write moves it
// between the check and the first delivery.
func (f *Feed[S]) Join(s S, cursor string) (joined bool, head string, err error) {
	f.Begin()
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return false, f.head, f.err
	}
	if cursor == f.head && !f.ended {
		f.current = append(f.current, s)
		return true, f.head, nil
	}
	return false, f.head, nil
}

// Leave takes s out of the current readers, if it is one.
func (f *Feed[S]) Leave(s S) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, c := range f.current {
		if c == s {
			last := len(f.current) - 1
			f.current[i] = f.current[last]
			var none S
			f.current[last] = none
			f.current = f.current[:last]
			return
		}
	}
}

// fail ends the feed after its log could not be read: it takes no one
// from now on, and its transport tells the current readers.
func (f *Feed[S]) fail(err error) {
	f.mu.Lock()
	f.err = err
	current := f.current
	f.current = nil
	f.mu.Unlock()
	f.t.Failed(current, err)
}
