package sluice

import (
	"context"
	"encoding/json"
	"strconv"
	"time"
)

// End says why a log ended. The zero value means the log is still open.
type End uint8

const (
	EndNone      End = iota // the event is not the last one
	EndDone                 // the writer finished normally
	EndError                // the writer failed; the event's data says why
	EndCancelled            // a client or the server stopped the writer
)

func (e End) String() string {
	switch e {
	case EndNone:
		return "open"
	case EndDone:
		return "done"
	case EndError:
		return "error"
	case EndCancelled:
		return "cancelled"
	}
	return "unknown"
}

// Event is one entry of a log.
type Event struct {
	// ID is assigned by the log on append (see Log for what it is).
	ID string
	// Name is the event's type (SSE "event:" field); empty means "message".
	Name string
	// Data is the payload, usually one JSON document. Logs never modify it,
	// and readers must not either: one slice is shared by every reader.
	Data []byte
	// End is set on the last event of a log and says why the log ended.
	End End
}

// Log is an append-only, ordered, bounded sequence of events addressed by
// name. Any number of goroutines may append and read at once.
//
// Event IDs are opaque strings, unique and increasing within one log, that
// also say which incarnation of the log issued them: a log created anew
// under the same name (after it expired, or in a restarted process) issues
// IDs that the old one never did, so that a reader resuming from an old ID
// is told its place is gone rather than refused or silently moved. (The
// memory store's IDs are "<seq>-<epoch>", a decimal sequence from 1 and the
// incarnation in base 36; only the store that issued an ID parses it.)
//
// Reading after an ID returns:
//   - after "": every event kept, from the oldest;
//   - after an ID this incarnation issued: the events that follow it; when
//     some of them were trimmed away (only a ring log trims), a GapEvent
//     (Gap.Reason GapTrimmed) first, whose ID is that of the last event
//     missed, then the events from the oldest kept;
//   - after an ID of another incarnation (one that has the shape of this
//     store's IDs, or of the plain decimal IDs that earlier versions
//     issued): a GapEvent (Gap.Reason GapReplaced), whose ID stands before
//     the first event, so that resuming after it reads from the start, then
//     every event kept, from the oldest;
//   - after anything else, or an ID of this incarnation that it has not
//     issued yet: EINVALID. (A store whose writer hands events to its own
//     node's readers before the store holds them, as the Redis store does,
//     takes an ID a bounded distance past the newest stored event of an
//     open log that has a writer as one issued: reading after it waits.)
//
// A log ends when an event with End set is appended; appends after that fail
// with ECONFLICT. An ended log is kept for the store's retention time, then
// forgotten. A ring log (a topic) need not end: it is forgotten once nobody
// has appended to it or read it for the retention time; a reader waiting in
// Read counts as reading.
type Log interface {
	// Name returns the name the log was created under.
	Name() string

	// Owner returns LogOptions.Owner as the log was created with it.
	Owner() string

	// Append adds ev to the end of the log and returns the ID it was given.
	// The log keeps a copy of ev.Data: the caller may reuse it at once.
	// A log that is full (see LogOptions.MaxLen) and not a ring refuses all
	// but an ending event with EFULL.
	Append(ctx context.Context, ev Event) (string, error)

	// Read copies events that come after the event with ID after (see Log
	// for what each kind of ID reads) into buf[:0] and returns them, at
	// most cap(buf), a GapEvent included. When there are none yet it waits
	// until there are or ctx is done, and then returns ctx's error. Once the
	// ending event has been read, Read returns it no more and reports
	// io.EOF. With a buffer of no capacity, Read only waits: it returns no
	// events and no error once there are some to read.
	Read(ctx context.Context, after string, buf []Event) ([]Event, error)

	// Poll is Read without waiting: when nothing follows after yet, it
	// returns no events and a nil error. ctx bounds only the store's own
	// work (a memory store has none to bound).
	Poll(ctx context.Context, after string, buf []Event) ([]Event, error)

	// Last returns the ID of the newest event appended ("" when none has
	// been; a ring may have trimmed it since) and whether the log has
	// ended. Reading after it waits for the next event.
	Last(ctx context.Context) (id string, end End, err error)
}

// GapEvent is the name of the event that a reader gets in place of events
// it cannot have (see Log): its Data is a Gap as JSON, and its ID is where
// to resume from.
const GapEvent = "sluice.gap"

// Reasons a Gap gives.
const (
	GapTrimmed  = "trimmed"  // events were dropped from a ring log before the reader read them
	GapReplaced = "replaced" // the ID came from another incarnation of the log
)

// Gap is the data of a GapEvent.
type Gap struct {
	Reason string `json:"reason"` // GapTrimmed or GapReplaced
	// Missed is how many events were trimmed away (GapTrimmed only: a
	// replaced log cannot say what the reader missed).
	Missed  uint64 `json:"missed,omitempty"`
	Message string `json:"message"` // for people
}

// GapOf returns the GapEvent with the given ID that tells of g. It fills
// in the message when g has none.
func GapOf(id string, g Gap) Event {
	if g.Message == "" {
		switch g.Reason {
		case GapTrimmed:
			g.Message = strconv.FormatUint(g.Missed, 10) + " events were dropped from this stream before you read them."
		case GapReplaced:
			g.Message = "The stream was replaced (it expired, or the server restarted) since the event you resumed from; this is everything it holds, from the start."
		}
	}
	data, _ := json.Marshal(g) // cannot fail: strings and a number
	return Event{ID: id, Name: GapEvent, Data: data}
}

// LogOptions bound a log.
type LogOptions struct {
	// MaxLen is the most events the log keeps; zero means the store's
	// default. A ring log drops its oldest events to stay within it; any
	// other log refuses appends past it (but always accepts its ending).
	MaxLen int
	// Ring makes the log keep only its newest events: at most MaxLen, and
	// within the store's byte bounds for rings (the newest event is always
	// kept). Topics are rings.
	Ring bool
	// Owner names who may read and stop the log (an API key's ID); empty
	// means anyone may. It is set when the log is created.
	Owner string
	// Lost, when set, makes the node that creates the log its one writer,
	// holding a lease on it until the log ends: a store that several
	// nodes share ends the log with an event of this data (End EndError)
	// when that node is lost (it stopped renewing its lease: killed, cut
	// off or frozen), exactly once, within a bound the store states, and
	// refuses the lost node's appends from then on; so no reader waits
	// for ever on a writer that is gone. A store that only one node uses
	// (memory) ignores it: its readers go with its writer. Rings have no
	// writer.
	Lost []byte
}

// Store keeps logs by name.
type Store interface {
	// Create makes a new, empty log. It fails with ECONFLICT if a log of
	// that name exists.
	Create(ctx context.Context, name string, opts LogOptions) (Log, error)
	// Open returns the log of that name, creating it with opts when create
	// is set; otherwise an unknown or expired log is ENOTFOUND. A store
	// that holds as many ring logs as it may refuses to create another
	// with EUNAVAILABLE.
	Open(ctx context.Context, name string, create bool, opts LogOptions) (Log, error)
	// Retention reports how long an ended log is kept, and an idle ring.
	Retention() time.Duration
}

// CheckAfter reports whether a reader may start reading l after the event ID
// after, without waiting: nil when it may, io.EOF when l has ended and after
// is its last event (there is nothing left to read), or the error Read
// gives for an ID that l never issued. Transports call it before answering,
// so that a bad ID still gets a proper error status.
func CheckAfter(ctx context.Context, l Log, after string) error {
	_, err := l.Poll(ctx, after, make([]Event, 0, 1))
	return err
}
