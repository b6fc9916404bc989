package redis

import (
	"context"
	"errors"
	"io"
	"strconv"
	"time"

	"github.com/redis/rueidis"

	"github.com/sluice-dev/sluice"
	"github.com/sluice-dev/sluice/internal/eventid"
)

// Read returns the events after the given ID, waiting for some if needed.
// A waiting reader takes new events from its node's one subscription to
// the log (feed.go), not from a connection of its own.
func (l *Log) Read(ctx context.Context, after string, buf []sluice.Event) ([]sluice.Event, error) {
	return l.read(ctx, after, buf, true)
}

// Poll is Read without waiting: one round trip to Redis, or none when the
// node's subscription to the log already holds what follows after.
func (l *Log) Poll(ctx context.Context, after string, buf []sluice.Event) ([]sluice.Event, error) {
	return l.read(ctx, after, buf, false)
}

func (l *Log) read(ctx context.Context, after string, buf []sluice.Event, wait bool) ([]sluice.Event, error) {
	off, ours, err := l.parseID(after)
	if err != nil {
		return nil, err
	}
	buf = buf[:0]
	var (
		f     *feed
		early = true // f may be taken before Redis confirms it
	)
	defer func() {
		if f != nil {
			f.release()
		}
	}()
	for {
		// A log this node writes needs no look at Redis to know that
		// nothing follows its top (see leases.writer). Asked again at
		// each turn: when the lease goes, its readers are woken to look.
		// (A lost ending that another node published before this node's
		// subscription was confirmed is found so: this node's next
		// renewal finds its lease gone and drops it.)
		var w *Log
		if ours {
			w = l.s.leases.writer(l.name, l.epoch)
		}
		if wait && f == nil {
			// Subscribed before looking: whatever is appended after the
			// look below wakes this reader.
			if f, err = l.s.feeds.acquire(ctx, l, early && w != nil); err != nil {
				return buf, err
			}
		}
		if !wait && ours {
			// Poll takes what the node's subscription already holds, but
			// asks Redis whether anything follows the window: an append
			// that has returned may not have been received yet. Unless
			// this node writes the log: its appends go into the window
			// as they return (feeds.appended), so the window is all
			// there is (but for a lost ending another node may append,
			// whose message then wakes the readers).
			if pf := l.s.feeds.peek(l, w != nil); pf != nil {
				var st serveState
				switch buf, _, st = pf.serve(off, buf); st {
				case served:
					return buf, nil
				case atEnd:
					return buf, io.EOF
				case caughtUp:
					if l.s.leases.holds(l.name, l.epoch) {
						return buf, nil
					}
				}
			}
			if w != nil && off == w.head() {
				return buf, nil
			}
		}
		// A ring's reader may get from the window events that Redis has
		// trimmed already: more than the contract promises, never less.
		var wake <-chan struct{}
		if f != nil && ours {
			var st serveState
			buf, wake, st = f.serve(off, buf)
			switch st {
			case served:
				return buf, nil
			case atEnd:
				return buf, io.EOF
			}
			// The top is loaded after wake was taken: an append that it
			// does not count yet closes wake once Redis has answered it.
			if st == caughtUp || (w != nil && off == w.head()) {
				goto wait
			}
		}
		{
			var done bool
			if buf, done, err = l.fetch(ctx, off, ours, buf); done || err != nil {
				return buf, err
			}
		}
		if !wait {
			return buf, nil
		}
	wait:
		select {
		case <-wake:
		case <-f.done:
			// The subscription ended (Redis went away, or the log's slot
			// moved): look again, through a new one, which is to be
			// confirmed first if this one never was (or acquire would
			// not say that Redis is away).
			select {
			case <-f.ready:
			default:
				early = false
			}
			f.release()
			f = nil
		case <-ctx.Done():
			return buf, ctx.Err()
		}
	}
}

// fetch reads what follows offset off from Redis into buf. done says that
// Read has its answer (events, a gap, or io.EOF in err); otherwise nothing
// follows yet.
func (l *Log) fetch(ctx context.Context, off uint64, ours bool, buf []sluice.Event) (_ []sluice.Event, done bool, err error) {
	if !ours {
		off = 0 // a replaced reader reads everything kept
	}
	start := time.Now()
	res := readScript.Exec(ctx, l.s.client, l.keys, []string{
		l.epoch, strconv.FormatUint(off, 10), strconv.Itoa(cap(buf)), millis(l.s.opts.Retention),
	})
	l.s.observe("read", start, res.Error())
	if rueidis.IsRedisNil(res.Error()) {
		return buf, true, l.gone()
	}
	arr, err := res.ToArray()
	if err != nil || len(arr) != 5 {
		return buf, true, unavailable(errors.Join(errors.New("redis: read "+l.name), err))
	}
	top, _ := arr[0].AsInt64()
	end, _ := arr[1].AsInt64()
	entries, _ := arr[2].ToArray()
	base, _ := arr[3].ToString()
	leased, _ := arr[4].AsInt64()
	if ours && off > uint64(top) {
		// Past the top of an open leased log by no more than its writer
		// may have handed out before storing (provisional.go): nothing
		// follows it yet. Past anything else: never issued.
		if end != 0 || leased == 0 || off-uint64(top) > provisionalSlack {
			return buf, true, eventid.Invalid(formatID(off, l.epoch))
		}
		return buf, false, nil
	}

	// A reader whose place is gone is told so in-band, under an ID to
	// resume from, and goes on from the oldest event kept.
	first := off + 1
	if len(entries) > 0 {
		if first, err = entryOffset(entries[0]); err != nil {
			return buf, true, unavailable(err)
		}
	}
	switch {
	case !ours:
		buf = appendGap(buf, sluice.GapOf(formatID(0, l.epoch), sluice.Gap{Reason: sluice.GapReplaced}))
	case l.ring && off > 0 && first > off+1: // only a ring trims; a lost ending jumps (provisional.go)
		buf = appendGap(buf, sluice.GapOf(formatID(first-1, l.epoch), sluice.Gap{Reason: sluice.GapTrimmed, Missed: first - off - 1}))
	}
	for _, e := range entries {
		if len(buf) == cap(buf) {
			break
		}
		ev, err := l.decodeEntry(e, base)
		if err != nil {
			return buf, true, unavailable(err)
		}
		buf = append(buf, ev)
	}
	switch {
	case !ours || uint64(top) > off:
		return buf, true, nil // with no room for events, Read only says there are some
	case end != 0:
		return buf, true, io.EOF
	}
	return buf, false, nil
}

// appendGap adds a gap event when buf has room for it.
func appendGap(buf []sluice.Event, gap sluice.Event) []sluice.Event {
	if cap(buf) > len(buf) {
		buf = append(buf, gap)
	}
	return buf
}

// entryOffset reads the offset of a stream entry ("<offset>-0").
func entryOffset(e rueidis.RedisMessage) (uint64, error) {
	kv, err := e.ToArray()
	if err != nil || len(kv) != 2 {
		return 0, errors.Join(errors.New("redis: malformed stream entry"), err)
	}
	id, err := kv[0].ToString()
	if err != nil {
		return 0, err
	}
	num, _, _ := eventid.CutLast(id, '-')
	off, ok := eventid.ParseSeq(num)
	if !ok {
		return 0, errors.New("redis: stream entry ID " + strconv.Quote(id))
	}
	return off, nil
}

// decodeEntry makes an event of a stream entry (see appendScript), whose
// data may share bytes with base.
func (l *Log) decodeEntry(e rueidis.RedisMessage, base string) (sluice.Event, error) {
	off, err := entryOffset(e)
	if err != nil {
		return sluice.Event{}, err
	}
	kv, _ := e.ToArray()
	fields, err := kv[1].ToArray()
	if err != nil {
		return sluice.Event{}, err
	}
	ev := sluice.Event{ID: formatID(off, l.epoch)}
	var data string
	pre, suf := 0, 0
	for i := 0; i+1 < len(fields); i += 2 {
		k, _ := fields[i].ToString()
		v, _ := fields[i+1].ToString()
		switch k {
		case "d":
			data = v
		case "p":
			pre, _ = strconv.Atoi(v)
		case "s":
			suf, _ = strconv.Atoi(v)
		case "n":
			ev.Name = v
		case "e":
			n, _ := strconv.Atoi(v)
			ev.End = sluice.End(n)
		}
	}
	if pre < 0 || suf < 0 || pre+suf > len(base) {
		return sluice.Event{}, errors.New("redis: entry " + ev.ID + " shares more than its log's base")
	}
	b := make([]byte, 0, pre+len(data)+suf)
	b = append(b, base[:pre]...)
	b = append(b, data...)
	ev.Data = append(b, base[len(base)-suf:]...)
	return ev, nil
}
