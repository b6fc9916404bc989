package hub

import (
	"context"
	"errors"
	"io"
	"sync"
	"sync/atomic"

	"github.com/sluice-dev/sluice"
	"github.com/sluice-dev/sluice/internal/eventid"
	"github.com/sluice-dev/sluice/sse"
)

// batch is the most events one delivery round or catch-up step carries.
const batch = 64

// inlineSubs is the most up-to-date connections that the appending
// goroutine writes to itself; a feed with more hands delivery to its pump.
const inlineSubs = 4

// notifier is a log that calls fn in the appending goroutine after every
// append (memory.Log does).
type notifier interface {
	Notify(fn func()) (stop func())
}

// feed is one log and the connections reading it. One delivery at a time
// reads the new events for connections that are up to date ("current"),
// encodes each batch once and writes the same bytes to all of them.
//
// With a log that notifies, the appending goroutine delivers itself when
// the feed has a few current connections (a generation and its reader):
// each token is written to the socket without waking another goroutine.
// A feed with more (a topic and its subscribers) hands delivery to its
// pump, started on first need, so that the publisher does not wait on
// thousands of writes and events that arrive meanwhile share one write.
// With any other log the pump waits on the log itself.
type feed struct {
	hub    *Hub
	log    sluice.Log
	ctx    context.Context
	cancel context.CancelFunc

	// kicks counts appends not yet looked at; whoever moves it from 0 to
	// 1 delivers (or hands delivery to the pump) until it can put it back
	// to 0 with nothing new.
	kicks      atomic.Int32
	wake       chan struct{} // hands delivery to the pump; buffered
	stopNotify func()

	mu      sync.Mutex
	head    string // ID of the newest event delivered
	ids     eventid.Keeper
	ended   bool   // the log's last event has been delivered
	current []*sub // connections whose cursor is head
	pumping bool   // the pump goroutine has been started
	err     error  // why the log could not be read; the feed takes no one after it

	refs int // connections attached, current or catching up; under hub.mu
}

func newFeed(h *Hub, l sluice.Log) *feed {
	f := &feed{hub: h, log: l}
	f.ctx, f.cancel = context.WithCancel(context.Background())
	n, ok := l.(notifier)
	if ok {
		f.wake = make(chan struct{}, 1)
		f.stopNotify = n.Notify(f.kick)
	}
	// Delivery starts from the log's newest event: whoever attaches
	// catches up to it by itself. (Listening first: nothing appended in
	// between is missed.)
	head, _, _ := l.Last(f.ctx)
	f.mu.Lock()
	f.head = head
	f.mu.Unlock()
	if !ok {
		f.pumping = true
		h.wg.Add(1)
		go f.pump()
	}
	return f
}

func (f *feed) stop() {
	f.cancel()
	if f.stopNotify != nil {
		f.stopNotify()
	}
}

// kick is called after every append to a notifying log.
func (f *feed) kick() {
	if f.kicks.Add(1) != 1 || f.ctx.Err() != nil {
		return // a delivery under way will look again
	}
	f.mu.Lock()
	inline := len(f.current) <= inlineSubs
	if !inline && !f.pumping {
		f.pumping = true
		f.hub.wg.Add(1)
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
func (f *feed) deliverKicked(inline bool) {
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
func (f *feed) pump() {
	defer f.hub.wg.Done()
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
			return // ended, stopped (no connection is left) or failed
		}
		if f.deliver(false) {
			return
		}
	}
}

// deliver reads what the log has after the head, encodes it and writes it
// to every current connection, batch by batch, and reports whether the
// log's last event has been delivered. Inline, a write the client does not
// take at once leaves that connection to catch up on its own; otherwise it
// may take fastWrite. Buffers come from a pool: the one that delivers
// takes buffers another has just used, still in the processor's cache.
func (f *feed) deliver(inline bool) (ended bool) {
	b := batchPool.Get().(*batchBuf)
	defer b.put()
	for {
		f.mu.Lock()
		head, ended := f.head, f.ended
		f.mu.Unlock()
		if ended {
			return true
		}
		err := b.read(f.ctx, f.log, head)
		n := len(b.events)
		if n == 0 {
			if err != nil && !errors.Is(err, context.Canceled) && !errors.Is(err, io.EOF) {
				f.hub.log.Error("hub: reading a log", "log", f.log.Name(), "err", err)
			}
			return errors.Is(err, io.EOF)
		}
		last := b.encode("")
		f.mu.Lock()
		if f.head != head {
			// The head moved while this batch was read: newFeed set it
			// from the log's newest event after a delivery had begun (a
			// log that notifies may kick one before). The batch may hold
			// events the connections have: read again.
			f.mu.Unlock()
			continue
		}
		// The batch's IDs may live in its scratch space: the head outlives
		// it, and so does every cursor set from it.
		id := f.ids.Keep(last.ID)
		f.head = id
		f.ended = last.End != sluice.EndNone
		ended = f.ended
		b.subs = append(b.subs[:0], f.current...)
		if ended {
			f.current = nil
		}
		f.mu.Unlock()
		for _, s := range b.subs {
			s.deliver(b.frame, id, ended, inline)
		}
		f.hub.obs.Delivered(n * len(b.subs))
		clear(b.subs) // let departed connections be collected
		if ended || n < cap(b.events) {
			return ended
		}
	}
}

// join makes s current if its cursor is at the head, and reports the head
// otherwise, which s must reach first. An ended feed takes no one; a
// failed one says why.
func (f *feed) join(s *sub) (joined bool, head string, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return false, f.head, f.err
	}
	if s.cursor == f.head && !f.ended {
		f.current = append(f.current, s)
		return true, f.head, nil
	}
	return false, f.head, nil
}

// fail ends the feed after its log could not be read (the store is
// unreachable, or the log is gone): its current connections get an error
// event and close; those catching up meet the error themselves, reading or
// joining; and a connection attached from now on gets a new feed, which
// tries the log afresh.
func (f *feed) fail(err error) {
	f.mu.Lock()
	f.err = err
	f.current = nil
	f.mu.Unlock()
	h := f.hub
	var failed []*sub
	h.mu.Lock()
	if h.feeds[f.log.Name()] == f {
		delete(h.feeds, f.log.Name())
	}
	for s := range h.subs {
		if s.feed == f && !s.catching.Load() {
			failed = append(failed, s)
		}
	}
	h.mu.Unlock()
	h.log.Warn("hub: a stream's log cannot be read; its readers are told so", "log", f.log.Name(), "readers", len(failed), "err", err)
	for _, s := range failed {
		s.fail(err)
	}
}

// leave takes s out of the current connections.
func (f *feed) leave(s *sub) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, c := range f.current {
		if c == s {
			last := len(f.current) - 1
			f.current[i] = f.current[last]
			f.current[last] = nil
			f.current = f.current[:last]
			return
		}
	}
}

// scratchPoller is a log that can hand back events in the reader's own
// scratch space rather than new memory (memory.Log does): the hub is done
// with every batch it reads once it has encoded it, but for the IDs it
// keeps, which it copies.
type scratchPoller interface {
	PollScratch(ctx context.Context, after string, buf []sluice.Event, scratch []byte) ([]sluice.Event, []byte, error)
}

// batchBuf is what one round of reading and encoding a batch needs.
type batchBuf struct {
	events  []sluice.Event
	scratch []byte // where the log puts events back together
	frame   []byte // the batch, encoded
	encoded int    // events in frame
	subs    []*sub // the connections a delivery writes the frame to
}

var batchPool = sync.Pool{New: func() any {
	return &batchBuf{events: make([]sluice.Event, 0, batch), frame: make([]byte, 0, 4096)}
}}

// read polls l for the events after after, into b.events.
func (b *batchBuf) read(ctx context.Context, l sluice.Log, after string) (err error) {
	if sp, ok := l.(scratchPoller); ok {
		b.events, b.scratch, err = sp.PollScratch(ctx, after, b.events, b.scratch)
		return err
	}
	b.events, err = l.Poll(ctx, after, b.events)
	return err
}

// encode puts b.events into b.frame as SSE, up to and including the event
// with ID upTo ("": all of them), and returns the last event encoded.
func (b *batchBuf) encode(upTo string) sluice.Event {
	b.frame = b.frame[:0]
	for i := range b.events {
		ev := &b.events[i]
		b.frame = sse.AppendEvent(b.frame, ev.ID, ev.Name, ev.Data)
		if upTo != "" && ev.ID == upTo {
			b.encoded = i + 1
			return *ev
		}
	}
	b.encoded = len(b.events)
	return b.events[len(b.events)-1]
}

// put returns b to the pool, unless a batch grew it past what is worth
// keeping.
func (b *batchBuf) put() {
	if cap(b.frame) > 256<<10 || cap(b.scratch) > 256<<10 {
		return
	}
	clear(b.events[:cap(b.events)]) // no event data kept alive from the pool
	b.events = b.events[:0]
	batchPool.Put(b)
}
