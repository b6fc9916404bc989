package memory

import (
	"context"
	"errors"
	"io"
	"unsafe"

	"github.com/sluice-dev/sluice"
	"github.com/sluice-dev/sluice/internal/eventid"
)

// Read returns the events after the given ID, waiting for some if needed.
// The events that must be put back together, and every event's ID, get
// one new allocation per call.
func (l *Log) Read(ctx context.Context, after string, buf []sluice.Event) ([]sluice.Event, error) {
	buf, _, err := l.read(ctx, after, buf, nil, true)
	return buf, err
}

// Poll is Read without waiting.
func (l *Log) Poll(ctx context.Context, after string, buf []sluice.Event) ([]sluice.Event, error) {
	buf, _, err := l.read(ctx, after, buf, nil, false)
	return buf, err
}

// ReadScratch is Read for a reader that is done with the events it read
// before it reads again, as the hub is once it has encoded them: the
// events' IDs, and the data of events that must be put back together, are
// put in scratch, grown as needed and returned for the next call, instead
// of in new memory. Their ID and Data are valid until scratch is used
// again: a reader that keeps an ID longer (as its place in the log) keeps
// a copy. after may itself be in scratch: it is read before scratch is
// reused. With a nil scratch it is Read.
func (l *Log) ReadScratch(ctx context.Context, after string, buf []sluice.Event, scratch []byte) ([]sluice.Event, []byte, error) {
	return l.read(ctx, after, buf, scratch, true)
}

// PollScratch is ReadScratch without waiting.
func (l *Log) PollScratch(ctx context.Context, after string, buf []sluice.Event, scratch []byte) ([]sluice.Event, []byte, error) {
	return l.read(ctx, after, buf, scratch, false)
}

// read is Read, Poll, ReadScratch and PollScratch.
func (l *Log) read(ctx context.Context, after string, buf []sluice.Event, scratch []byte, wait bool) ([]sluice.Event, []byte, error) {
	seq, ours, err := l.parseID(after)
	if err != nil {
		return nil, scratch, err
	}
	buf = buf[:0]
	waiting := false
	for {
		l.mu.Lock()
		if waiting {
			l.waiters.Add(-1)
			waiting = false
		}
		if l.forgotten {
			l.mu.Unlock()
			return buf, scratch, errForgotten(l.name)
		}
		if ours && seq >= l.next {
			l.mu.Unlock()
			return nil, scratch, eventid.Invalid(after)
		}
		// A reader whose place is gone is told so in-band, under an ID to
		// resume from, and goes on from the oldest event kept.
		var gap *sluice.Event
		start := seq + 1
		switch {
		case !ours:
			g := sluice.GapOf(l.idBefore(), sluice.Gap{Reason: sluice.GapReplaced})
			gap, start = &g, l.first
		case start < l.first && seq > 0:
			g := sluice.GapOf(string(appendID(nil, l.first-1, l.epoch)), sluice.Gap{Reason: sluice.GapTrimmed, Missed: l.first - start})
			gap, start = &g, l.first
		case start < l.first:
			start = l.first // a reader from the start had no place to lose
		}
		if gap != nil || start < l.next {
			if gap != nil && cap(buf) > 0 {
				buf = append(buf, *gap)
			}
			buf, scratch = l.events(start, buf, scratch)
			l.mu.Unlock()
			l.touch()
			return buf, scratch, nil
		}
		if l.end != sluice.EndNone {
			l.mu.Unlock()
			return buf, scratch, io.EOF
		}
		if !wait {
			l.mu.Unlock()
			l.touch()
			return buf, scratch, nil
		}
		wake := l.wake
		l.waited = true
		l.waiters.Add(1)
		waiting = true
		l.mu.Unlock()

		select {
		case <-wake:
		case <-ctx.Done():
			l.waiters.Add(-1)
			l.touch()
			return buf, scratch, ctx.Err()
		}
	}
}

// idBefore is the ID that stands before the first event: "0-<epoch>".
func (l *Log) idBefore() string { return string(appendID(nil, 0, l.epoch)) }

// events appends to buf as many events from sequence start on as it has
// room for. Their IDs, and the data of events that must be put back
// together, go in one arena: scratch when it is large enough, else new
// memory, which is returned as the scratch for next time. l.mu must be
// held.
func (l *Log) events(start uint64, buf []sluice.Event, scratch []byte) ([]sluice.Event, []byte) {
	end := start + min(l.next-start, uint64(cap(buf)-len(buf)))
	if end == start {
		return buf, scratch
	}
	size := idsLen(start, end, l.epoch)
	for s := start; s < end; s++ {
		if r := l.rec(s); r.pre+r.suf > 0 {
			size += r.len()
		}
	}
	arena := scratch[:0]
	if cap(arena) < size {
		// By a quarter at least: IDs make batches of one length differ by
		// a few bytes, and each would otherwise take a new arena.
		arena = make([]byte, 0, max(size, cap(scratch)+cap(scratch)/4))
	}
	prev := ""
	for s := start; s < end; s++ {
		ev := l.event(s, &arena, prev)
		buf = append(buf, ev)
		prev = ev.ID
	}
	if cap(arena) > cap(scratch) {
		scratch = arena
	}
	return buf, scratch
}

// event returns the event of the given sequence, which l holds. Its ID,
// and its data when stored as a difference from the base, are put
// together at the end of arena, which must have room for them. prev is
// the ID of the event before, if at hand (see arenaID).
func (l *Log) event(seq uint64, arena *[]byte, prev string) sluice.Event {
	r := l.rec(seq)
	id := arenaID(arena, seq, l.epoch, prev)
	b := l.blocks[r.blk-l.firstBlk]
	data := b[r.off : r.off+r.n : r.off+r.n]
	if r.pre+r.suf > 0 {
		start := len(*arena)
		a := append(*arena, l.base[:r.pre]...)
		a = append(a, data...)
		a = append(a, l.base[len(l.base)-int(r.suf):]...)
		*arena = a
		data = a[start:len(a):len(a)]
	}
	return sluice.Event{ID: id, Name: l.names[r.name], Data: data, End: r.end}
}

// Last returns the newest event's ID and whether the log has ended.
func (l *Log) Last(context.Context) (string, sluice.End, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.last, l.end, nil
}

// size is about how many bytes l holds: its blocks, records, names and
// IDs.
func (l *Log) size() int64 {
	n := int64(cap(l.pages)+cap(l.blocks))*24 + int64(cap(l.base)+cap(l.ids)) + 256
	for _, p := range l.pages {
		n += int64(cap(p)) * int64(unsafe.Sizeof(rec{}))
	}
	for _, b := range l.blocks {
		n += int64(cap(b))
	}
	for _, name := range l.names {
		n += int64(len(name)) + 16
	}
	return n
}

// touch tells a ring's store that l is in use.
func (l *Log) touch() {
	if l.s != nil && l.ring {
		l.s.touch(l)
	}
}

func errForgotten(name string) error {
	return &sluice.Error{Code: sluice.EUNAVAILABLE, Kind: "topic_forgotten",
		Message: "The topic was forgotten after a time unused; subscribe or publish to it again.",
		Err:     errors.New("memory: " + name + " was forgotten while held")}
}
