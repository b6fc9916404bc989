package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"mime"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/sluice-dev/sluice/sse"
)

// resumeEvent is the event Sluice sends a reader that fell too far behind,
// just before it closes the connection: the reader reconnects with its
// last event ID, as after any drop. It is not handed to the caller.
const resumeEvent = "sluice.resume"

// follower reads one event stream across as many connections as it takes.
// It is used by one goroutine at a time.
type follower struct {
	c      *Client
	ctx    context.Context // bounds the whole stream
	policy RetryPolicy     // with defaults
	// first makes the request that opens the stream, resume the one that
	// continues it after an event ID.
	first  func(ctx context.Context) (*http.Request, error)
	resume func(ctx context.Context, lastID string) (*http.Request, error)
	isEnd  func(sse.Event) bool // the stream's final event
	// expires: a 404 to a GET means the stream is gone (ErrExpired).
	expires bool
	onOpen  func(*http.Response) // once, when first is answered with the stream

	lastID     string // of the last event read: where a reconnect resumes
	body       io.ReadCloser
	rd         *sse.Reader
	stopConn   context.CancelFunc
	idle       *time.Timer
	idled      atomic.Bool
	opened     bool
	ended      bool
	progressed bool // an event came on this connection
	attempt    int  // reconnects in a row without an event
	reason     error
	minDelay   time.Duration // the server's Retry-After, for the next attempt
	maxDelay   time.Duration // policy.MaxDelay, lowered by the server's retry:
}

// next returns the next event, or io.EOF once the stream has ended.
func (f *follower) next() (sse.Event, error) {
	for {
		if f.ended {
			return sse.Event{}, io.EOF
		}
		if err := f.ctx.Err(); err != nil {
			return sse.Event{}, err
		}
		if f.rd == nil {
			if err := f.connect(); err != nil {
				return sse.Event{}, err
			}
			continue
		}
		ev, err := f.rd.Next()
		if d, ok := f.rd.Retry(); ok {
			f.maxDelay = min(f.policy.MaxDelay, d)
		}
		if err != nil {
			if ctxErr := f.ctx.Err(); ctxErr != nil {
				return sse.Event{}, ctxErr
			}
			if errors.Is(err, sse.ErrTooLarge) {
				f.close()
				return sse.Event{}, err
			}
			if errors.Is(err, io.EOF) {
				err = errors.New("the connection closed before the stream ended")
			} else if f.idled.Load() {
				err = fmt.Errorf("nothing came for %v", f.policy.IdleTimeout)
			}
			f.drop(err)
			continue
		}
		f.progressed = true
		f.lastID = ev.ID
		if ev.Name == resumeEvent {
			continue
		}
		if f.isEnd(ev) {
			f.ended = true
			f.hangUp()
		}
		return ev, nil
	}
}

// open connects until the first request has been answered: with the
// stream, with 204 (ended at once), or with an error.
func (f *follower) open() error {
	for f.rd == nil && !f.ended {
		if err := f.connect(); err != nil {
			return err
		}
	}
	return nil
}

// close ends the stream: next reports io.EOF from now on.
func (f *follower) close() {
	f.ended = true
	f.hangUp()
}

func (f *follower) hangUp() {
	if f.body != nil {
		f.body.Close()
		f.body, f.rd = nil, nil
	}
	if f.idle != nil {
		f.idle.Stop()
		f.idle = nil
	}
	if f.stopConn != nil {
		f.stopConn()
		f.stopConn = nil
	}
}

// drop ends the connection being read and notes why, for the next attempt.
func (f *follower) drop(reason error) {
	f.hangUp()
	if f.progressed {
		f.attempt = 1
	} else {
		f.attempt++
	}
	f.progressed = false
	f.reason = reason
}

// backoff is the wait before reconnect number attempt: exponential from
// InitialDelay, capped, with equal jitter (between half and all of it).
func backoff(attempt int, initial, limit time.Duration) time.Duration {
	d := initial
	for i := 1; i < attempt && d < limit; i++ {
		d *= 2
	}
	d = min(d, limit)
	return d/2 + rand.N(d/2+1)
}

// Statuses worth another try after a wait. A POST is sent again only when
// it was refused before it started anything (503: the node is full or
// draining); a 429 is the caller's own limit, which the caller should see.
func retryable(method string, status int) bool {
	switch status {
	case http.StatusServiceUnavailable:
		return true
	case http.StatusTooManyRequests, http.StatusBadGateway, http.StatusGatewayTimeout:
		return method == http.MethodGet
	}
	return false
}

// connect waits as the policy says, then makes one request. It returns nil
// with a connection to read, with the stream ended (204), or with a failure
// noted for the next attempt; an error when the stream cannot go on.
func (f *follower) connect() error {
	if f.attempt > 0 {
		if f.policy.MaxAttempts >= 0 && f.attempt > f.policy.MaxAttempts {
			return fmt.Errorf("%w after %d attempts: %w", ErrDisconnected, f.attempt-1, f.reason)
		}
		delay := max(backoff(f.attempt, f.policy.InitialDelay, f.maxDelay), f.minDelay)
		f.minDelay = 0
		if f.policy.OnRetry != nil {
			f.policy.OnRetry(f.attempt, delay, f.reason)
		}
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-f.ctx.Done():
			t.Stop()
			return f.ctx.Err()
		}
	}
	connCtx, stopConn := context.WithCancel(f.ctx)
	var req *http.Request
	var err error
	if f.opened {
		req, err = f.resume(connCtx, f.lastID)
	} else {
		req, err = f.first(connCtx)
	}
	if err != nil {
		stopConn()
		return err
	}
	req.Header.Set("Accept", "text/event-stream")
	resp, err := f.c.httpClient().Do(req)
	if err != nil {
		stopConn()
		if f.ctx.Err() != nil {
			return f.ctx.Err()
		}
		if req.Method != http.MethodGet {
			// It may or may not have started an answer: sending it again
			// could start a second one. The caller decides.
			return fmt.Errorf("sluice: %s %s: %w", req.Method, req.URL.Path, err)
		}
		f.drop(err)
		return nil
	}
	if resp.StatusCode == http.StatusOK && isEventStream(resp.Header) {
		f.body, f.stopConn = resp.Body, stopConn
		f.idled.Store(false)
		f.idle = time.AfterFunc(f.policy.IdleTimeout, func() {
			f.idled.Store(true)
			stopConn()
		})
		f.idle.Stop() // runs only while a read waits (idleReader)
		f.rd = sse.NewReader(&idleReader{r: resp.Body, t: f.idle, d: f.policy.IdleTimeout})
		if !f.opened {
			f.opened = true
			if f.onOpen != nil {
				f.onOpen(resp)
			}
		}
		return nil
	}
	defer stopConn()
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusNoContent && req.Method == http.MethodGet:
		f.ended = true // the reader is already past the stream's last event
		return nil
	case resp.StatusCode == http.StatusNotFound && req.Method == http.MethodGet && f.expires:
		return fmt.Errorf("%w: %w", ErrExpired, responseError(resp))
	case retryable(req.Method, resp.StatusCode):
		e := responseError(resp)
		f.drop(e)
		f.minDelay = e.RetryAfter
		return nil
	case resp.StatusCode == http.StatusOK:
		return fmt.Errorf("sluice: expected an event stream, got Content-Type %q", resp.Header.Get("Content-Type"))
	}
	return responseError(resp)
}

func isEventStream(h http.Header) bool {
	t, _, err := mime.ParseMediaType(h.Get("Content-Type"))
	return err == nil && t == "text/event-stream"
}

// idleReader runs a timer while each Read waits, so that a connection
// that carries nothing for the timer's duration is cut, while a caller
// that takes its time between events is not.
type idleReader struct {
	r io.Reader
	t *time.Timer
	d time.Duration
}

func (ir *idleReader) Read(p []byte) (int, error) {
	ir.t.Reset(ir.d)
	n, err := ir.r.Read(p)
	ir.t.Stop()
	return n, err
}
