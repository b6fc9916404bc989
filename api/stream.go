package api

import (
	"context"
	"errors"
	"io"
	"net/http"
	"time"

	"github.com/sluice-dev/sluice"
	"github.com/sluice-dev/sluice/admit"
	"github.com/sluice-dev/sluice/hub"
	"github.com/sluice-dev/sluice/sse"
	"github.com/sluice-dev/sluice/wire"
)

// readBatch is the most events one write carries: a reader that fell behind
// catches up in writes of this many events, each flushed once.
const readBatch = 256

// streamOptions say how one SSE response ends, beyond the end of its log.
type streamOptions struct {
	// stop, when done, ends the response, telling the client to reconnect
	// (topics end at shutdown, and with Config.DrainReaders the readers of
	// generations too).
	stop context.Context
	// topic marks a topic's subscription (for metrics).
	topic bool
	// onGone runs when the client goes away before the log ended.
	onGone func()
	// release runs, once, when the stream has ended (see guard.openStream).
	release func()
}

// startStream checks that a reader may start after the given ID (see
// checkAfter), then takes the stream's place in the limits (see
// openStream). It reports false, having answered, when the reader may not
// start.
func (s *Server) startStream(w http.ResponseWriter, r *http.Request, c admit.Caller, l sluice.Log, after string) (release func(), ok bool) {
	if !s.checkAfter(w, r, l, after, after != "") {
		return nil, false
	}
	return s.openStream(w, r, c)
}

// checkAfter checks that a reader may start after the given ID, so that a
// bad ID is still answered with a proper error status; resumed says the
// client named the ID (see admit.Gate.CheckAfter). It reports false,
// having answered, when the reader may not start; with 204 when the log has
// ended and the reader has read it all: EventSource then stops
// reconnecting.
func (s *Server) checkAfter(w http.ResponseWriter, r *http.Request, l sluice.Log, after string, resumed bool) bool {
	switch err := s.gate.CheckAfter(r.Context(), l, after, resumed); {
	case errors.Is(err, io.EOF):
		w.WriteHeader(http.StatusNoContent)
		return false
	case err != nil:
		writeError(w, r, s.log, err)
		return false
	}
	return true
}

// openStream takes a place for the caller's stream in the stream limits
// (admit.Gate.OpenStream), or answers with the refusal and reports false.
// release must be called, once, when the stream ends.
func (s *Server) openStream(w http.ResponseWriter, r *http.Request, c admit.Caller) (release func(), ok bool) {
	release, err := s.gate.OpenStream(c)
	if err != nil {
		writeError(w, r, s.log, err)
		return nil, false
	}
	return release, true
}

// stream renders log l onto w as Server-Sent Events, from just after the ID
// after, until the log ends, the client leaves or opts.stop is done. The
// hub takes the connection over when it can; otherwise (HTTP/2) this
// handler's goroutine serves it.
func (s *Server) stream(w http.ResponseWriter, r *http.Request, l sluice.Log, after string, opts streamOptions) {
	sse.SetHeaders(w.Header())
	// The access log line of a stream the hub takes over is written when
	// the stream ends, with what the hub wrote.
	a := accessOf(r)
	logged, keep := s.handOver(a)
	ao := hub.AttachOptions{Topic: opts.topic, Drain: opts.stop != nil, OnGone: opts.onGone, OnClose: func() {
		if opts.release != nil {
			opts.release()
		}
		logged()
	}}
	if a != nil {
		ao.Written = &a.hub
	}
	err := s.hub.Attach(w, l, after, ao)
	if err == nil {
		return
	}
	keep()
	if opts.release != nil {
		defer opts.release()
	}
	if !errors.Is(err, hub.ErrNotHijackable) {
		writeError(w, r, s.log, err)
		return
	}
	s.serveStream(w, r, l, after, opts)
}

// serveStream is stream in the handler's goroutine. Each batch of events is
// encoded into one buffer and flushed once.
func (s *Server) serveStream(w http.ResponseWriter, r *http.Request, l sluice.Log, after string, opts streamOptions) {
	s.streams.Add(1)
	defer s.streams.Add(-1)
	s.fallback.Opened(opts.topic)
	defer s.fallback.Closed(opts.topic)
	rc := http.NewResponseController(w)
	w.WriteHeader(http.StatusOK)

	// Small buffers while the stream is idle, grown as events come: each
	// HTTP/2 stream has its handler and these for as long as it is open.
	buf := sse.AppendRetry(make([]byte, 0, 512), hub.Jitter(s.cfg.Retry))
	if err := s.flush(rc, w, buf); err != nil {
		return
	}
	events := make([]sluice.Event, 0, 8)
	gone := r.Context()
	ctx := gone
	if opts.stop != nil {
		var cancel context.CancelFunc
		ctx, cancel = context.WithCancel(gone)
		defer cancel()
		defer context.AfterFunc(opts.stop, cancel)()
	}
	for {
		rctx, cancel := context.WithTimeout(ctx, s.cfg.Heartbeat)
		var err error
		events, err = l.Read(rctx, after, events)
		cancel()
		if len(events) == cap(events) && cap(events) < readBatch {
			events = append(make([]sluice.Event, 0, readBatch), events...) // a reader catching up
		}

		buf = buf[:0]
		for i := range events {
			ev := &events[i]
			buf = sse.AppendEvent(buf, ev.ID, ev.Name, ev.Data)
			after = ev.ID
		}
		sent := len(events)
		switch {
		case err == nil || errors.Is(err, io.EOF):
		case gone.Err() != nil:
			if opts.onGone != nil {
				opts.onGone()
			}
			return
		case ctx.Err() != nil: // opts.stop
			buf = sse.AppendComment(buf, hub.DrainMessage)
			_ = s.flush(rc, w, buf)
			return
		case errors.Is(err, context.DeadlineExceeded):
			buf = sse.AppendComment(buf, "ping")
		default:
			// The store is unreachable, or the log is gone: the client is
			// told, and comes back after its retry delay.
			s.log.Warn("stream: read failed", "log", l.Name(), "err", err)
			buf = sse.AppendEvent(buf, "", "", wire.ErrorJSON(err))
			buf = sse.AppendRetry(buf, hub.Jitter(s.cfg.Retry))
			_ = s.flush(rc, w, buf)
			return
		}
		began := time.Now()
		if ferr := s.flush(rc, w, buf); ferr != nil {
			// A write that failed after the whole write timeout went to a
			// client that took nothing for that long (HTTP/2 resets the
			// stream, which also ends the request's context); one that
			// left fails sooner.
			if time.Since(began) >= s.cfg.WriteTimeout {
				s.fallback.CutSlow(hub.CutWriteTimeout)
			}
			if opts.onGone != nil && !errors.Is(err, io.EOF) {
				opts.onGone()
			}
			return
		}
		s.fallback.Delivered(sent)
		if errors.Is(err, io.EOF) {
			return
		}
	}
}

// flush writes buf and pushes it to the client at once. A client that does
// not take it within the write timeout is dropped.
func (s *Server) flush(rc *http.ResponseController, w http.ResponseWriter, buf []byte) error {
	if len(buf) == 0 {
		return nil
	}
	_ = rc.SetWriteDeadline(time.Now().Add(s.cfg.WriteTimeout))
	if _, err := w.Write(buf); err != nil {
		return err
	}
	err := rc.Flush()
	// The deadline bounds this write only. Left in place, it would end a
	// quiet stream whose next write comes later than the write timeout
	// (HTTP/2 resets a stream when its write deadline passes, whether or
	// not a write is under way).
	_ = rc.SetWriteDeadline(time.Time{})
	return err
}
