package hub

import (
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluice-dev/sluice"
	"github.com/sluice-dev/sluice/internal/fanout"
	"github.com/sluice-dev/sluice/internal/sockio"
	"github.com/sluice-dev/sluice/sse"
)

var (
	pingComment = sse.AppendComment(nil, "ping")
	// drainComment ends a stream at shutdown, after a retry: line (see
	// drainFrame); the client reconnects (to
	// another node) after its retry delay.
	drainComment = sse.AppendComment(nil, DrainMessage)
	// resumeEvent is the last event of a connection that fell too far
	// behind. It has no ID, so the client's Last-Event-ID stays that of the
	// last event it got, which is where it resumes.
	resumeEvent = sse.AppendEvent(nil, "", "sluice.resume",
		[]byte(`{"reason":"slow_reader","message":"This connection fell too far behind the stream; reconnect with Last-Event-ID to resume."}`))
)

// sub is one connection handed to the hub.
type sub struct {
	hub     *Hub
	feed    *feed
	conn    sockio.Conn // written without waiting where it has a socket of its own
	topic   bool        // AttachOptions.Topic
	drain   bool        // Hub.Drain ends it: a topic, or AttachOptions.Drain
	onGone  func()
	onClose func()
	written *atomic.Int64 // AttachOptions.Written, or nil

	wmu       sync.Mutex // serialises writes and guards cursor and pending
	cursor    string     // ID of the last event written
	pending   []byte     // the rest of a write the client did not take at once
	lastWrite atomic.Int64
	closed    atomic.Bool
	ended     bool        // the log's last event was written; under wmu
	lagBudget int         // events a slow connection may still take while catching up; 0: no limit; under wmu
	catching  atomic.Bool // a catch-up goroutine owns it, not the feed's deliveries
}

func (s *sub) touch() { s.lastWrite.Store(time.Now().UnixNano()) }

// wrote counts n bytes written to the connection.
func (s *sub) wrote(n int) {
	if s.written != nil && n > 0 {
		s.written.Add(int64(n))
	}
}

// writeBlocking writes b within the write timeout.
func (s *sub) writeBlocking(b []byte) error {
	_ = s.conn.SetWriteDeadline(time.Now().Add(s.hub.opts.WriteTimeout))
	n, err := s.conn.Write(b)
	s.wrote(n)
	if err == nil {
		s.touch()
	}
	return err
}

// Deliver writes a batch ending at id to a current connection (see
// fanout.Sub). A write the client does not take at once (inline) or
// within sockio.FastWrite (from the pump, which waits that long on one
// connection at most, so that one slow client never holds up the others)
// moves s off the feed's current list; it finishes and catches up on its
// own.
func (s *sub) Deliver(frame []byte, _ int, id string, ended, inline bool) {
	if !s.wmu.TryLock() {
		if s.catching.Load() {
			return // it left the current ones a moment ago; its catch-up reads on
		}
		s.wmu.Lock() // a heartbeat, which does not wait on the socket
	}
	if s.closed.Load() || s.catching.Load() {
		s.wmu.Unlock()
		return
	}
	var n int
	var err error
	if inline {
		n, err = s.conn.WriteNow(frame)
	} else {
		n, err = s.conn.WriteFast(frame)
	}
	s.wrote(n)
	s.cursor = id
	if err == nil {
		s.touch()
		s.ended = ended
		s.wmu.Unlock()
		if ended {
			s.finishFrom(inline, false)
		}
		return
	}
	if !errors.Is(err, os.ErrDeadlineExceeded) && !errors.Is(err, sockio.ErrWouldBlock) {
		s.wmu.Unlock()
		s.finishFrom(inline, true)
		return
	}
	s.pending = append(s.pending[:0], frame[n:]...)
	s.ended = ended
	s.lagBudget = s.hub.opts.MaxLag // it must catch up within this many events
	s.catching.Store(true)
	s.wmu.Unlock()
	s.feed.Leave(s)
	s.hub.wg.Add(1)
	go func() {
		defer s.hub.wg.Done()
		s.catchUp()
	}()
}

// catchUp writes what s has not taken yet (its pending bytes, then the log
// from its cursor up to the feed's head) with the full write timeout, then
// hands s back to the feed's deliveries. It runs in the goroutine of the
// handler that attached s, or in one of its own after a slow write.
//
// It is apart from ws's catch-up (conn.flush) for a real reason: an SSE
// connection carries one log, so it catches up alone, with blocking writes
// and a bound on its lag; a WebSocket connection carries several
// subscriptions that share its socket, so one flusher per connection
// queues their batches in turn behind its replies. What both do alike
// (reading, respelling a cursor, encoding) is fanout.Batch's.
func (s *sub) catchUp() {
	b := fanout.GetBatch()
	defer b.Put()
	var wait fanout.Backoff
	for {
		s.wmu.Lock()
		if s.closed.Load() {
			s.wmu.Unlock()
			return
		}
		if len(s.pending) > 0 {
			err := s.writeBlocking(s.pending)
			s.pending = s.pending[:0]
			if err != nil {
				s.wmu.Unlock()
				s.goneAfter(err)
				return
			}
		}
		if s.ended {
			s.wmu.Unlock()
			s.close()
			return
		}
		joined, head, ferr := s.feed.Join(s, s.cursor)
		if ferr != nil {
			s.wmu.Unlock()
			s.fail(ferr)
			return
		}
		if joined {
			s.lagBudget = 0
			s.catching.Store(false)
			s.wmu.Unlock()
			return
		}
		// Read what is there after the cursor, but never past the head:
		// from the head on, the feed delivers.
		ctx, log := s.feed.Context(), s.feed.Log()
		err := b.Read(ctx, log, s.cursor)
		if len(b.Events) == 0 && err == nil {
			// Nothing follows the cursor, yet it is not the head: the feed
			// is about to deliver, or the cursor is spelt otherwise.
			var now string
			var respelt bool
			if now, respelt, err = b.Respell(ctx, log, s.cursor); respelt {
				s.cursor = now
				s.wmu.Unlock()
				continue
			}
		}
		if len(b.Events) == 0 {
			s.wmu.Unlock()
			if err == nil || errors.Is(err, context.Canceled) {
				// The cursor is ahead of the head: the feed is about to
				// deliver (or the store cannot serve it yet). Look again.
				wait.Wait()
				continue
			}
			if errors.Is(err, io.EOF) {
				s.gone()
			} else {
				s.fail(err)
			}
			return
		}
		wait.Reset()
		last, n := b.Encode(s.feed, head, 0)
		s.cursor = strings.Clone(last.ID) // it outlives the batch's scratch space
		s.ended = last.End != sluice.EndNone
		err = s.writeBlocking(b.Frame)
		if err == nil {
			s.hub.obs.Delivered(n)
		}
		if err == nil && s.lagBudget > 0 && !s.ended {
			if s.lagBudget -= len(b.Events); s.lagBudget <= 0 {
				// It takes data more slowly than the log grows: rather than
				// trail further and further, it is told to come back.
				_ = s.writeBlocking(resumeEvent)
				s.wmu.Unlock()
				s.hub.obs.CutSlow(CutLagging)
				s.close() // not gone: it is to come back, so nothing is cancelled
				return
			}
		}
		s.wmu.Unlock()
		if err != nil {
			s.goneAfter(err)
			return
		}
	}
}

// ping writes a heartbeat to a quiet connection, unless a write is under
// way: that one is proof enough of life.
func (s *sub) ping() {
	if !s.wmu.TryLock() {
		return
	}
	if s.closed.Load() || len(s.pending) > 0 {
		s.wmu.Unlock()
		return
	}
	// Without waiting: a delivery may be waiting for the lock. A socket
	// with no room for a ping has a client that stopped reading; once it
	// has taken nothing for the write timeout, it is dropped.
	n, err := s.conn.WriteNow(pingComment)
	s.wrote(n)
	s.wmu.Unlock()
	switch {
	case err == nil:
		s.touch()
	case !errors.Is(err, sockio.ErrWouldBlock):
		s.gone()
	case time.Since(time.Unix(0, s.lastWrite.Load())) > s.hub.opts.WriteTimeout:
		s.hub.obs.CutSlow(CutWriteTimeout)
		s.gone()
	}
}

// drainFrame is what a connection gets when the server shuts down: a
// fresh, jittered retry: delay, so that the clients of a node that goes away
// come back spread out rather than all at once, and a comment saying why.
func (h *Hub) drainFrame() []byte {
	return append(sse.AppendRetry(nil, Jitter(h.opts.Retry)), drainComment...)
}

// errorFrame is the last event of a connection whose log could not be
// read (see Options.ErrorData), then a retry: delay: the client comes back,
// to this node or another, when the store may answer again.
func (h *Hub) errorFrame(err error) []byte {
	return sse.AppendRetry(sse.AppendEvent(nil, "", "", h.opts.ErrorData(err)), Jitter(h.opts.Retry))
}

// fail ends a connection whose log could not be read with an error event.
// It is not gone: nothing that waits on its client's leaving runs.
// (Its feed logs the failure once, not each of its thousands of readers.)
func (s *sub) fail(err error) {
	s.hub.log.Debug("hub: a stream's log cannot be read", "log", s.feed.Log().Name(), "err", err)
	s.closeWith(s.hub.errorFrame(err))
}

// finishFrom closes the connection after a delivery. Inline, the
// delivering goroutine is the log's writer (a generation), and the
// connection's callbacks may wait for that very writer (a client that left
// cancels its generation, and Cancel waits for it to end): they run in a
// goroutine of their own.
func (s *sub) finishFrom(inline, gone bool) {
	if !inline {
		s.finish(nil, gone)
		return
	}
	s.hub.wg.Add(1)
	go func() {
		defer s.hub.wg.Done()
		s.finish(nil, gone)
	}()
}

// gone handles a client that left (or stopped reading) before the end.
func (s *sub) gone() { s.finish(nil, true) }

// goneAfter is gone after a blocking write failed with err: one that ran
// out of time is a client that took no bytes for the write timeout.
func (s *sub) goneAfter(err error) {
	if errors.Is(err, os.ErrDeadlineExceeded) && !s.closed.Load() {
		s.hub.obs.CutSlow(CutWriteTimeout)
	}
	s.gone()
}

// close ends a connection whose stream is complete.
func (s *sub) close() { s.finish(nil, false) }

// closeWith writes a last comment (best effort, briefly) and closes.
func (s *sub) closeWith(comment []byte) { s.finish(comment, false) }

// finish closes the connection once and forgets it; comment, if any, is
// written first, briefly. It never waits for a catch-up write: one to a
// client that reads nothing holds the lock for up to the write timeout,
// and shutdown must not wait on it (closing the connection makes that
// write fail at once); a delivery holds it for sockio.FastWrite at most.
func (s *sub) finish(comment []byte, gone bool) {
	if s.closed.Swap(true) {
		return
	}
	if comment != nil && s.lockUnlessCatching() {
		if len(s.pending) == 0 {
			_ = s.conn.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
			n, _ := s.conn.Write(comment)
			s.wrote(n)
		}
		s.wmu.Unlock()
	}
	s.hub.hang.Forget(&s.conn)
	s.conn.Close()
	if s.feed != nil {
		s.feed.Leave(s)
		s.hub.remove(s)
	}
	if gone && s.onGone != nil {
		s.onGone()
	}
	if s.onClose != nil {
		s.onClose()
	}
}

// lockUnlessCatching takes wmu, unless a catch-up goroutine, which may hold
// it for the write timeout, owns the connection; it reports whether it did.
func (s *sub) lockUnlessCatching() bool {
	if s.wmu.TryLock() {
		return true
	}
	if s.catching.Load() {
		return false
	}
	s.wmu.Lock()
	return true
}

// responseHead is the HTTP/1.1 head of a hijacked event stream, then the
// retry line. The body is delimited by the connection's close, so no
// chunked encoding is needed and no keep-alive is offered.
func responseHead(h http.Header, retry time.Duration) []byte {
	b := make([]byte, 0, 256)
	b = append(b, "HTTP/1.1 200 OK\r\n"...)
	h.Set("Connection", "close")
	h.Set("Date", time.Now().UTC().Format(http.TimeFormat))
	h.Del("Content-Length")
	var hb headerBuf
	_ = h.Write(&hb)
	b = append(b, hb...)
	b = append(b, "\r\n"...)
	b = sse.AppendRetry(b, retry)
	return b
}

type headerBuf []byte

func (b *headerBuf) Write(p []byte) (int, error) {
	*b = append(*b, p...)
	return len(p), nil
}
