//go:build unix

package hub

import (
	"errors"
	"os"
	"syscall"
	"time"
)

// writeNow writes b without waiting: what the socket's send buffer cannot
// take at once is left, and reported as errWouldBlock with the bytes that
// were written. A connection that keeps up always has room (its buffer
// holds seconds of tokens), so the writer never waits on a slow client.
// A connection with no socket of its own (s.raw is nil) is written with
// writeFast. Call it with s.wmu held.
func (s *sub) writeNow(b []byte) (int, error) {
	if s.raw == nil {
		return s.writeFast(b)
	}
	w := &s.rw
	if w.fn == nil {
		w.fn = w.write
	}
	w.b, w.n, w.err = b, 0, nil
	err := s.raw.Write(w.fn)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		// The socket still has the deadline of the last blocking write
		// (writeBlocking, writeFast), and a raw write checks it before it
		// tries: once it has passed, every write would fail, and a quiet
		// stream's heartbeat would be taken for a vanished reader. Clearing
		// it here, rather than after every blocking write, costs the hot
		// path nothing.
		_ = s.conn.SetWriteDeadline(time.Time{})
		err = s.raw.Write(w.fn)
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
// that writing a token allocates nothing.
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
