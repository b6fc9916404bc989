//go:build !unix

package hub

// writeNow writes b, waiting at most fastWrite.
func (s *sub) writeNow(b []byte) (int, error) { return s.writeFast(b) }

// rawWriter is writeNow's state where it has none.
type rawWriter struct{}
