package sluice

import (
	"context"
	"errors"
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
	// ID is assigned by the log on append. IDs are opaque strings that only
	// the log that issued them can compare; within one log they increase.
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
// A log ends when an event with End set is appended; appends after that fail
// with ECONFLICT. An ended log is kept for the store's retention time, then
// forgotten.
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

	// Read copies events that come after the event with ID after (the
	// empty string means before the first) into buf[:0] and returns them,
	// at most cap(buf). When there are none yet it waits until there are or
	// ctx is done, and then returns ctx's error; so with ctx already done,
	// Read only polls. Once the ending event has been read, Read returns it
	// no more and reports io.EOF. With a buffer of no capacity, Read only
	// waits: it returns no events and no error once there are some to read.
	//
	// An ID that this log never issued is EINVALID. When after is older than
	// the oldest event still kept (only a ring log trims), Read starts at the
	// oldest kept event, after an event named "sluice.gap" that says how
	// many were missed and carries the ID of the last of them.
	Read(ctx context.Context, after string, buf []Event) ([]Event, error)

	// Last returns the ID of the newest event ("" when the log is empty) and
	// whether the log has ended.
	Last(ctx context.Context) (id string, end End, err error)
}

// LogOptions bound a log.
type LogOptions struct {
	// MaxLen is the most events the log keeps; zero means the store's
	// default. A ring log drops its oldest events to stay within it; any
	// other log refuses appends past it (but always accepts its ending).
	MaxLen int
	// Ring makes the log keep only its newest MaxLen events.
	Ring bool
	// Owner names who may read and stop the log (an API key's ID); empty
	// means anyone may. It is set when the log is created.
	Owner string
}

// Store keeps logs by name.
type Store interface {
	// Create makes a new, empty log. It fails with ECONFLICT if a log of
	// that name exists.
	Create(ctx context.Context, name string, opts LogOptions) (Log, error)
	// Open returns the log of that name, creating it with opts when create
	// is set; otherwise an unknown or expired log is ENOTFOUND.
	Open(ctx context.Context, name string, create bool, opts LogOptions) (Log, error)
	// Retention reports how long an ended log is kept.
	Retention() time.Duration
}

// Polled is a context that is already done: Log.Read with it returns what is
// there without waiting.
var Polled = func() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}()

// CheckAfter reports whether a reader may start reading l after the event ID
// after, without waiting: nil when it may, io.EOF when l has ended and after
// is its last event (there is nothing left to read), or the error Read
// gives for an ID that l never issued. Transports call it before answering,
// so that a bad ID still gets a proper error status.
func CheckAfter(l Log, after string) error {
	_, err := l.Read(Polled, after, make([]Event, 0, 1))
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}
