package fanout_test

import (
	"context"
	"testing"

	"github.com/sluice-dev/sluice"
	"github.com/sluice-dev/sluice/internal/fanout"
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
