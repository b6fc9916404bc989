package ws

import (
	"context"
	"errors"
	"io"
	"sync"
	"sync/atomic"

	"github.com/gobwas/ws"

	"github.com/sluice-dev/sluice"
	"github.com/sluice-dev/sluice/internal/eventid"
)

// batch is the most events one delivery round or catch-up step carries.
const batch = 64

// inlineSubs is the most up-to-date subscriptions that the appending
// goroutine writes to itself; a feed with more hands delivery to its pump.
const inlineSubs = 4

// notifier is a log that calls fn in the appending goroutine after every
// append (memory.Log does).
type notifier interface {
	Notify(fn func()) (stop func())
}

// scratchPoller is a log that can hand back events in the reader's own
// scratch space rather than new memory (memory.Log does): a batch is done
// with once it is encoded, but for the IDs kept, which are copied.
type scratchPoller interface {
	PollScratch(ctx context.Context, after string, buf []sluice.Event, scratch []byte) ([]sluice.Event, []byte, error)
}

// feed is one log and the subscriptions that follow it, on every
// connection of the handler: the hub's design (see package hub), with
// WebSocket frames. One delivery at a time reads the new events for the
// subscriptions that are up to date ("current"), encodes each batch once
// into frames, and writes the same bytes to every one of them, without
// waiting on any socket: a subscription whose connection cannot take a
// write at once leaves the current ones and is caught up from the log by
// its connection's flusher (see conn.flush). The log is the buffer.
//
// With a log that notifies, the appending goroutine delivers itself while
// the feed has a few current subscriptions (a generation and its reader);
// a feed with more (a topic) hands delivery to its pump, started on first
// need, so that a publisher does not wait on thousands of writes and events
// that arrive meanwhile share one write. With any other log (Redis) the
// pump waits on the log itself.
type feed struct {
	h      *Handler
	log    sluice.Log
	field  string // "stream" or "topic": the frame field that names the log
	name   string
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
	current []*sub // subscriptions whose cursor is head
	pumping bool   // the pump goroutine has been started

	refs int // subscriptions following it; under h.mu
}

func newFeed(h *Handler, l sluice.Log, field, name string) *feed {
	f := &feed{h: h, log: l, field: field, name: name}
	f.ctx, f.cancel = context.WithCancel(context.Background())
	n, ok := l.(notifier)
	if ok {
		f.wake = make(chan struct{}, 1)
		f.stopNotify = n.Notify(f.kick)
	}
	// Delivery starts from the log's newest event: whoever follows catches
	// up to it by itself. (Listening first: nothing appended in between is
	// missed.)
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
		f.h.wg.Add(1)
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
	defer f.h.wg.Done()
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
		// Wait with no buffer, then read into buffers from a pool: idle
		// pumps hold none.
		if _, err := f.log.Read(f.ctx, head, nil); err != nil {
			if errors.Is(err, io.EOF) {
				f.mu.Lock()
				f.ended = true
				f.mu.Unlock()
			}
			return // ended, or stopped: no subscription is left
		}
		if f.deliver(false) {
			return
		}
	}
}

// deliver reads what the log has after the head, encodes it and writes it
// to every current subscription, batch by batch, and reports whether the
// log's last event has been delivered.
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
				f.h.log.Error("ws: reading a log", "log", f.log.Name(), "err", err)
			}
			return errors.Is(err, io.EOF)
		}
		last, _ := b.encode(f.field, f.name, 0)
		f.mu.Lock()
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
			s.c.deliver(s, b.frame, n, id, ended, inline)
		}
		clear(b.subs) // let departed subscriptions be collected
		if ended || n < cap(b.events) {
			return ended
		}
	}
}

// join makes s current if its cursor is at the head, and reports whether
// it did. An ended feed takes no one.
func (f *feed) join(s *sub) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if s.cursor == f.head && !f.ended {
		f.current = append(f.current, s)
		return true
	}
	return false
}

// leave takes s out of the current subscriptions.
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

// batchBuf is what one round of reading and encoding a batch needs.
type batchBuf struct {
	events  []sluice.Event
	scratch []byte // where the log puts events back together
	payload []byte // one event's JSON, before its frame header
	frame   []byte // the batch, encoded as frames
	subs    []*sub // the subscriptions a delivery writes the frame to
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

// encode puts b.events into b.frame as one text frame each, up to and
// including the first that brings the frames to maxBytes (0: no bound),
// and returns the last event encoded and how many were.
func (b *batchBuf) encode(field, name string, maxBytes int) (sluice.Event, int) {
	b.frame = b.frame[:0]
	for i := range b.events {
		ev := &b.events[i]
		b.payload = appendEvent(b.payload[:0], field, name, ev)
		b.frame = appendFrame(b.frame, ws.OpText, b.payload)
		if maxBytes > 0 && len(b.frame) >= maxBytes {
			return *ev, i + 1
		}
	}
	return b.events[len(b.events)-1], len(b.events)
}

// put returns b to the pool, unless a batch grew it past what is worth
// keeping.
func (b *batchBuf) put() {
	if cap(b.frame) > 256<<10 || cap(b.scratch) > 256<<10 || cap(b.payload) > 256<<10 {
		return
	}
	clear(b.events[:cap(b.events)]) // no event data kept alive from the pool
	b.events = b.events[:0]
	batchPool.Put(b)
}
