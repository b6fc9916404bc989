//go:build !linux

package bench

import (
	"bytes"
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

// readWS reads the frames of the generation on s, whose chat.start has
// been sent, to its end, timing its events with t, and closes s.
func (w *worker) readWS(s *stream, t *timing) error {
	defer w.untrack(s.conn)
	buf := make([]byte, 0, 1024)
	for {
		f, err := s.nextWS(buf, false)
		if err != nil {
			if w.ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("%w: %v", errNoEnd, err)
		}
		buf = f[:0]
		now := time.Now()
		switch {
		case bytes.HasPrefix(f, []byte(`{"type":"event"`)):
		case bytes.HasPrefix(f, []byte(`{"type":"started"`)):
			continue
		default:
			return fmt.Errorf("unexpected frame %.200s", f)
		}
		if bytes.Contains(f, []byte(`,"end":"`)) {
			w.gens.Add(1)
			return nil
		}
		t.event(now, f)
	}
}
