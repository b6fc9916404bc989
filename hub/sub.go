package hub

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/sluice-dev/sluice"
	"github.com/sluice-dev/sluice/sse"
)

// fastWrite is how long the pump waits on one connection's write before it
// leaves that connection to catch up on its own, so that one slow client
// never holds up the others.
const fastWrite = 5 * time.Millisecond

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
	conn    net.Conn
	raw     syscall.RawConn // conn's socket, for writes that must not wait; nil if it has none
	topic   bool            // AttachOptions.Topic
	drain   bool            // Hub.Drain ends it: a topic, or AttachOptions.Drain
	onGone  func()
	onClose func()
	written *atomic.Int64 // AttachOptions.Written, or nil

	wmu       sync.Mutex // serialises writes and guards cursor and pending
	cursor    string     // ID of the last event written
	pending   []byte     // the rest of a write the client did not take at once
	rw        rawWriter  // writeNow's state; under wmu
	lastWrite atomic.Int64
	closed    atomic.Bool
	ended     bool          // the log's last event was written; under wmu
	lagBudget int           // events a slow connection may still take while catching up; 0: no limit; under wmu
	catching  atomic.Bool   // a catch-up goroutine owns it, not the feed's deliveries
	watchKey  atomic.Uint64 // the connection's key in hub.hang, or 0
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

// writeFast writes b, waiting at most fastWrite.
func (s *sub) writeFast(b []byte) (int, error) {
	_ = s.conn.SetWriteDeadline(time.Now().Add(fastWrite))
	return s.conn.Write(b)
}

// errWouldBlock is a write the kernel could not take whole at once (see
// writeNow).
var errWouldBlock = errors.New("hub: the socket is full")

// deliver writes a batch ending at id to a current connection. A write the
// client does not take at once (inline) or within fastWrite moves s off
// the feed's current list; it finishes and catches up on its own.
func (s *sub) deliver(frame []byte, id string, ended, inline bool) {
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
		n, err = s.writeNow(frame)
	} else {
		n, err = s.writeFast(frame)
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
	if !errors.Is(err, os.ErrDeadlineExceeded) && !errors.Is(err, errWouldBlock) {
		s.wmu.Unlock()
		s.finishFrom(inline, true)
		return
	}
	s.pending = append(s.pending[:0], frame[n:]...)
	s.ended = ended
	s.lagBudget = s.hub.opts.MaxLag // it must catch up within this many events
	s.catching.Store(true)
	s.wmu.Unlock()
	s.feed.leave(s)
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
func (s *sub) catchUp() {
	b := batchPool.Get().(*batchBuf)
	defer b.put()
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
		joined, head, ferr := s.feed.join(s)
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
		log := s.feed.log
		err := b.read(s.feed.ctx, log, s.cursor)
		if len(b.events) == 0 && err == nil {
			// Nothing follows the cursor, yet it is not the head. Either the
			// feed is about to deliver, or the cursor stands where the log's
			// newest event does but is spelt otherwise (the ID of a gap
			// event before an empty log's first). In the second case, if
			// still nothing follows it once the newest ID is known, take
			// that spelling, the one the head uses, so that the next join
			// matches. Only this rare path pays for the look.
			if now, _, _ := log.Last(s.feed.ctx); now != s.cursor {
				if err = b.read(s.feed.ctx, log, s.cursor); err == nil && len(b.events) == 0 {
					s.cursor = now
					s.wmu.Unlock()
					continue
				}
			}
		}
		if len(b.events) == 0 {
			s.wmu.Unlock()
			if err == nil || errors.Is(err, context.Canceled) {
				// The cursor is a moment ahead of the head: the feed is
				// about to deliver. Look again.
				time.Sleep(time.Millisecond)
				continue
			}
			if errors.Is(err, io.EOF) {
				s.gone()
			} else {
				s.fail(err)
			}
			return
		}
		last := b.encode(head)
		s.cursor = strings.Clone(last.ID) // it outlives the batch's scratch space
		s.ended = last.End != sluice.EndNone
		err = s.writeBlocking(b.frame)
		if err == nil {
			s.hub.obs.Delivered(b.encoded)
		}
		if err == nil && s.lagBudget > 0 && !s.ended {
			if s.lagBudget -= len(b.events); s.lagBudget <= 0 {
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
	n, err := s.writeNow(pingComment)
	s.wrote(n)
	s.wmu.Unlock()
	switch {
	case err == nil:
		s.touch()
	case !errors.Is(err, errWouldBlock):
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
	s.hub.log.Debug("hub: a stream's log cannot be read", "log", s.feed.log.Name(), "err", err)
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
// write fail at once); a delivery holds it for fastWrite at most.
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
	if s.hub.hang != nil {
		s.hub.hang.forget(s)
	}
	s.conn.Close()
	if s.feed != nil {
		s.feed.leave(s)
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
