package fanout

import "time"

// Bounds of Backoff's waits.
const (
	firstLook = time.Millisecond
	lastLook  = 20 * time.Millisecond
)

// Backoff paces a reader that finds nothing after its cursor although the
// cursor is not its feed's head, and looks again. Usually the feed is
// about to deliver and the first wait, a millisecond, is enough. But a
// cursor may stand where the store cannot serve it for a while: an ID a
// writer handed its own node's readers before Redis stored it, resumed on
// another node whose writer was then lost, waits up to the lease bound
// for the lost ending. The waits double up to 20 ms, so that such a
// reader costs the store 50 looks a second, not a thousand, and a
// node's readers that all resumed there at once do not flood it.
// The zero value is ready; a Backoff is used by one goroutine at a time.
type Backoff struct{ next time.Duration }

// Wait waits before the next look, longer each time since Reset.
func (b *Backoff) Wait() {
	if b.next < firstLook {
		b.next = firstLook
	}
	time.Sleep(b.next)
	b.next = min(2*b.next, lastLook)
}

// Reset is called when the reader has got something: its next wait is
// short again.
func (b *Backoff) Reset() { b.next = 0 }
