package ws

import (
	"bufio"
	"io"
	"slices"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/gobwas/ws"
)

// readState is what a connection keeps of its reading between turns: no
// buffer while idle, only a message whose fragments have not all come.
type readState struct {
	leftover   []byte    // bytes that came with the handshake, read before the socket's
	op         ws.OpCode // the data message being put together
	msg        []byte
	fragmented bool
}

// turn is what one read turn needs, from a pool: an idle connection holds
// no read buffer.
type turn struct {
	br  *bufio.Reader
	src prefixReader
	hdr [ws.MaxHeaderSize - 2]byte
	ctl [ws.MaxControlFramePayloadSize]byte
}

var turnPool = sync.Pool{New: func() any {
	t := &turn{}
	t.br = bufio.NewReaderSize(&t.src, 4096)
	return t
}}

// prefixReader reads pre, then r.
type prefixReader struct {
	pre []byte
	r   io.Reader
}

func (p *prefixReader) Read(b []byte) (int, error) {
	if len(p.pre) > 0 {
		n := copy(b, p.pre)
		p.pre = p.pre[n:]
		return n, nil
	}
	return p.r.Read(b)
}

// readTurn reads the frames the client has sent and carries out its
// messages. With the poller (poll set) it runs when the socket has bytes
// to read, and returns, re-arming the poller, once it has read them as
// whole frames; a frame once begun must come whole within the write
// timeout. Without the poller it reads until the connection ends.
func (c *conn) readTurn(poll bool) {
	t := turnPool.Get().(*turn)
	t.src = prefixReader{pre: c.rd.leftover, r: c.nc.Conn}
	c.rd.leftover = nil
	t.br.Reset(&t.src)
	defer func() {
		t.src = prefixReader{}
		t.br.Reset(&t.src)
		turnPool.Put(t)
	}()
	for first := true; ; first = false {
		if !poll {
			_ = c.nc.SetReadDeadline(time.Time{})
			if _, err := t.br.Peek(1); err != nil {
				c.destroy()
				return
			}
		} else if !first && t.br.Buffered() == 0 && len(t.src.pre) == 0 {
			break
		}
		_ = c.nc.SetReadDeadline(time.Now().Add(c.h.opts.WriteTimeout))
		if !c.readFrame(t) {
			return
		}
	}
	c.reading.Store(false)
	c.h.poll.Rearm(&c.nc)
}

// readFrame reads one frame and acts on it; it reports false when nothing
// more is to be read from the connection.
func (c *conn) readFrame(t *turn) bool {
	h, err := ws.ReadHeaderBuffer(t.br, t.hdr[:])
	if err != nil {
		c.destroy()
		return false
	}
	c.wmu.Lock()
	closing := c.closing
	c.wmu.Unlock()
	state := ws.StateServerSide
	if c.rd.fragmented {
		state |= ws.StateFragmented
	}
	if closing {
		// Fragments are no longer put together, so only what reading on
		// needs is checked.
		if !h.Masked || (h.OpCode.IsControl() && (h.Length > ws.MaxControlFramePayloadSize || !h.Fin)) {
			c.destroy()
			return false
		}
	} else if err := ws.CheckHeader(h, state); err != nil {
		c.failConnection(ws.StatusProtocolError, err.Error())
		return false
	}
	if h.OpCode.IsControl() {
		p := t.ctl[:h.Length]
		if _, err := io.ReadFull(t.br, p); err != nil {
			c.destroy()
			return false
		}
		ws.Cipher(p, h.Mask, 0)
		return c.control(h.OpCode, p)
	}
	if closing { // only the client's close frame matters now
		return c.skip(t, h.Length)
	}
	if h.OpCode != ws.OpContinuation {
		c.rd.op, c.rd.msg = h.OpCode, nil
	}
	if int64(len(c.rd.msg))+h.Length > c.h.opts.MaxMessageBytes {
		c.rd.msg, c.rd.fragmented = nil, false
		c.requestClose(ws.StatusMessageTooBig, "message too big: the most is "+strconv.FormatInt(c.h.opts.MaxMessageBytes, 10)+" bytes", false)
		return c.skip(t, h.Length) // on to the client's close frame
	}
	start := len(c.rd.msg)
	c.rd.msg = slices.Grow(c.rd.msg, int(h.Length))[:start+int(h.Length)]
	if _, err := io.ReadFull(t.br, c.rd.msg[start:]); err != nil {
		c.destroy()
		return false
	}
	ws.Cipher(c.rd.msg[start:], h.Mask, 0)
	if c.rd.fragmented = !h.Fin; c.rd.fragmented {
		return true
	}
	msg, op := c.rd.msg, c.rd.op
	c.rd.msg = nil
	if op == ws.OpText && !utf8.Valid(msg) {
		c.failConnection(ws.StatusInvalidFramePayloadData, "a text message that is not UTF-8")
		return false
	}
	if !c.waitRoom() {
		return true
	}
	if op != ws.OpText {
		c.fail(nil, invalid("", "invalid_frame", "Messages must be JSON text frames."))
		return true
	}
	c.handle(msg)
	return true
}

// skip reads past n bytes of payload.
func (c *conn) skip(t *turn, n int64) bool {
	if _, err := io.CopyN(io.Discard, t.br, n); err != nil {
		c.destroy()
		return false
	}
	return true
}

// control acts on a control frame with payload p.
func (c *conn) control(op ws.OpCode, p []byte) bool {
	switch op {
	case ws.OpPing:
		pong := appendFrame(nil, ws.OpPong, p)
		c.wmu.Lock()
		c.queueLocked(pong)
		c.wmu.Unlock()
	case ws.OpPong:
		c.lastPong.Store(time.Now().UnixNano())
	case ws.OpClose:
		code, reason := ws.ParseCloseFrameDataUnsafe(p)
		if len(p) == 1 {
			c.failConnection(ws.StatusProtocolError, "a close frame of one byte")
			return false
		}
		if len(p) >= 2 {
			if err := ws.CheckCloseFrameData(code, reason); err != nil {
				c.failConnection(ws.StatusProtocolError, err.Error())
				return false
			}
		}
		c.wmu.Lock()
		c.peerClose = true
		sent := c.closeSent
		c.wmu.Unlock()
		if sent {
			c.destroy()
			return false
		}
		// Answered with its own code (RFC 6455 5.5.1); once the answer is
		// written the flusher closes the socket.
		c.requestClose(code, "", true)
		return false
	}
	return true
}

// failConnection closes the connection for a protocol violation (RFC 6455
// 7.1.7): a close frame with code and reason, then the socket, without
// waiting for the client's answer, which could not be read.
func (c *conn) failConnection(code ws.StatusCode, reason string) {
	c.wmu.Lock()
	c.peerClose = true // nothing more is read: do not wait for it
	c.wmu.Unlock()
	c.requestClose(code, reason, true)
}
