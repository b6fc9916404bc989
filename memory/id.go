package memory

import (
	"math"
	"strconv"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/sluice-dev/sluice/internal/eventid"
)

// An event ID is "<seq>-<epoch>": the event's sequence number in its log, in
// decimal from 1, and the log's epoch, which tells this incarnation of the
// log from any other of the same name (see sluice.Log). "0-<epoch>" stands
// before the first event; a replaced-gap event carries it.
//
// The epoch is the log's creation time in Unix milliseconds, in base 36 (8
// characters until the year 2059), made strictly greater than the epoch of
// the log created before it in this process: a log created anew here, or in
// a process started later (whose clock has moved on), gets another. Only a
// process that creates logs faster than one a millisecond for long runs its
// epochs ahead of the clock; a restart then relies on the clock having
// caught up, which it does at the same pace.
var lastEpoch atomic.Int64

// nextEpoch returns a new log's epoch.
func nextEpoch() string {
	now := time.Now().UnixMilli()
	for {
		last := lastEpoch.Load()
		e := max(now, last+1)
		if lastEpoch.CompareAndSwap(last, e) {
			return strconv.FormatInt(e, 36)
		}
	}
}

// appendID appends the ID of the event of sequence seq in the log of the
// given epoch to b.
func appendID(b []byte, seq uint64, epoch string) []byte {
	b = strconv.AppendUint(b, seq, 10)
	b = append(b, '-')
	return append(b, epoch...)
}

// idLen is the length of the ID that appendID makes.
func idLen(seq uint64, epoch string) int {
	d, _ := digits(seq)
	return d + 1 + len(epoch)
}

// idsLen is the length of the IDs of the sequences from start to end,
// end excluded, all together.
func idsLen(start, end uint64, epoch string) int {
	n := 0
	for s := start; s < end; {
		d, more := digits(s)
		e := min(end, more)
		n += int(e-s) * (d + 1 + len(epoch))
		s = e
	}
	return n
}

// digits is how many decimal digits v has, and the least number that has
// more (math.MaxUint64 when none does).
func digits(v uint64) (n int, more uint64) {
	n, more = 1, 10
	for v >= more {
		n++
		if more > math.MaxUint64/10 {
			return n, math.MaxUint64
		}
		more *= 10
	}
	return n, more
}

// arenaID appends the ID of seq to arena, which must have room for it (so
// that it is not moved), and returns it as a string that shares arena's
// bytes: valid, and never changed, for as long as those bytes are not
// written again. prev, when not "", is the ID of seq-1 of the same epoch:
// adding one to its digits is cheaper than formatting seq anew, which
// counts for a reader that reads hundreds of events at a time.
func arenaID(arena *[]byte, seq uint64, epoch, prev string) string {
	start := len(*arena)
	a := *arena
	if prev == "" {
		a = appendID(a, seq, epoch)
	} else {
		a = append(a, prev...)
		i := start + len(prev) - len(epoch) - 2 // the last digit
		for ; i >= start && a[i] == '9'; i-- {
			a[i] = '0'
		}
		if i >= start {
			a[i]++
		} else { // 99 → 100: one digit more
			a = appendID(a[:start], seq, epoch)
		}
	}
	*arena = a
	return unsafe.String(&a[start], len(a)-start)
}

// Append hands out one ID per event. Rather than allocate each, it formats
// them into chunks of bytes that are only ever appended to, so a chunk's
// bytes never change under the IDs that share them; a chunk is garbage
// once no ID given out from it is held. Chunks start small, so that a topic
// of a few events costs little, and grow to maxIDChunk.
const (
	minIDChunk = 64
	maxIDChunk = 1024
)

// keepID returns the ID of seq, made to last. l.mu must be held.
func (l *Log) keepID(seq uint64) string {
	n := idLen(seq, l.epoch)
	if cap(l.ids)-len(l.ids) < n {
		l.ids = make([]byte, 0, max(min(2*cap(l.ids), maxIDChunk), minIDChunk, n))
	}
	return arenaID(&l.ids, seq, l.epoch, "")
}

// parseID reads an event ID given to l: its sequence number, and whether
// this incarnation of l issued it (or could have: "" and "0-<epoch>" are
// before the first event). An ID of the right shape from another
// incarnation, or a plain decimal ID as earlier versions issued, is not
// ours but no error; anything else is EINVALID.
func (l *Log) parseID(id string) (seq uint64, ours bool, err error) {
	if id == "" {
		return 0, true, nil
	}
	num, epoch, dashed := eventid.CutLast(id, '-')
	seq, ok := eventid.ParseSeq(num)
	switch {
	case !ok:
		return 0, false, eventid.Invalid(id)
	case dashed && epoch == l.epoch: // the reader's usual case, checked first
		return seq, true, nil
	case dashed && !eventid.ValidEpoch(epoch):
		return 0, false, eventid.Invalid(id)
	}
	return 0, false, nil
}
