package redis

import (
	"strconv"

	"github.com/sluice-dev/sluice"
)

// Provisional events: the node that writes a log hands its own readers
// each deferred event as Defer takes it, before Redis has stored it, so
// that a generation's tokens reach the readers on its node without a
// round trip (the time to first token of a request served where it runs).
//
// It knows the offsets Redis will give them: it holds the log's lease, so
// it is the log's one writer, and its events are appended in the order
// Defer took them, one run at a time. Only a lost ending, appended by
// whichever node finds the lease lapsed, comes between; and a run may
// fail, or its answer be lost with the connection, so that the node
// cannot tell whether Redis stored it. What a reader then sees:
//
//   - The node appends nothing more to the log (Append refuses, with the
//     error that stopped the deferred events) and drops its lease, which
//     lapses: the log is ended as lost, as a lost writer's is, within
//     Store.LostWithin of the failure, by any node whose readers wait on
//     it, this one's among them. Redis's answer is the truth from then on.
//   - A lost ending goes provisionalSlack offsets past the log's top
//     (appendScript), past every offset a writer may have handed out and
//     not stored, so that no ID names two events: a reader that has read a
//     provisional event that Redis never stored reads the lost ending next
//     (on any node), and one that has not, the events Redis has, then the
//     lost ending. Nothing Redis holds is skipped; what it lost was never
//     stored, and the reader that saw it is told that the log was lost.
//   - Until then, an ID up to provisionalSlack past the top of a log that
//     is open and leased is taken as one its writer may have handed out
//     (Read waits for what follows it), not as one never issued.
//   - A log that Redis forgets (a restart without persistence) is gone for
//     every reader, as it is without provisional events.
//
// The writer's node has at most a queue of events unconfirmed (Defer
// waits for room), fewer than provisionalSlack.
const provisionalSlack = 1 << 16

// provide hands ev, which Defer has taken and will append after the
// events queued before it, to this node's readers, under the offset Redis
// will give it, if this handle writes the log (see above), and reports
// whether it did. It refuses an
// event that a full log would refuse, as Redis would. l.qmu must be held:
// events are handed out in the order they are queued.
func (l *Log) provide(ev sluice.Event) (provided bool, err error) {
	if !l.created || l.s.leases.writer(l.name, l.epoch) != l {
		return false, nil
	}
	off := l.head() + 1
	if off > uint64(l.maxLen) {
		full := sluice.Errorf(sluice.EFULL, "Stream %q is full.", l.name)
		full.Kind = "log_full"
		return false, full
	}
	l.issued.Store(off)
	l.s.feeds.appended(l, off, []sluice.Event{ev}, false) // ev.Data is Defer's copy
	return true, nil
}

// abandon is called when a deferred append has failed: the writer's
// handle gives up the log (see above; Append refuses to go on if this
// node has handed its readers events that Redis may not hold), and its
// readers look at Redis. l.qmu is held.
func (l *Log) abandon() {
	if l.created {
		l.s.leases.drop(l)
	}
}

// slackLua is provisionalSlack as appendScript reads it.
var slackLua = strconv.Itoa(provisionalSlack)

// Apart reports whether id and newest, IDs of this log (newest its
// newest, "" before its first event), stand at different places: a
// reader that got an event from the writer's node before Redis stored it
// stands past the newest ID Redis holds for a moment, and on the writer's
// node the newest ID may be one that Redis does not hold yet, nor the
// node's window (fanout's Batch.Respell then leaves the reader's cursor
// be, rather than skip or repeat what lies between).
func (l *Log) Apart(id, newest string) bool {
	off, ours, err := l.parseID(id)
	if err != nil || !ours {
		return false
	}
	top, ours, err := l.parseID(newest)
	return err == nil && ours && off != top
}
