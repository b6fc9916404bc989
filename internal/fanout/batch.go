package fanout

import (
	"context"
	"sync"

	"github.com/sluice-dev/sluice"
)

// batchLen is the most events one delivery round or catch-up step carries.
const batchLen = 64

// scratchPoller is a log that can hand back events in the reader's own
// scratch space rather than new memory (memory.Log does): a batch is done
// with once it is encoded, but for the IDs kept, which are copied.
type scratchPoller interface {
	PollScratch(ctx context.Context, after string, buf []sluice.Event, scratch []byte) ([]sluice.Event, []byte, error)
}

// placer is a log whose IDs say where in the log they stand, and whose
// newest ID may be read before what precedes it can be, or be behind an
// ID a reader was given (the Redis store's: its writer's node hands
// events to its own readers before Redis stores them).
type placer interface {
	// Apart reports whether id and newest, the log's newest ID, stand at
	// different places in the log.
	Apart(id, newest string) bool
}

// Batch is what one round of reading and encoding events needs: a feed's
// delivery round, or one step of a reader catching up. Take one with
// GetBatch and give it back with Put; it belongs to one goroutine at a
// time.
type Batch struct {
	Events []sluice.Event // the events read, at most a batch of them
	Frame  []byte         // the events encoded (Encode), the same bytes for every reader
	Spare  []byte         // scratch space for a Transport's AppendEvent

	scratch []byte // where the log puts events back together
}

var batchPool = sync.Pool{New: func() any {
	return &Batch{Events: make([]sluice.Event, 0, batchLen), Frame: make([]byte, 0, 4096)}
}}

// GetBatch takes a Batch from a pool: an idle feed or reader holds none.
func GetBatch() *Batch { return batchPool.Get().(*Batch) }

// Put gives b back to the pool, unless a batch grew it past what is worth
// keeping. b must not be used after.
func (b *Batch) Put() {
	if cap(b.Frame) > 256<<10 || cap(b.scratch) > 256<<10 || cap(b.Spare) > 256<<10 {
		return
	}
	clear(b.Events[:cap(b.Events)]) // no event data kept alive from the pool
	b.Events = b.Events[:0]
	batchPool.Put(b)
}

// Read polls l, without waiting, for the events after after, into
// b.Events. Their IDs and data may live in b's scratch space: copy what
// must outlive the next Read (a cursor, with strings.Clone).
func (b *Batch) Read(ctx context.Context, l sluice.Log, after string) (err error) {
	if sp, ok := l.(scratchPoller); ok {
		b.Events, b.scratch, err = sp.PollScratch(ctx, after, b.Events, b.scratch)
		return err
	}
	b.Events, err = l.Poll(ctx, after, b.Events)
	return err
}

// Encode puts b.Events into b.Frame with enc, up to and including the event
// with the ID upTo ("": no such bound) or the first that brings the frame
// to maxBytes (0: no such bound), and returns the last event encoded and
// how many were. b.Events must not be empty.
func (b *Batch) Encode(enc Encoder, upTo string, maxBytes int) (last sluice.Event, n int) {
	b.Frame = b.Frame[:0]
	for i := range b.Events {
		ev := &b.Events[i]
		enc.AppendEvent(b, ev)
		if (upTo != "" && ev.ID == upTo) || (maxBytes > 0 && len(b.Frame) >= maxBytes) {
			return *ev, i + 1
		}
	}
	return b.Events[len(b.Events)-1], len(b.Events)
}

// Respell is for a reader catching up whose cursor is not its feed's head
// although nothing follows it in the log (Read found no event and no
// error). Either the feed is about to deliver, or the cursor stands where
// the log's newest event does but is spelt otherwise (the ID of a gap
// event before an empty log's first). In the second case, if still
// nothing follows the cursor once the newest ID is known, Respell returns
// that ID, the spelling the head uses, and ok: the reader takes it as its
// cursor, so that its next Join matches. Otherwise b holds what a second
// Read found, if it made one (events, or err), and with neither the reader
// waits a moment for the feed. Only this rare path pays for the look.
func (b *Batch) Respell(ctx context.Context, l sluice.Log, cursor string) (now string, ok bool, err error) {
	now, _, err = l.Last(ctx)
	if err != nil || now == cursor {
		return "", false, nil
	}
	if p, isP := l.(placer); isP && p.Apart(cursor, now) {
		// Not two spellings of one place: the store holds the events
		// in between but cannot hand them out yet (the writer's node
		// handed them to its readers before the store had them: the
		// cursor may be past what the store holds, or the newest ID
		// past it). Taking the newest ID would skip them, or deliver
		// them again.
		return "", false, nil
	}
	if err = b.Read(ctx, l, cursor); err == nil && len(b.Events) == 0 {
		return now, true, nil
	}
	return "", false, err
}
