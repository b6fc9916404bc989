// Package sockio writes to and watches many sockets without a goroutine
// per socket, for the transports that fan logs out to them (the SSE hub and
// the WebSocket handler): a write that never waits for the socket to drain
// (Conn.WriteNow), and an epoll set of a transport's own that reports
// which sockets have bytes to read or have been hung up on (Poller). It
// sits beside the transports in the flow request → model → log → reader →
// transport → wire, and imports nothing of the project.
package sockio

import (
	"errors"
	"net"
	"sync/atomic"
	"syscall"
	"time"
)

// FastWrite is how long WriteFast waits for a socket to take a write: long
// enough for a client that keeps up, short enough that one slow client
// never holds up a writer that serves many.
const FastWrite = 5 * time.Millisecond

// ErrWouldBlock is a write the kernel could not take whole at once (see
// Conn.WriteNow).
var ErrWouldBlock = errors.New("sockio: the socket is full")

// Conn is a connection that can be written without waiting, and watched
// by a Poller. Init it with the connection; it must not be copied after.
// Its write methods are to be called by one goroutine at a time (the
// caller's write lock); the net.Conn's own methods as net.Conn allows.
type Conn struct {
	net.Conn
	raw      syscall.RawConn // the socket; nil when it has none (TLS)
	w        rawWriter       // WriteNow's state
	watchKey atomic.Uint64   // the socket's key in a Poller, or 0
}

// Init makes c the connection nc.
func (c *Conn) Init(nc net.Conn) {
	c.Conn = nc
	if sc, ok := nc.(syscall.Conn); ok {
		c.raw, _ = sc.SyscallConn()
	}
}

// HasSocket reports whether c has a socket of its own, which WriteNow
// writes without waiting and a Poller can watch (a TLS connection has
// not).
func (c *Conn) HasSocket() bool { return c.raw != nil }

// WriteFast writes b, waiting at most FastWrite; it leaves that deadline
// on the connection.
func (c *Conn) WriteFast(b []byte) (int, error) {
	_ = c.SetWriteDeadline(time.Now().Add(FastWrite))
	return c.Write(b)
}
