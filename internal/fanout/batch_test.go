package fanout_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/sluice-dev/sluice"
	"github.com/sluice-dev/sluice/internal/fanout"
	"github.com/sluice-dev/sluice/internal/testenv"
	"github.com/sluice-dev/sluice/redis"
)

// TestEncodeStopsAtItsBounds encodes three events up to an ID, and up to a
// number of bytes, at the bound and one past it.
func TestEncodeStopsAtItsBounds(t *testing.T) {
	b := fanout.GetBatch()
	defer b.Put()
	b.Events = append(b.Events[:0],
		sluice.Event{ID: "1", Data: []byte("a")},
		sluice.Event{ID: "2", Data: []byte("b")},
		sluice.Event{ID: "3", Data: []byte("c")})
	tr := &lines{}
	two := len("1 a\n2 b\n")
	for _, tc := range []struct {
		name     string
		upTo     string
		maxBytes int
		n        int
	}{
		{"no bound", "", 0, 3},
		{"up to an ID", "2", 0, 2},
		{"up to the last ID", "3", 0, 3},
		{"an ID not in the batch", "9", 0, 3},
		{"bytes reached by the second", "", two, 2},
		{"bytes one past the second", "", two + 1, 3},
		{"bytes reached by the first", "", 1, 1},
	} {
		last, n := b.Encode(tr, tc.upTo, tc.maxBytes)
		want := b.Events[tc.n-1]
		if n != tc.n || last.ID != want.ID || len(b.Frame) != tc.n*4 {
			t.Errorf("%s: encoded %d events (last %q, %q); want %d, last %q", tc.name, n, last.ID, b.Frame, tc.n, want.ID)
		}
	}
}

// TestRespellTakesTheHeadsSpelling: a reader from another incarnation of
// an empty log is given a gap event whose ID stands where the log's
// newest does, but is spelt otherwise; Respell gives it the newest's
// spelling. A cursor already spelt so is left alone, and one that events
// follow gets them.
func TestRespellTakesTheHeadsSpelling(t *testing.T) {
	ctx := context.Background()
	l := memoryLog(t)
	b := fanout.GetBatch()
	defer b.Put()
	if err := b.Read(ctx, l, "1-zzzz"); err != nil || len(b.Events) != 1 {
		t.Fatalf("reading an empty log from another incarnation: %d events, %v; want its gap event", len(b.Events), err)
	}
	gap := b.Events[0].ID
	newest, _, _ := l.Last(ctx)
	if gap == newest {
		t.Fatalf("the gap event's ID %q is spelt as the newest; the test needs them to differ", gap)
	}
	if now, ok, err := b.Respell(ctx, l, gap); !ok || now != newest || err != nil {
		t.Fatalf("Respell(%q) = %q, %v, %v; want %q, true", gap, now, ok, err, newest)
	}
	if _, ok, err := b.Respell(ctx, l, newest); ok || err != nil || len(b.Events) != 0 {
		t.Fatalf("Respell of the newest ID: ok %v, err %v, %d events; want nothing to do", ok, err, len(b.Events))
	}
	id := appendEvent(t, l, sluice.Event{Data: []byte("a")})
	if _, ok, err := b.Respell(ctx, l, gap); ok || err != nil || len(b.Events) != 1 || b.Events[0].ID != id {
		t.Fatalf("Respell with an event after the cursor: ok %v, err %v, events %+v; want that event", ok, err, b.Events)
	}
}

// TestRespellLeavesACursorApartFromTheNewestBe: a reader that got an event
// from the writer's node before Redis stored it resumes on another node,
// with that event's ID, past the newest that Redis holds. Respell must not
// take the newest ID as its cursor (the reader would be written the
// events in between again); once Redis has the event, the reader reads
// what follows it.
func TestRespellLeavesACursorApartFromTheNewestBe(t *testing.T) {
	srv := testenv.StartRedis(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var stores []*redis.Store
	for range 2 {
		s, err := redis.New(ctx, redis.Options{URL: srv.URL, Prefix: "ahead"})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		stores = append(stores, s)
	}
	w, err := stores[0].Create(ctx, "gen/ahead", sluice.LogOptions{Lost: []byte(`{"error":"lost"}`)})
	if err != nil {
		t.Fatal(err)
	}
	appendEvent(t, w, sluice.Event{Data: []byte("one")})
	other, err := stores[1].Open(ctx, "gen/ahead", false, sluice.LogOptions{})
	if err != nil {
		t.Fatal(err)
	}
	last, _, err := other.Last(ctx)
	if err != nil {
		t.Fatal(err)
	}
	seq, epoch, _ := strings.Cut(last, "-")
	if seq != "1" {
		t.Fatalf("the newest ID %q; want the first", last)
	}
	ahead := "2-" + epoch // the writer's node's next ID, which Redis does not hold yet
	b := fanout.GetBatch()
	defer b.Put()
	if now, ok, err := b.Respell(ctx, other, ahead); ok || err != nil || len(b.Events) != 0 {
		t.Fatalf("Respell(%q) with %q the newest: %q, %v, %v, %d events; want the cursor left be", ahead, last, now, ok, err, len(b.Events))
	}
	appendEvent(t, w, sluice.Event{Data: []byte("two")})
	three := appendEvent(t, w, sluice.Event{Data: []byte("three")})
	if err := b.Read(ctx, other, ahead); err != nil || len(b.Events) != 1 || b.Events[0].ID != three {
		t.Fatalf("reading after %q once Redis has it: %+v, %v; want only %q", ahead, b.Events, err, three)
	}
}
