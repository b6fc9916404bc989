package hub

import (
	"github.com/sluice-dev/sluice"
	"github.com/sluice-dev/sluice/internal/fanout"
	"github.com/sluice-dev/sluice/sse"
)

// feed is one log and the connections reading it: a fanout.Feed, which
// does the delivering, with SSE as its wire form.
type feed struct {
	fanout.Feed[*sub]
	hub  *Hub
	refs int // connections attached, current or catching up; under hub.mu
}

// newFeed starts the feed of l; the caller holds h.mu and records it.
func newFeed(h *Hub, l sluice.Log) *feed {
	f := &feed{hub: h}
	f.Start(l, f, &h.fan)
	return f
}

// AppendEvent encodes ev as an SSE event: the same bytes for every
// connection, so a batch is encoded once.
func (f *feed) AppendEvent(b *fanout.Batch, ev *sluice.Event) {
	b.Frame = sse.AppendEvent(b.Frame, ev.ID, ev.Name, ev.Data)
}

// Failed ends the connections that were current when the log could not be
// read (its store is unreachable, or the log is gone) with an error event;
// those catching up meet the error themselves, reading or joining; and a
// connection attached from now on gets a new feed, which tries the log
// afresh.
func (f *feed) Failed(current []*sub, err error) {
	h := f.hub
	h.mu.Lock()
	if h.feeds[f.Log().Name()] == f {
		delete(h.feeds, f.Log().Name())
	}
	h.mu.Unlock()
	h.log.Warn("hub: a stream's log cannot be read; its readers are told so", "log", f.Log().Name(), "readers", len(current), "err", err)
	for _, s := range current {
		if !s.catching.Load() { // else its catch-up meets the error
			s.fail(err)
		}
	}
}
