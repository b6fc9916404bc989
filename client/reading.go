package client

import (
	"context"
	"errors"
	"io"
	"sync"

	"github.com/sluice-dev/sluice/sse"
)

// reading is what a Stream and a Subscription share: the one range over
// their events, which owns the follower while it runs, and their closing,
// which may come from any goroutine.
type reading struct {
	f      *follower
	cancel context.CancelFunc // ends the context that bounds the stream

	mu      sync.Mutex
	lastID  string // of the last event handed to the caller
	ranging bool
	closed  bool
}

// begin marks the start of the range; false if there was one, or the
// stream is closed.
func (r *reading) begin() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ranging || r.closed {
		return false
	}
	r.ranging = true
	return true
}

// end closes the stream when its range ends.
func (r *reading) end() {
	r.mu.Lock()
	r.closed = true
	r.mu.Unlock()
	r.cancel()
	r.f.close()
}

// close closes the stream from any goroutine. A range under way sees its
// context end, and closes the follower itself.
func (r *reading) close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return
	}
	r.closed = true
	r.cancel()
	if !r.ranging {
		r.f.close()
	}
}

func (r *reading) isClosed() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.closed
}

func (r *reading) last() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.lastID
}

func (r *reading) setLast(id string) {
	r.mu.Lock()
	r.lastID = id
	r.mu.Unlock()
}

// each is the one range over the events, for Stream.Deltas and
// Subscription.Events: it hands take every event in order, each marked
// read first, until take returns false (done: no error) or the follower
// ends (io.EOF: no error). Any other error is returned, unless the range
// was closed from outside, which ends it quietly (nil). It does nothing
// (nil) for a second range or a closed one, and closes the stream when it
// returns.
func (r *reading) each(take func(sse.Event) bool) error {
	if !r.begin() {
		return nil
	}
	defer r.end()
	for {
		ev, err := r.f.next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			if r.isClosed() {
				return nil
			}
			return err
		}
		r.setLast(ev.ID)
		if !take(ev) {
			return nil
		}
	}
}
