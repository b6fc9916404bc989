package sse

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"time"
)

// DefaultMaxSize is the MaxSize a Reader uses when its field is zero.
const DefaultMaxSize = 16 << 20

// ErrTooLarge is the error, wrapped with detail, that Reader.Next returns
// when a line or the data of an event is longer than the Reader's MaxSize.
var ErrTooLarge = errors.New("sse: stream line or event too large")

// Event is one event dispatched by a Reader.
type Event struct {
	// ID is the stream's last event ID when the event was dispatched: the
	// value of the most recent id field, here or in an earlier event, as
	// EventSource's lastEventId has it. An empty id field resets it to "".
	ID string
	// HasID reports whether an id field set ID since the previous event
	// Next returned, rather than ID being carried over from an earlier one.
	HasID bool
	// Name is the event type; empty when the event had no event field,
	// which EventSource calls "message".
	Name string
	// Data is the event's data lines joined with "\n".
	Data string
	// Retry is the reconnection time set by the last valid retry field since
	// the previous event Next returned, or 0 if there was none (so "retry: 0"
	// is reported as 0 too; Reader.Retry tells the two apart).
	Retry time.Duration
}

// Reader reads events from an event stream, as the WHATWG HTML standard's
// "interpreting an event stream" algorithm does: it decodes UTF-8 (dropping a
// leading BOM and replacing invalid bytes with U+FFFD), accepts \r\n, \r and
// \n line breaks, ignores comments and unknown fields, takes a line without a
// colon as a field with an empty value, ignores id fields containing NUL and
// retry fields that are not all ASCII digits, and dispatches an event at each
// blank line when the event has data. Lines may be of any length up to
// MaxSize and may arrive split across reads anywhere.
//
// Make one with NewReader. A Reader is not safe for concurrent use, and does
// not close the reader it reads.
type Reader struct {
	// MaxSize bounds, in bytes, the length of any one line of the stream and
	// the data of any one event; Next fails with ErrTooLarge beyond it.
	// Zero means DefaultMaxSize. Set it before the first call to Next.
	MaxSize int

	rd       io.Reader
	buf      []byte
	r, w     int   // buf[r:w] is read but not yet parsed
	err      error // the error that ended reading; returned once buf is drained
	fatal    error // ErrTooLarge: nothing more can be parsed
	bomDone  bool  // the start of the stream was checked for a BOM
	afterCR  bool  // the last line ended with \r: a \n next belongs to it
	data     []byte
	name     []byte
	id       []byte // the standard's "last event ID buffer"
	idSet    bool   // an id field came since the last blank line
	hasID    bool   // an id field came since the last event returned
	lastID   string // the standard's "last event ID string"
	lastName string // the previous event's Name, reused to spare an allocation
	retry    time.Duration
	hasRetry bool
	newRetry time.Duration // the retry to report with the next event
}

// NewReader returns a Reader that reads the event stream r.
func NewReader(r io.Reader) *Reader {
	return &Reader{rd: r}
}

// Next returns the next event of the stream. It reads from the underlying
// reader only when no complete event is buffered, so it returns each event as
// soon as its blank line has arrived.
//
// At the end of the stream Next returns io.EOF; an event that is not ended by
// a blank line by then is discarded, as the standard says. An error from the
// underlying reader is returned as is, after the events that were complete
// before it. Errors are final: every later call returns the same error.
func (r *Reader) Next() (Event, error) {
	if r.fatal != nil {
		return Event{}, r.fatal
	}
	for {
		line, err := r.line()
		if err != nil {
			return Event{}, err
		}
		if len(line) == 0 {
			if ev, ok := r.dispatch(); ok {
				return ev, nil
			}
			continue
		}
		if err := r.field(line); err != nil {
			r.fatal = err
			return Event{}, err
		}
	}
}

// LastEventID returns the stream's last event ID: the ID a client sends as
// Last-Event-ID when it reconnects. Like EventSource, it takes an id field
// into account only once the blank line after it has been read.
func (r *Reader) LastEventID() string { return r.lastID }

// Retry returns the reconnection time the stream last set with a valid retry
// field, and whether it set one. It takes effect as soon as the field is
// read, even in a block that dispatches no event.
func (r *Reader) Retry() (time.Duration, bool) { return r.retry, r.hasRetry }

// dispatch ends the current block at a blank line. It reports an event only
// when the block had data, as the standard's dispatch does.
func (r *Reader) dispatch() (Event, bool) {
	if r.idSet {
		r.lastID = string(r.id)
		r.idSet = false
	}
	if len(r.data) == 0 {
		r.name = r.name[:0]
		return Event{}, false
	}
	if string(r.name) != r.lastName {
		r.lastName = string(r.name)
	}
	ev := Event{
		ID:    r.lastID,
		HasID: r.hasID,
		Name:  r.lastName,
		Data:  string(r.data[:len(r.data)-1]), // the data buffer ends in "\n"
		Retry: r.newRetry,
	}
	r.data, r.name, r.hasID, r.newRetry = r.data[:0], r.name[:0], false, 0
	if cap(r.data) > keepCap {
		r.data = nil // do not hold on to the memory of one huge event
	}
	return ev, true
}

// field processes one non-blank line.
func (r *Reader) field(line []byte) error {
	if line[0] == ':' {
		return nil // a comment
	}
	name, value := line, []byte(nil)
	if i := bytes.IndexByte(line, ':'); i >= 0 {
		name, value = line[:i], line[i+1:]
		if len(value) > 0 && value[0] == ' ' {
			value = value[1:]
		}
	}
	switch string(name) {
	case "data":
		r.data = appendText(r.data, value)
		r.data = append(r.data, '\n')
		if limit := r.maxSize(); len(r.data)-1 > limit {
			return fmt.Errorf("%w: the data of an event is over %d bytes", ErrTooLarge, limit)
		}
	case "event":
		r.name = appendText(r.name[:0], value)
	case "id":
		if bytes.IndexByte(value, 0) < 0 {
			r.id = appendText(r.id[:0], value)
			r.idSet, r.hasID = true, true
		}
	case "retry":
		if d, ok := parseRetry(value); ok {
			r.retry, r.hasRetry, r.newRetry = d, true, d
		}
	}
	return nil
}

// parseRetry reads a retry field's value: milliseconds in ASCII digits, and
// nothing else. Values too large for a Duration saturate.
func parseRetry(v []byte) (time.Duration, bool) {
	if len(v) == 0 {
		return 0, false
	}
	const limit = math.MaxInt64 / int64(time.Millisecond)
	var ms int64
	for _, c := range v {
		if c < '0' || c > '9' {
			return 0, false
		}
		if ms <= limit {
			ms = ms*10 + int64(c-'0')
		}
	}
	if ms > limit {
		return math.MaxInt64, true
	}
	return time.Duration(ms) * time.Millisecond, true
}

func (r *Reader) maxSize() int {
	if r.MaxSize > 0 {
		return r.MaxSize
	}
	return DefaultMaxSize
}
