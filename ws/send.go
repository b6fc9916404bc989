package ws

import (
	"errors"
	"io"
	"os"
	"strings"
	"time"

	"github.com/gobwas/ws"

	"github.com/sluice-dev/sluice"
	"github.com/sluice-dev/sluice/internal/fanout"
	"github.com/sluice-dev/sluice/internal/sockio"
)

// closeLinger is how long a connection that sent its close frame waits for
// the client's before it closes the socket anyway (RFC 6455 7.1.1: the
// server closes the TCP connection once both close frames have passed).
const closeLinger = 5 * time.Second

func (c *conn) touch() { c.lastWrite.Store(time.Now().UnixNano()) }

// reply sends a frame that answers a client message, after what is queued.
func (c *conn) reply(r reply) {
	c.wmu.Lock()
	c.queueLocked(r.frame())
	c.wmu.Unlock()
}

// queueLocked writes whole frames b now, or queues them behind what waits;
// it reports false, dropping b, once the connection is closing. c.wmu is
// held.
func (c *conn) queueLocked(b []byte) bool {
	if c.closing || c.closed {
		return false
	}
	if c.blocked {
		c.out = append(c.out, b...)
		return true
	}
	c.writeLocked(b)
	return true
}

// writeLocked writes b, whole frames, without waiting on the socket (a
// connection with no socket of its own waits up to sockio.FastWrite): what
// the kernel does not take at once is left to the flusher, which owns the
// socket from then on. c.wmu is held and c is not blocked (so nothing
// waits to go out before b).
func (c *conn) writeLocked(b []byte) {
	n, err := c.nc.WriteNow(b)
	if n > 0 {
		c.touch()
	}
	switch {
	case err == nil:
	case errors.Is(err, sockio.ErrWouldBlock), errors.Is(err, os.ErrDeadlineExceeded):
		c.out = append(c.out[:0], b[n:]...)
		c.partial = frameTail(b, 0, n)
		c.startFlush()
	default: // the client has gone
		c.closed = true
		c.destroyLater()
	}
}

// destroyLater destroys c in a goroutine of its own: destroy may wait for
// generations, and its caller may be the one that appends to one.
func (c *conn) destroyLater() {
	c.h.wg.Add(1)
	go func() {
		defer c.h.wg.Done()
		c.destroy()
	}()
}

// startFlush hands the socket to a flusher goroutine, unless one has it.
// c.wmu is held.
func (c *conn) startFlush() {
	if c.blocked {
		return
	}
	c.blocked = true
	c.h.wg.Add(1)
	go c.flush()
}

// Deliver writes a feed's batch for s (see fanout.Sub).
func (s *sub) Deliver(frame []byte, n int, id string, ended, inline bool) {
	s.c.deliver(s, frame, n, id, ended, inline)
}

// deliver writes a feed's batch, ending at event id, for subscription s.
// When the connection's socket belongs to the flusher (it is full, or
// another subscription is catching up), s leaves the feed instead and the
// flusher catches it up from its cursor: the feed never waits on one
// connection.
func (c *conn) deliver(s *sub, frame []byte, n int, id string, ended, inline bool) {
	c.wmu.Lock()
	if !s.live || s.lag || c.closing || c.closed {
		c.wmu.Unlock()
		return
	}
	if c.blocked {
		s.lag = true
		c.lagging = append(c.lagging, s)
		c.wmu.Unlock()
		s.feed.Leave(s)
		return
	}
	s.cursor = id
	if ended {
		s.ended, s.live = true, false
	}
	c.writeLocked(frame)
	c.wmu.Unlock()
	c.h.opts.Observer.Delivered(n)
	if ended {
		c.release(s)
	}
}

// flush owns the socket while the client does not take what is written at
// once, or while a subscription catches up: it writes what is queued,
// waiting for the client, then catches lagging subscriptions up from their
// logs, one batch each in turn, until each has reached its feed's head and
// rejoined it; then it hands the socket back. A client that takes nothing
// for the write timeout is cut off (1008). After a close frame it waits for
// the client's (closeLinger at most) and closes the socket.
func (c *conn) flush() {
	defer c.h.wg.Done()
	var b *fanout.Batch
	defer func() {
		if b != nil {
			b.Put()
		}
	}()
	for {
		c.wmu.Lock()
		switch {
		case c.closed:
			c.blocked = false
			c.wmu.Unlock()
			return

		case len(c.out) > 0:
			buf, partial, closing := c.out, c.partial, c.closing
			c.out, c.partial = nil, 0
			c.wakeRoom()
			c.wmu.Unlock()
			n, err := c.writeBlocking(buf)
			if err == nil {
				continue
			}
			if !errors.Is(err, os.ErrDeadlineExceeded) || closing {
				c.destroy()
				return
			}
			// The client took nothing for the write timeout: what it has
			// not taken is dropped but for the end of a frame begun, which
			// the close frame must follow.
			c.wmu.Lock()
			c.out = append(buf[n:n:n], buf[n:n+frameTail(buf, partial, n)]...)
			c.partial = len(c.out)
			c.wmu.Unlock()
			c.cutOff()

		case c.closing:
			c.closeSent = true
			peer := c.peerClose
			if !peer {
				c.linger = time.AfterFunc(closeLinger, c.destroy)
			}
			c.blocked = false
			c.wmu.Unlock()
			if peer {
				c.destroy()
			}
			return

		case len(c.lagging) > 0:
			s := c.lagging[0]
			copy(c.lagging, c.lagging[1:])
			c.lagging[len(c.lagging)-1] = s
			cursor := s.cursor
			c.wmu.Unlock()
			if b == nil {
				b = fanout.GetBatch()
			}
			c.catchUp(s, cursor, b)

		default:
			c.blocked = false
			c.wmu.Unlock()
			return
		}
	}
}

// catchUp takes one step for lagging subscription s, whose cursor was
// cursor: it queues the next events of its log (up to a send buffer's
// worth), or, when none follow, has it rejoin its feed. (Why it is not the
// hub's catch-up: see hub's sub.catchUp.)
func (c *conn) catchUp(s *sub, cursor string, b *fanout.Batch) {
	l := s.feed.Log()
	// The feed's first look at its log is a store call: made here, before
	// c.wmu, it holds up none of the connection's other subscriptions.
	s.feed.Begin()
	err := b.Read(c.ctx, l, cursor)
	if len(b.Events) == 0 && err == nil {
		c.wmu.Lock()
		if s.live && s.lag {
			joined, _, jerr := s.feed.Join(s, s.cursor)
			if joined {
				c.unlag(s)
				c.wmu.Unlock()
				return
			}
			if jerr != nil { // the feed has failed, and logged why
				c.wmu.Unlock()
				c.failSub(s, jerr)
				return
			}
		}
		c.wmu.Unlock()
		// Nothing follows the cursor, yet it is not the head: the feed is
		// about to deliver, or the cursor is spelt otherwise.
		var now string
		var respelt bool
		if now, respelt, err = b.Respell(c.ctx, l, cursor); respelt {
			c.wmu.Lock()
			if s.cursor == cursor {
				s.cursor = now
			}
			c.wmu.Unlock()
			return
		}
		if len(b.Events) == 0 && err == nil {
			s.wait.Wait() // the feed is about to deliver (or the store cannot serve it yet)
			return
		}
	}
	if len(b.Events) == 0 {
		switch {
		case err == nil, c.ctx.Err() != nil:
		case errors.Is(err, io.EOF):
			c.endSub(s, nil) // it had read the whole ended log
		default:
			c.h.log.Error("ws: read failed", "request_id", c.requestID, "log", l.Name(), "err", err)
			c.failSub(s, err)
		}
		return
	}
	s.wait.Reset()
	last, n := b.Encode(s.feed, "", c.h.opts.SendBuffer)
	ended := last.End != sluice.EndNone
	c.wmu.Lock()
	if !s.live || !s.lag || s.cursor != cursor || c.closing {
		c.wmu.Unlock()
		return
	}
	s.cursor = strings.Clone(last.ID) // it outlives the batch's scratch space
	if ended {
		s.ended, s.live = true, false
		c.unlag(s)
	}
	c.out = append(c.out, b.Frame...)
	c.wmu.Unlock()
	c.h.opts.Observer.Delivered(n)
	if ended {
		c.release(s)
	}
}

// writeBlocking writes b whole, waiting for the client. It fails with
// os.ErrDeadlineExceeded once the client has taken nothing for the write
// timeout; a client that takes some is waited for again.
func (c *conn) writeBlocking(b []byte) (int, error) {
	written := 0
	for written < len(b) {
		_ = c.nc.SetWriteDeadline(time.Now().Add(c.h.opts.WriteTimeout))
		n, err := c.nc.Write(b[written:])
		written += n
		if n > 0 {
			c.touch()
		}
		if err != nil && !(n > 0 && errors.Is(err, os.ErrDeadlineExceeded)) {
			return written, err
		}
	}
	// Raw writes check the deadline before they try (see
	// sockio.Conn.WriteNow).
	_ = c.nc.SetWriteDeadline(time.Time{})
	return written, nil
}

// cutOff closes the connection of a client that let its socket stay full
// for the write timeout.
func (c *conn) cutOff() {
	c.h.cutoffs.Add(1)
	c.h.opts.Observer.CutSlow(CutSendBufferFull)
	c.h.log.Info("ws: cut off a slow reader", "request_id", c.requestID, "buffer_bytes", c.h.opts.SendBuffer, "timeout", c.h.opts.WriteTimeout)
	c.requestClose(ws.StatusPolicyViolation,
		"too slow: send buffer full for "+c.h.opts.WriteTimeout.String()+"; reconnect and resume from the last event IDs", true)
}

// requestClose queues a close frame with code and reason, after what is
// queued unless now is set (then only the end of a frame begun goes
// first). Nothing is queued after it; the first request wins.
func (c *conn) requestClose(code ws.StatusCode, reason string, now bool) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.closing || c.closed {
		return
	}
	c.closing = true
	if now {
		c.out = c.out[:c.partial]
		for _, s := range c.lagging {
			s.lag = false
		}
		c.lagging = nil
	}
	c.out = append(c.out, closeFrame(code, reason)...)
	c.wakeRoom()
	c.startFlush()
}

// waitRoom holds a client message back until what is queued for the
// client fits in its send buffer, so that a client that sends requests
// without reading the answers cannot grow it; the flusher cuts off one
// that takes nothing for the write timeout. It reports false once the
// connection is closing.
func (c *conn) waitRoom() bool {
	for {
		c.wmu.Lock()
		if c.closing || c.closed {
			c.wmu.Unlock()
			return false
		}
		if len(c.out) <= c.h.opts.SendBuffer {
			c.wmu.Unlock()
			return true
		}
		if c.room == nil {
			c.room = make(chan struct{})
		}
		room := c.room
		c.wmu.Unlock()
		<-room
	}
}

// wakeRoom wakes waitRoom. c.wmu is held.
func (c *conn) wakeRoom() {
	if c.room != nil {
		close(c.room)
		c.room = nil
	}
}

// heartbeat pings a connection that has been sent nothing for a heartbeat,
// and closes one whose ping has gone unanswered for the write timeout.
func (c *conn) heartbeat(now int64) {
	if sent := c.pingSent.Load(); sent != 0 && c.lastPong.Load() < sent {
		if now-sent > int64(c.h.opts.WriteTimeout) {
			c.h.log.Debug("ws: closing a connection whose ping went unanswered", "timeout", c.h.opts.WriteTimeout)
			c.wmu.Lock()
			if !c.blocked && !c.closing && !c.closed {
				_, _ = c.nc.WriteNow(closeFrame(ws.StatusPolicyViolation, "ping not answered within "+c.h.opts.WriteTimeout.String()))
			}
			c.closed = true
			c.wmu.Unlock()
			c.destroyLater()
		}
		return
	}
	if now-c.lastWrite.Load() < int64(c.h.opts.Heartbeat) {
		return
	}
	c.wmu.Lock()
	sent := c.queueLocked(pingFrame)
	c.wmu.Unlock()
	if sent {
		c.pingSent.Store(now)
	}
}
