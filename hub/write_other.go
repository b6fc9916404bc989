//go:build !unix

package hub

import (
	"errors"
	"time"
)

// errWouldBlock is a write the kernel could not take whole at once.
var errWouldBlock = errors.New("hub: the socket is full")

// writeNow writes b, waiting at most fastWrite.
func (s *sub) writeNow(b []byte) (int, error) {
	_ = s.conn.SetWriteDeadline(time.Now().Add(fastWrite))
	return s.conn.Write(b)
}
