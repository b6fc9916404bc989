package openai

import (
	"context"
	"errors"
	"io"
	"time"
)

// Causes of an attempt's context being cancelled by its watchdog.
var (
	errNoFirstToken = errors.New("openai: no first event within the first-token timeout")
	errStalled      = errors.New("openai: the upstream sent nothing within the idle timeout")
)

// watchdog bounds the two waiting phases of an attempt by cancelling its
// context: until the first event, the first-token timeout; after it, the
// idle timeout, rearmed by every read that brings bytes. Timers rather than
// read deadlines, because an HTTP response body has none, and the
// context is what makes the transport close the connection at once.
//
// Only the goroutine reading the answer calls its methods; the timers'
// callbacks only cancel, which is safe from any goroutine.
type watchdog struct {
	cancel context.CancelCauseFunc
	idle   time.Duration
	first  *time.Timer
	idler  *time.Timer // nil until the first event
}

func startWatchdog(cancel context.CancelCauseFunc, first, idle time.Duration) *watchdog {
	return &watchdog{
		cancel: cancel,
		idle:   idle,
		first:  time.AfterFunc(first, func() { cancel(errNoFirstToken) }),
	}
}

// started switches from the first-token phase to the idle phase.
func (w *watchdog) started() {
	if w.idler != nil {
		return
	}
	w.first.Stop()
	w.idler = time.AfterFunc(w.idle, func() { w.cancel(errStalled) })
}

// stop ends the watch; the attempt is over.
func (w *watchdog) stop() {
	w.first.Stop()
	if w.idler != nil {
		w.idler.Stop()
	}
}

// reader returns r, watched: each read that brings bytes rearms the idle
// timer.
func (w *watchdog) reader(r io.Reader) io.Reader { return idleReader{r, w} }

type idleReader struct {
	r io.Reader
	w *watchdog
}

func (r idleReader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if n > 0 && r.w.idler != nil {
		r.w.idler.Reset(r.w.idle)
	}
	return n, err
}
