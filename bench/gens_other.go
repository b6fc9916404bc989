//go:build !linux

package bench

import (
	"fmt"
	"time"
)

// Elsewhere than on Linux, each SSE generation is read by the goroutine
// that started it, through net/http's de-chunking body reader.

// sseLoop is Linux's event loop; here there is none.
type sseLoop struct{}

// startReader has nothing to start here.
func (w *worker) startReader() error { return nil }

// readSSE reads the generation on s to its end, timing its events with t,
// and closes s.
func (w *worker) readSSE(s *stream, t *timing) error {
	defer w.untrack(s.conn)
	var events sseEvents
	buf := make([]byte, 8<<10)
	for {
		n, err := s.resp.Body.Read(buf)
		if events.feed(buf[:n], time.Now(), t) {
			w.gens.Add(1)
			return nil
		}
		if err != nil {
			if w.ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("%w: %v", errNoEnd, err)
		}
	}
}
