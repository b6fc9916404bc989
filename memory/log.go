package memory

import (
	"context"
	"io"
	"strconv"
	"sync"
	"time"

	"github.com/sluice-dev/sluice"
)

// Log is an in-memory sluice.Log. Event IDs are decimal sequence numbers
// starting at 1; clients must treat them as opaque.
type Log struct {
	name  string
	owner string
	ring  bool
	max   int
	onEnd func()

	mu     sync.Mutex
	events []sluice.Event // events[i] has sequence first+i
	first  uint64         // sequence of events[0]
	next   uint64         // sequence the next append gets
	end    sluice.End
	wake   chan struct{} // closed and replaced by an append that has readers to wake
	waited bool          // a reader is waiting on wake
	expiry *time.Timer
}

var _ sluice.Log = (*Log)(nil)

func newLog(name string, opts sluice.LogOptions) *Log {
	return &Log{name: name, owner: opts.Owner, ring: opts.Ring, max: opts.MaxLen, first: 1, next: 1, wake: make(chan struct{})}
}

// Name returns the log's name.
func (l *Log) Name() string { return l.name }

// Owner returns who may read and stop the log; empty means anyone.
func (l *Log) Owner() string { return l.owner }

// Append adds ev and wakes every waiting reader.
func (l *Log) Append(_ context.Context, ev sluice.Event) (string, error) {
	l.mu.Lock()
	if l.end != sluice.EndNone {
		l.mu.Unlock()
		return "", sluice.Errorf(sluice.ECONFLICT, "Stream %q has already ended.", l.name)
	}
	if len(l.events) >= l.max {
		if !l.ring && ev.End == sluice.EndNone {
			l.mu.Unlock()
			return "", sluice.Errorf(sluice.ETOOLARGE, "Stream %q is full (%d events).", l.name, l.max)
		}
		if l.ring {
			// Drop the oldest, clearing it so its data can be collected.
			l.events[0] = sluice.Event{}
			l.events = l.events[1:]
			l.first++
		}
	}
	seq := l.next
	l.next++
	ev.ID = strconv.FormatUint(seq, 10)
	l.events = append(l.events, ev)
	l.end = ev.End
	// A channel is made only when someone waits on the old one: a log with
	// no idle reader (the pump is busy writing) appends without allocating it.
	var wake chan struct{}
	if l.waited {
		wake, l.wake, l.waited = l.wake, make(chan struct{}), false
	}
	onEnd := l.onEnd
	l.mu.Unlock()

	if wake != nil {
		close(wake)
	}
	if ev.End != sluice.EndNone && onEnd != nil {
		onEnd()
	}
	return ev.ID, nil
}

// Read returns the events after the given ID, waiting for some if needed.
func (l *Log) Read(ctx context.Context, after string, buf []sluice.Event) ([]sluice.Event, error) {
	seq, err := parseID(after)
	if err != nil {
		return nil, err
	}
	buf = buf[:0]
	for {
		l.mu.Lock()
		if seq >= l.next {
			l.mu.Unlock()
			return nil, badID(after)
		}
		start := seq + 1
		if start < l.first {
			if after != "" && cap(buf) > 1 {
				// The reader's place was trimmed away: say so in-band, under
				// the ID of the last event it missed, then go on.
				buf = append(buf, gapEvent(l.first-1, l.first-start))
			}
			start = l.first
		}
		if start < l.next {
			n := min(int(l.next-start), cap(buf)-len(buf))
			i := int(start - l.first)
			buf = append(buf, l.events[i:i+n]...)
			l.mu.Unlock()
			return buf, nil
		}
		if l.end != sluice.EndNone {
			l.mu.Unlock()
			return buf, io.EOF
		}
		wake := l.wake
		l.waited = true
		l.mu.Unlock()

		select {
		case <-wake:
		case <-ctx.Done():
			return buf, ctx.Err()
		}
	}
}

// Last returns the newest event's ID and whether the log has ended.
func (l *Log) Last(context.Context) (string, sluice.End, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.next == 1 {
		return "", l.end, nil
	}
	return strconv.FormatUint(l.next-1, 10), l.end, nil
}

func (l *Log) stopExpiry() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.expiry != nil {
		l.expiry.Stop()
	}
}

// parseID turns an event ID into its sequence number; "" is 0, before the
// first event.
func parseID(id string) (uint64, error) {
	if id == "" {
		return 0, nil
	}
	n, err := strconv.ParseUint(id, 10, 64)
	if err != nil || (len(id) > 1 && id[0] == '0') {
		return 0, badID(id)
	}
	return n, nil
}

func badID(id string) error {
	if len(id) > 64 {
		id = id[:64] + "…"
	}
	return &sluice.Error{Code: sluice.EINVALID, Param: "last_event_id", Kind: "invalid_event_id",
		Message: "Event ID " + strconv.Quote(id) + " was not issued by this stream."}
}

// GapEvent is the name of the event a ring log hands a reader whose place
// was trimmed away before it read on: its data says how many events it
// missed, and its ID resumes after them.
const GapEvent = "sluice.gap"

func gapEvent(lastMissed, missed uint64) sluice.Event {
	n := strconv.FormatUint(missed, 10)
	return sluice.Event{ID: strconv.FormatUint(lastMissed, 10), Name: GapEvent,
		Data: []byte(`{"missed":` + n + `,"message":"` + n + ` events were dropped from this topic before you read them."}`)}
}
