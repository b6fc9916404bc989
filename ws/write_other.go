//go:build !unix

package ws

import "time"

// writeNow writes b, waiting at most fastWrite.
func (c *conn) writeNow(b []byte) (int, error) {
	_ = c.nc.SetWriteDeadline(time.Now().Add(fastWrite))
	return c.nc.Write(b)
}

// rawWriter is writeNow's state where it has none.
type rawWriter struct{}
