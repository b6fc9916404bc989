package ws

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/coder/websocket"
)

// errSlow is what push returns when the send buffer stayed full too long.
var errSlow = errors.New("ws: send buffer full")

// errQueueClosed is what push returns once the writer has stopped.
var errQueueClosed = errors.New("ws: connection closing")

// closeRequest asks the writer to close the connection.
type closeRequest struct {
	code   websocket.StatusCode
	reason string
	now    bool // drop what is queued instead of sending it first
}

// sendQueue holds the frames of one connection until its writer sends
// them. It is bounded in bytes: frames queued plus frames being written stay
// within max (a single frame larger than max is let through alone, or it
// could never be sent). Producers wait for room up to a timeout; the writer
// takes everything queued at once, so frames that pile up while it writes
// go out back to back.
type sendQueue struct {
	max     int
	timeout time.Duration

	mu      sync.Mutex
	frames  [][]byte
	bytes   int           // queued and in flight
	wake    chan struct{} // cap 1: there is work for the writer
	room    chan struct{} // closed and replaced when bytes shrink, if waited on
	waiting bool
	close   *closeRequest
	stopped bool // the writer is gone; pushes fail
}

func newSendQueue(max int, timeout time.Duration) *sendQueue {
	return &sendQueue{max: max, timeout: timeout, wake: make(chan struct{}, 1), room: make(chan struct{})}
}

// push queues frame, waiting up to q.timeout for room. It fails with errSlow
// when no room came in time, with ctx's error when ctx ends first, and with
// errQueueClosed when the connection is closing.
func (q *sendQueue) push(ctx context.Context, frame []byte) error {
	var timer *time.Timer
	for {
		q.mu.Lock()
		if q.stopped || (q.close != nil && q.close.now) {
			q.mu.Unlock()
			return errQueueClosed
		}
		if q.bytes == 0 || q.bytes+len(frame) <= q.max {
			q.frames = append(q.frames, frame)
			q.bytes += len(frame)
			q.mu.Unlock()
			q.signal()
			if timer != nil {
				timer.Stop()
			}
			return nil
		}
		room := q.room
		q.waiting = true
		q.mu.Unlock()

		if timer == nil {
			timer = time.NewTimer(q.timeout)
		}
		select {
		case <-room:
		case <-timer.C:
			return errSlow
		case <-ctx.Done():
			timer.Stop()
			return ctx.Err()
		}
	}
}

func (q *sendQueue) signal() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// take returns every queued frame and any close request. The frames stay
// counted until release.
func (q *sendQueue) take(into [][]byte) ([][]byte, *closeRequest) {
	q.mu.Lock()
	defer q.mu.Unlock()
	into = append(into[:0], q.frames...)
	clear(q.frames)
	q.frames = q.frames[:0]
	if cap(q.frames) > 1024 {
		q.frames = nil // a burst grew it; let it go
	}
	return into, q.close
}

// release uncounts n bytes that were written, and wakes waiting producers.
func (q *sendQueue) release(n int) {
	q.mu.Lock()
	q.bytes -= n
	q.wakeProducers()
	q.mu.Unlock()
}

// requestClose asks the writer to close the connection, after sending what
// is queued unless now is set. The first request wins, but a request to
// close now overrides one to close after sending.
func (q *sendQueue) requestClose(code websocket.StatusCode, reason string, now bool) {
	q.mu.Lock()
	if q.close == nil || (now && !q.close.now) {
		q.close = &closeRequest{code: code, reason: reason, now: now}
		if now {
			q.bytes -= sumLen(q.frames)
			clear(q.frames)
			q.frames = q.frames[:0]
		}
	}
	q.wakeProducers()
	q.mu.Unlock()
	q.signal()
}

// stop makes every push fail from now on.
func (q *sendQueue) stop() {
	q.mu.Lock()
	q.stopped = true
	q.wakeProducers()
	q.mu.Unlock()
}

// wakeProducers lets pushes waiting for room look again. q.mu is held.
func (q *sendQueue) wakeProducers() {
	if q.waiting {
		close(q.room)
		q.room = make(chan struct{})
		q.waiting = false
	}
}

func sumLen(frames [][]byte) int {
	n := 0
	for _, f := range frames {
		n += len(f)
	}
	return n
}
