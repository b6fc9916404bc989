package redis

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluice-dev/sluice"
	"github.com/sluice-dev/sluice/internal/testenv"
)

// calls counts the store's round trips by name.
type calls struct{ open, append, last, read, other atomic.Int64 }

func (c *calls) Command(name string, _ time.Duration, _ error) {
	switch name {
	case "open":
		c.open.Add(1)
	case "append":
		c.append.Add(1)
	case "last":
		c.last.Add(1)
	case "read":
		c.read.Add(1)
	default:
		c.other.Add(1)
	}
}

// waiting reports how many readers wait in Read on l on this node.
func waiting(s *Store, l *Log) int {
	s.feeds.mu.Lock()
	f := s.feeds.m[l.channel]
	s.feeds.mu.Unlock()
	if f == nil {
		return 0
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.waiting
}

// TestAReaderOnTheWritersNodeNeedsNoRoundTripBeforeItsFirstEvent: on the
// node that writes a log, Last, a poll from the start and a reader waiting
// for the first event ask Redis nothing (the node knows the log's top from
// its own appends), so that a generation's first token reaches its reader
// one append after the model gives it, and so do the events after it.
func TestAReaderOnTheWritersNodeNeedsNoRoundTripBeforeItsFirstEvent(t *testing.T) {
	var c calls
	s := newStore(t, testenv.StartRedis(t).URL, Options{Observer: &c, Lease: time.Minute})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	l, err := s.Create(ctx, "gen/first", sluice.LogOptions{Lost: lostData})
	if err != nil {
		t.Fatal(err)
	}
	if id, end, err := l.Last(ctx); id != "" || end != sluice.EndNone || err != nil {
		t.Fatalf("Last of a new log: %q, %v, %v", id, end, err)
	}
	if evs, err := l.Poll(ctx, "", make([]sluice.Event, 0, 4)); len(evs) != 0 || err != nil {
		t.Fatalf("Poll of a new log: %q, %v", evs, err)
	}
	if n := c.last.Load() + c.read.Load(); n != 0 {
		t.Fatalf("Last and Poll of a log this node writes asked Redis %d times; want none", n)
	}

	after := ""
	for i, data := range []string{"first", "second"} {
		got := make(chan []sluice.Event, 1)
		go func() {
			evs, err := l.Read(ctx, after, make([]sluice.Event, 0, 4))
			if err != nil {
				evs = append(evs, sluice.Event{Name: "error: " + err.Error()})
			}
			got <- evs
		}()
		testenv.Eventually(t, "the reader to wait", func() bool { return waiting(s, l.(*Log)) == 1 })
		appends := c.append.Load()
		id, err := l.Append(ctx, sluice.Event{Data: []byte(data)})
		if err != nil {
			t.Fatal(err)
		}
		evs := <-got
		if len(evs) != 1 || evs[0].ID != id || string(evs[0].Data) != data {
			t.Fatalf("event %d: the waiting reader got %q; want %q", i, evs, data)
		}
		if n := c.append.Load() - appends; n != 1 {
			t.Fatalf("event %d took %d appends; want 1", i, n)
		}
		after = id
		if last, _, _ := l.Last(ctx); last != id {
			t.Fatalf("Last after event %d: %q, want %q", i, last, id)
		}
	}
	if n := c.last.Load() + c.read.Load(); n != 0 {
		t.Fatalf("the reader on the writer's node asked Redis %d times (last %d, read %d); want none",
			n, c.last.Load(), c.read.Load())
	}
}

// TestAReaderOnTheWritersNodeHearsThatItsLeaseLapsed: the node writes a
// log and its reader waits, needing no look at Redis while the node holds
// the lease. Then the lease lapses in Redis while the node still thinks
// it holds it (a node frozen past its lease looks so, once it wakes): the
// node's next renewal finds it lapsed and ends the log as lost, and the
// reader gets the lost ending within the bound, rather than wait on the
// node's own appends for ever.
func TestAReaderOnTheWritersNodeHearsThatItsLeaseLapsed(t *testing.T) {
	const lease = 600 * time.Millisecond
	s := newStore(t, testenv.StartRedis(t).URL, Options{Lease: lease})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	l, err := s.Create(ctx, "gen/lapse", sluice.LogOptions{Lost: lostData})
	if err != nil {
		t.Fatal(err)
	}
	one, err := l.Append(ctx, sluice.Event{Data: []byte("one")})
	if err != nil {
		t.Fatal(err)
	}
	rd := follow(ctx, l)
	testenv.Eventually(t, "the reader to wait", func() bool { return waiting(s, l.(*Log)) == 1 })

	// The lease's end, in Redis's clock, moved to the past.
	lk := l.(*Log).keys[0]
	if err := s.client.Do(ctx, s.client.B().Hset().Key(lk).FieldValue().FieldValue("l", "1").Build()).Error(); err != nil {
		t.Fatal(err)
	}
	lapsed := time.Now()
	evs := <-rd
	if took, bound := time.Since(lapsed), lease/3+time.Second; took > bound {
		t.Fatalf("the reader heard of the lapsed lease after %v; the bound is %v", took, bound)
	}
	if len(evs) != 2 || evs[0].ID != one || string(evs[1].Data) != string(lostData) || evs[1].End != sluice.EndError {
		t.Fatalf("the reader got %q; want the event and the lost ending", evs)
	}
	if _, err := l.Append(ctx, sluice.Event{Data: []byte("late")}); sluice.ErrorCode(err) != sluice.ECONFLICT {
		t.Fatalf("the writer's append after its lease lapsed: %v, want ECONFLICT", err)
	}
}
