package convo

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"sync"
	"time"

	"github.com/sluice-dev/sluice"
	"github.com/sluice-dev/sluice/gen"
	"github.com/sluice-dev/sluice/wire"
)

// The recorder of an answer is one more reader of its generation's log:
// it never slows the generation or its other readers, and a database that
// fails under it never reaches them. It reads what came, waits until a
// second has passed since its last write, takes what came meanwhile, and
// writes the whole text so far in one statement; so an answer costs one
// write a second however fast it streams, plus one at its end.

// writeTimeout bounds one database write of a recorder, so that a database
// that hangs holds up neither shutdown nor the next batch for long.
const writeTimeout = 10 * time.Second

// endAttempts is how many times the end of an answer is tried against a
// failing database before the recorder gives up (with a log line).
const endAttempts = 6

// record follows g's log and stores its answer into message msg of
// conversation conv, until the log ends or the service gives up waiting
// at shutdown. enroll has counted it.
func (s *Service) record(g *gen.Generation, owner, conv, msg string) {
	defer s.unenroll()
	r := &recorder{s: s, g: g, msg: msg, lastWrite: time.Now(), lastBeat: time.Now()}
	s.following(g.ID, r)
	u := r.follow()
	r.finish(u)
	s.following(g.ID, nil) // stored: a chat that reads the message now reads it whole
	s.changed(context.Background(), owner, conv)
}

type recorder struct {
	s   *Service
	g   *gen.Generation
	msg string

	// co and after are written by the recorder's goroutine under smu, so
	// that a chat continuing the conversation can take the text so far
	// (snapshot) rather than decode the whole stream again.
	smu       sync.Mutex
	co        wire.Collector
	after     string
	gapped    bool      // a gap event came: the text misses what was trimmed
	written   string    // the text last stored
	lastWrite time.Time // the last flush, written or not
	lastBeat  time.Time // the last write or touch
	failing   bool      // the last write failed (logged once until one succeeds)
	gone      bool      // the message ended or was deleted under us: stop writing
}

// follow reads the log to its end and returns the update that ends the
// message.
func (r *recorder) follow() sluice.MessageUpdate {
	ctx := r.s.ctx
	buf := make([]sluice.Event, 0, 256)
	beat := r.s.opts.Stale / 4
	readFailures := 0
	for {
		// Wait for the next events, at most until the heartbeat is due.
		rctx, cancel := context.WithTimeout(ctx, beat)
		evs, err := r.g.Log.Read(rctx, r.after, buf)
		cancel()
		if end, ok := r.take(evs); ok {
			return end
		}
		switch {
		case err == nil:
			readFailures = 0
		case ctx.Err() != nil: // shutdown gave up waiting for the generation
			return r.interrupted()
		case errors.Is(err, io.EOF): // ended without its ending event (a store that lost its server)
			return r.fromGeneration()
		case rctx.Err() != nil: // quiet for a heartbeat
			r.touch()
			continue
		default: // the log store failed: try again a little later
			readFailures++
			if readFailures > 5 && r.generationDone() {
				r.s.log.Warn("conversations: cannot read a finished answer's stream; storing what was read", "message", r.msg, "stream", r.g.ID, "err", err)
				return r.fromGeneration()
			}
			if !r.pause(time.Second) {
				return r.interrupted()
			}
			continue
		}
		// Let the batch fill until a write is allowed, then take it all.
		if !r.pause(time.Until(r.lastWrite.Add(r.s.opts.FlushEvery))) {
			return r.interrupted()
		}
		for {
			evs, err := r.g.Log.Poll(ctx, r.after, buf)
			if end, ok := r.take(evs); ok {
				return end
			}
			if err != nil || len(evs) < cap(buf) {
				break // what failed is read again by the next Read
			}
		}
		r.flush()
	}
}

// take adds events to the text; it reports the message's end when one of
// them ends the log.
func (r *recorder) take(evs []sluice.Event) (sluice.MessageUpdate, bool) {
	r.smu.Lock()
	for _, ev := range evs {
		r.after = ev.ID
		switch {
		case ev.End != sluice.EndNone:
			r.smu.Unlock() // ending waits for the generation
			return r.ending(ev), true
		case ev.Name == sluice.GapEvent:
			r.gapped = true
		case ev.Name == "": // a chunk
			_ = r.co.Add(ev.Data) // a chunk that does not decode adds nothing
		}
	}
	r.smu.Unlock()
	return sluice.MessageUpdate{}, false
}

// snapshot returns the text taken so far and the ID of the last event it
// took, for another goroutine; ok is false when the text misses events
// (a gap).
func (r *recorder) snapshot() (text, after string, ok bool) {
	r.smu.Lock()
	defer r.smu.Unlock()
	return collected(&r.co), r.after, !r.gapped
}

// text is the answer so far, as a store keeps text (see collected).
func (r *recorder) text() string { return collected(&r.co) }

// ending is the update for the log's ending event ev.
func (r *recorder) ending(ev sluice.Event) sluice.MessageUpdate {
	select { // the generation closes Done right after its ending event
	case <-r.g.Done():
	case <-r.s.ctx.Done():
	}
	u := sluice.MessageUpdate{Text: r.text()}
	if usage := r.g.Usage(); usage != (sluice.Usage{}) {
		u.Usage = &usage
	}
	switch ev.End {
	case sluice.EndDone:
		u.Status = sluice.StatusCompleted
		return u
	case sluice.EndCancelled:
		u.Status = sluice.StatusCancelled
		return u
	}
	u.Status, u.Error = sluice.StatusFailed, r.itemError(ev.Data)
	// The node went away under the answer (another node ended it so), or
	// the server is shutting down and cut it: the answer did not fail, it
	// was interrupted.
	if k := u.Error.Kind; k == "node_lost" || k == "server_shutting_down" {
		u.Status = sluice.StatusInterrupted
	}
	return u
}

// itemError says why the answer failed: from the generation's own error
// when it has one, else from the ending event's error object.
func (r *recorder) itemError(data []byte) *sluice.ItemError {
	var obj wire.ErrorObject
	_ = json.Unmarshal(data, &obj)
	if obj.Error.Code != nil && *obj.Error.Code == "node_lost" {
		return &sluice.ItemError{Code: sluice.EUNAVAILABLE, Kind: "node_lost", Message: obj.Error.Message}
	}
	if err := r.g.Err(); err != nil {
		return &sluice.ItemError{Code: sluice.ErrorCode(err), Kind: sluice.ErrorKind(err), Message: sluice.ErrorMessage(err)}
	}
	e := &sluice.ItemError{Code: sluice.EINTERNAL, Message: obj.Error.Message}
	if obj.Error.Code != nil {
		e.Kind = *obj.Error.Code
	}
	return e
}

// fromGeneration is the end when the log cannot tell it: the generation's
// own, once it has ended.
func (r *recorder) fromGeneration() sluice.MessageUpdate {
	select {
	case <-r.g.Done():
	case <-r.s.ctx.Done():
		return r.interrupted()
	}
	ev := sluice.Event{End: sluice.EndDone}
	switch err := r.g.Err(); {
	case sluice.ErrorCode(err) == sluice.ECANCELLED:
		ev.End = sluice.EndCancelled
	case err != nil:
		ev.End = sluice.EndError
	}
	return r.ending(ev)
}

func (r *recorder) generationDone() bool {
	select {
	case <-r.g.Done():
		return true
	default:
		return false
	}
}

// interrupted is the end when the service stops before the answer did.
func (r *recorder) interrupted() sluice.MessageUpdate {
	return sluice.MessageUpdate{Text: r.text(), Status: sluice.StatusInterrupted,
		Error: &sluice.ItemError{Code: sluice.EUNAVAILABLE, Kind: "server_shutting_down", Message: "The server stopped before the answer was complete."}}
}

// pause waits for d, or reports false when the service stops waiting.
func (r *recorder) pause(d time.Duration) bool {
	if d <= 0 {
		return r.s.ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-r.s.ctx.Done():
		return false
	}
}

// flush stores the text so far, if it changed, else keeps the heartbeat.
// The next flush comes FlushEvery later either way, so that a stream of
// events that add no text (a model's reasoning) is read in batches too.
func (r *recorder) flush() {
	r.lastWrite = time.Now()
	text := r.text()
	if text == r.written {
		if time.Since(r.lastBeat) >= r.s.opts.Stale/4 {
			r.touch()
		}
		return
	}
	if !r.gone {
		r.s.obs.Batch()
	}
	if r.write(sluice.MessageUpdate{Text: text}) == nil {
		r.written, r.lastBeat = text, r.lastWrite
	}
}

func (r *recorder) touch() {
	if r.gone {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), writeTimeout)
	defer cancel()
	r.lastBeat = time.Now()
	r.result(r.s.store.Touch(ctx, r.msg))
}

// write applies u to the message.
func (r *recorder) write(u sluice.MessageUpdate) error {
	if r.gone {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), writeTimeout)
	defer cancel()
	err := r.s.store.UpdateMessage(ctx, r.msg, u)
	r.result(err)
	return err
}

// result notes how a write went: a failure is logged once until a write
// succeeds again, and a message that has ended or gone is written no more.
func (r *recorder) result(err error) {
	switch code := sluice.ErrorCode(err); {
	case err == nil:
		if r.failing {
			r.s.log.Info("conversations: storing the answer works again", "message", r.msg, "stream", r.g.ID)
		}
		r.failing = false
	case code == sluice.ECONFLICT || code == sluice.ENOTFOUND:
		// The sweeper took it for interrupted, or it was deleted: either
		// way nothing more of it is ours to store.
		r.s.log.Info("conversations: the answer's message ended or went away while it streamed; not storing more of it",
			"message", r.msg, "stream", r.g.ID, "err", err)
		r.gone = true
	case !r.failing:
		r.s.log.Warn("conversations: cannot store the answer so far; trying again with the next batch", "message", r.msg, "stream", r.g.ID, "err", err)
		r.failing = true
	}
}

// finish stores the end of the message, trying again while the database
// fails, and logs when it gives up.
func (r *recorder) finish(u sluice.MessageUpdate) {
	status := RecordedNotStored
	defer func() { r.s.obs.Recorded(status) }()
	wait := r.s.opts.WriteRetry
	var err error
	for attempt := 1; attempt <= endAttempts && !r.gone; attempt++ {
		if err = r.write(u); err == nil || r.gone {
			if err == nil && !r.gone {
				status = string(u.Status)
			}
			return
		}
		if attempt < endAttempts && !r.pause(wait) {
			if err = r.write(u); err == nil && !r.gone { // the service stops: one last try
				status = string(u.Status)
			}
			break
		}
		wait *= 2
	}
	if err != nil && !r.gone {
		r.s.log.Error("conversations: gave up storing the end of an answer; the sweeper will mark it interrupted with the text stored before",
			"message", r.msg, "stream", r.g.ID, "status", u.Status, "err", err)
	}
}
