//go:build unix

package hub

import (
	"errors"
	"syscall"
	"time"
)

// errWouldBlock is a write the kernel could not take whole at once.
var errWouldBlock = errors.New("hub: the socket is full")

// writeNow writes b without waiting: what the socket's send buffer cannot
// take at once is left, and reported as errWouldBlock with the bytes that
// were written. A connection that keeps up always has room (its buffer
// holds seconds of tokens), so the writer never waits on a slow client.
func (s *sub) writeNow(b []byte) (int, error) {
	if s.raw == nil {
		_ = s.conn.SetWriteDeadline(time.Now().Add(fastWrite))
		return s.conn.Write(b)
	}
	var n int
	var werr error
	err := s.raw.Write(func(fd uintptr) bool {
		for n < len(b) {
			m, err := syscall.Write(int(fd), b[n:])
			if m > 0 {
				n += m
			}
			switch {
			case err == syscall.EINTR:
				continue
			case err == syscall.EAGAIN:
				return true
			case err != nil:
				werr = err
				return true
			case m == 0:
				return true
			}
		}
		return true // done: never wait for the socket to drain
	})
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
