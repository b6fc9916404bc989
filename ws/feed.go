package ws

import (
	"github.com/gobwas/ws"

	"github.com/sluice-dev/sluice"
	"github.com/sluice-dev/sluice/internal/fanout"
)

// feed is one log and the subscriptions that follow it, on every
// connection of the handler: a fanout.Feed (the core the SSE hub shares;
// see internal/fanout), with WebSocket frames as its wire form. A
// subscription whose connection cannot take a write at once leaves the
// current ones and is caught up from the log by its connection's flusher
// (see conn.flush). The log is the buffer.
type feed struct {
	fanout.Feed[*sub]
	h     *Handler
	field string // "stream" or "topic": the frame field that names the log
	name  string
	refs  int // subscriptions following it; under h.mu
}

// newFeed starts the feed of l; the caller holds h.mu and records it.
func newFeed(h *Handler, l sluice.Log, field, name string) *feed {
	f := &feed{h: h, field: field, name: name}
	f.Start(l, f, &h.fan)
	return f
}

// AppendEvent encodes ev as one text frame: a server frame holds nothing
// of the connection it goes to, so it is the same bytes for every
// subscription, and a batch is encoded once.
func (f *feed) AppendEvent(b *fanout.Batch, ev *sluice.Event) {
	b.Spare = appendEvent(b.Spare[:0], f.field, f.name, ev)
	b.Frame = appendFrame(b.Frame, ws.OpText, b.Spare)
}

// Failed ends the subscriptions that were current when the log could not
// be read (its store is unreachable, or the log is gone) with an error
// frame, as a subscription catching up that meets the error ends; and a
// subscription made from now on gets a new feed, which tries the log
// afresh.
func (f *feed) Failed(current []*sub, err error) {
	h := f.h
	h.mu.Lock()
	if h.feeds[f.Log().Name()] == f {
		delete(h.feeds, f.Log().Name())
	}
	h.mu.Unlock()
	h.log.Warn("ws: a log cannot be read; its subscriptions are told so", "log", f.Log().Name(), "subscriptions", len(current), "err", err)
	for _, s := range current {
		s.c.failSub(s, err)
	}
}
