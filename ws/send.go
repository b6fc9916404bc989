package ws

import (
	"errors"
	"io"
	"os"
	"strings"
	"time"

	"github.com/gobwas/ws"

	"github.com/sluice-dev/sluice"
)

// fastWrite is how long a write may wait on a connection that cannot be
// written without waiting (one with no socket of its own, such as TLS)
// before its rest is left to the flusher.
const fastWrite = 5 * time.Millisecond

// closeLinger is how long a connection that sent its close frame waits for
// the client's before it closes the socket anyway (RFC 6455 7.1.1: the
// server closes the TCP connection once both close frames have passed).
const closeLinger = 5 * time.Second

// errWouldBlock is a write the kernel could not take whole at once (see
// writeNow).
var errWouldBlock = errors.New("ws: the socket is full")

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

// writeLocked writes b, whole frames, without waiting on the socket: what
// the kernel does not take at once is left to the flusher, which owns the
// socket from then on. c.wmu is held and c is not blocked (so nothing
// waits to go out before b).
func (c *conn) writeLocked(b []byte) {
	n, err := c.writeNow(b)
	if n > 0 {
		c.touch()
	}
	switch {
	case err == nil:
	case errors.Is(err, errWouldBlock), errors.Is(err, os.ErrDeadlineExceeded):
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
		s.feed.leave(s)
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
	var b *batchBuf
	defer func() {
		if b != nil {
			b.put()
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
				b = batchPool.Get().(*batchBuf)
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
// worth), or, when none follow, has it rejoin its feed.
func (c *conn) catchUp(s *sub, cursor string, b *batchBuf) {
	l := s.feed.log
	err := b.read(c.ctx, l, cursor)
	if len(b.events) == 0 && err == nil {
		c.wmu.Lock()
		if s.live && s.lag && s.feed.join(s) {
			c.unlag(s)
			c.wmu.Unlock()
			return
		}
		c.wmu.Unlock()
		// Nothing follows the cursor, yet it is not the head. Either the
		// feed is about to deliver, or the cursor stands where the log's
		// newest event does but is spelt otherwise (the ID of a gap event
		// before an empty log's first): then, if still nothing follows it
		// once the newest ID is known, take that spelling, the one the
		// head uses, so that the next join matches.
		now, _, lerr := l.Last(c.ctx)
		if lerr == nil && now != cursor {
			if err = b.read(c.ctx, l, cursor); err == nil && len(b.events) == 0 {
				c.wmu.Lock()
				if s.cursor == cursor {
					s.cursor = now
				}
				c.wmu.Unlock()
				return
			}
		} else {
			time.Sleep(time.Millisecond) // the feed is about to deliver
			return
		}
	}
	if len(b.events) == 0 {
		switch {
		case err == nil, c.ctx.Err() != nil:
		case errors.Is(err, io.EOF):
			c.endSub(s, nil) // it had read the whole ended log
		default:
			c.h.log.Error("ws: read failed", "request_id", c.requestID, "log", l.Name(), "err", err)
			c.reply(errorReply(&request{Stream: streamOf(s), Topic: topicOf(s)}, err))
			c.endSub(s, nil)
		}
		return
	}
	last, n := b.encode(s.field, s.name, c.h.opts.SendBuffer)
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
	c.out = append(c.out, b.frame...)
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
	// Raw writes check the deadline before they try (see writeNow).
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
				_, _ = c.writeNow(closeFrame(ws.StatusPolicyViolation, "ping not answered within "+c.h.opts.WriteTimeout.String()))
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
