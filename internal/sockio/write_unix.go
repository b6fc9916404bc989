//go:build unix

package sockio

import (
	"errors"
	"os"
	"syscall"
	"time"
)

// WriteNow writes b without waiting: what the socket's send buffer cannot
// take at once is left, and reported as ErrWouldBlock with the bytes that
// were written. A connection that keeps up always has room (its buffer
// holds seconds of tokens), so a writer never waits on a slow client. A
// connection with no socket of its own is written with WriteFast.
func (c *Conn) WriteNow(b []byte) (int, error) {
	if c.raw == nil {
		return c.WriteFast(b)
	}
	w := &c.w
	if w.fn == nil {
		w.fn = w.write
	}
	w.b, w.n, w.err = b, 0, nil
	err := c.raw.Write(w.fn)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		// The socket still has the deadline of the last blocking write
		// (WriteFast, or the caller's own), and a raw write checks it
		// before it tries: once it has passed, every write would fail, and
		// a quiet stream's heartbeat would be taken for a vanished reader.
		// Clearing it here, rather than after every blocking write, costs
		// the hot path nothing.
		_ = c.SetWriteDeadline(time.Time{})
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
		return n, ErrWouldBlock
	}
	return n, nil
}

// rawWriter is the state of WriteNow's write, which the socket's Write
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
