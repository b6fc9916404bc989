//go:build unix

package ws

import (
	"errors"
	"os"
	"syscall"
	"time"
)

// writeNow writes b without waiting: what the socket's send buffer cannot
// take at once is left, and reported as errWouldBlock with the bytes that
// were written. A connection that keeps up always has room, so whoever
// delivers never waits on a slow client. A connection with no socket of
// its own (c.raw is nil) is written with a deadline of fastWrite. Call it
// with c.wmu held.
func (c *conn) writeNow(b []byte) (int, error) {
	if c.raw == nil {
		_ = c.nc.SetWriteDeadline(time.Now().Add(fastWrite))
		return c.nc.Write(b)
	}
	w := &c.rw
	if w.fn == nil {
		w.fn = w.write
	}
	w.b, w.n, w.err = b, 0, nil
	err := c.raw.Write(w.fn)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		// The socket still has the deadline of a blocking write, which a
		// raw write checks before it tries; clear it and try again.
		_ = c.nc.SetWriteDeadline(time.Time{})
		err = c.raw.Write(w.fn)
	}
	n, werr := w.n, w.err
	w.b, w.err = nil, nil // keep no frame alive
	switch {
	case err != nil:
		return n, err
	case werr != nil:
		return n, werr
	case n < len(b):
		return n, errWouldBlock
	}
	return n, nil
}

// rawWriter is the state of writeNow's write, which the socket's Write
// calls back: kept with the connection, and its callback made once, so
// that writing an event allocates nothing.
type rawWriter struct {
	fn  func(fd uintptr) bool // write, bound to this rawWriter
	b   []byte                // what to write
	n   int                   // how much of b is written
	err error                 // the write's error, if any
}

// write writes as much of w.b as the socket takes at once.
func (w *rawWriter) write(fd uintptr) bool {
	for w.n < len(w.b) {
		m, err := syscall.Write(int(fd), w.b[w.n:])
		if m > 0 {
			w.n += m
		}
		switch {
		case err == syscall.EINTR:
			continue
		case err == syscall.EAGAIN:
			return true
		case err != nil:
			w.err = err
			return true
		case m == 0:
			return true
		}
	}
	return true // done: never wait for the socket to drain
}
