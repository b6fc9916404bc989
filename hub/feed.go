package hub

import (
	"context"
	"errors"
	"io"
	"sync"

	"github.com/sluice-dev/sluice"
	"github.com/sluice-dev/sluice/sse"
)

// batch is the most events one pump round or catch-up step carries.
const batch = 64

// feed is one log and the connections reading it. Its pump is the only
// reader of new events for connections that are up to date ("current"):
// it encodes each batch once and writes the same bytes to all of them.
type feed struct {
	hub    *Hub
	log    sluice.Log
	ctx    context.Context
	cancel context.CancelFunc

	mu      sync.Mutex
	head    string // ID of the newest event the pump has delivered
	ended   bool   // the pump has delivered the log's last event
	current []*sub // connections whose cursor is head

	refs int // connections attached, current or catching up; under hub.mu
}

func newFeed(h *Hub, l sluice.Log) *feed {
	f := &feed{hub: h, log: l}
	f.ctx, f.cancel = context.WithCancel(context.Background())
	// The pump starts from the log's newest event: whoever attaches catches
	// up to it by itself.
	f.head, _, _ = l.Last(f.ctx)
	h.wg.Add(1)
	go f.pump()
	return f
}

func (f *feed) stop() { f.cancel() }

func (f *feed) pump() {
	defer f.hub.wg.Done()
	events := make([]sluice.Event, 0, batch)
	frame := make([]byte, 0, 4096)
	rd := newReader(f.log)
	var subs []*sub
	for {
		f.mu.Lock()
		head := f.head
		f.mu.Unlock()
		var err error
		events, err = rd.read(f.ctx, head, events)
		if n := len(events); n > 0 {
			frame = frame[:0]
			for i := range events {
				ev := &events[i]
				frame = sse.AppendEvent(frame, ev.ID, ev.Name, ev.Data)
			}
			last := events[n-1]
			f.mu.Lock()
			f.head = last.ID
			f.ended = last.End != sluice.EndNone
			subs = append(subs[:0], f.current...)
			if f.ended {
				f.current = nil
			}
			f.mu.Unlock()
			for _, s := range subs {
				s.deliver(frame, last.ID, f.ended)
			}
			clear(subs) // let departed connections be collected
		}
		switch {
		case err == nil:
		case errors.Is(err, io.EOF):
			f.mu.Lock()
			f.ended = true
			f.mu.Unlock()
			return
		default: // stopped: no connection is left
			return
		}
	}
}

// join makes s current if its cursor is at the head, and reports the head
// otherwise, which s must reach first. An ended feed takes no one.
func (f *feed) join(s *sub) (joined bool, head string, ended bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if s.cursor == f.head && !f.ended {
		f.current = append(f.current, s)
		return true, f.head, false
	}
	return false, f.head, f.ended
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

// scratchReader is a log that can hand back events in the reader's own
// scratch space rather than new memory (memory.Log does): the hub is done
// with every batch it reads once it has encoded it.
type scratchReader interface {
	ReadScratch(ctx context.Context, after string, buf []sluice.Event, scratch []byte) ([]sluice.Event, []byte, error)
}

// reader reads a log into its scratch space when the log allows it. The
// events of a read are valid until the next.
type reader struct {
	log     sluice.Log
	sr      scratchReader // nil: the log reads into memory of its own
	scratch []byte
}

func newReader(l sluice.Log) *reader {
	sr, _ := l.(scratchReader)
	return &reader{log: l, sr: sr}
}

func (r *reader) read(ctx context.Context, after string, buf []sluice.Event) ([]sluice.Event, error) {
	if r.sr == nil {
		return r.log.Read(ctx, after, buf)
	}
	var err error
	buf, r.scratch, err = r.sr.ReadScratch(ctx, after, buf, r.scratch)
	return buf, err
}
