//go:build !unix

package sockio

// WriteNow writes b, waiting at most FastWrite.
func (c *Conn) WriteNow(b []byte) (int, error) { return c.WriteFast(b) }

// rawWriter is WriteNow's state where it has none.
type rawWriter struct{}
