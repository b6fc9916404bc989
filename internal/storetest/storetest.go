// Package storetest is the contract of sluice.Store and sluice.Log as a
// test suite: every store (memory, Redis, Redis Cluster) runs the same
// tests, so that what the rest of Sluice relies on is proven of each, not
// assumed from the first one written. It holds only what sluice.Log's doc
// comment promises; what a store does beyond it (byte bounds, counts of
// topics, its own ID format) is tested in the store's own package.
package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/sluice-dev/sluice"
)

// Options are what a test asks of the store it is given.
type Options struct {
	// Retention is the store's retention time; zero asks for one long
	// enough that nothing expires during a test.
	Retention time.Duration
}

// NewStore returns a new, empty store for t, closed when t ends. Stores
// returned for different tests must not share logs.
type NewStore func(t *testing.T, o Options) sluice.Store

// Run runs the contract on the stores that newStore makes, each test in
// parallel with the others on a store of its own.
func Run(t *testing.T, newStore NewStore) {
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, newStore)
		})
	}
}

// tests is the contract, one behaviour a test; the files of this package
// hold them by subject.
var tests = []struct {
	name string
	fn   func(t *testing.T, newStore NewStore)
}{
	{"CreateOpenConflictAndNotFound", testCreateOpen},
	{"OwnerIsKept", testOwner},
	{"AppendThenReadInOrderFromAnyID", testReadInOrder},
	{"AppendCopiesTheCallersData", testAppendCopies},
	{"ReadReturnsAtMostCapEvents", testReadCap},
	{"ReadWaitsUntilAnAppend", testReadWaits},
	{"ReadWithNoCapacityOnlyWaits", testReadNoCapacity},
	{"PollNeverWaits", testPollNeverWaits},
	{"EOFAfterTheEndingEvent", testEOF},
	{"AppendsAfterTheEndConflict", testAppendAfterEnd},
	{"AFullLogRefusesAllButItsEnding", testFull},
	{"LastReportsTheNewestIDAndEnd", testLast},
	{"GarbageIDsAreInvalid", testGarbageIDs},
	{"ARingTrimsAndTellsWhatWasMissed", testRingTrims},
	{"ManyConcurrentReadersSeeEveryEventOnceInOrder", testManyReaders},
	{"RetentionForgetsAnEndedLog", testRetention},
	{"AnotherIncarnationGivesAReplacedGapThenEverything", testReplaced},
	{"AnIdleRingIsForgottenButNotOneWithAWaitingReader", testIdleRing},
}

// longTime bounds every wait of a test that expects no wait at all: long
// enough for a loaded machine, short enough to fail rather than hang.
const longTime = 10 * time.Second

func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), longTime)
	t.Cleanup(cancel)
	return ctx
}

func create(t *testing.T, s sluice.Store, name string, opts sluice.LogOptions) sluice.Log {
	t.Helper()
	l, err := s.Create(ctxFor(t), name, opts)
	if err != nil {
		t.Fatalf("create %s: %v", name, err)
	}
	return l
}

// appendN appends n events named by their number, and returns their IDs.
func appendN(t *testing.T, l sluice.Log, n int) []string {
	t.Helper()
	ids := make([]string, n)
	for i := range n {
		id, err := l.Append(ctxFor(t), sluice.Event{Name: fmt.Sprint("n", i%3), Data: fmt.Appendf(nil, `{"i":%d}`, i)})
		if err != nil {
			t.Fatalf("append %d: %v", i, err)
		}
		ids[i] = id
	}
	return ids
}

func end(t *testing.T, l sluice.Log) string {
	t.Helper()
	id, err := l.Append(ctxFor(t), sluice.Event{Data: []byte("[DONE]"), End: sluice.EndDone})
	if err != nil {
		t.Fatalf("ending: %v", err)
	}
	return id
}

// readAll reads l after the given ID until io.EOF, size events at a time.
func readAll(t *testing.T, l sluice.Log, after string, size int) []sluice.Event {
	t.Helper()
	out, err := readToEnd(ctxFor(t), l, after, size)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// readToEnd is readAll for goroutines other than the test's.
func readToEnd(ctx context.Context, l sluice.Log, after string, size int) ([]sluice.Event, error) {
	var out []sluice.Event
	buf := make([]sluice.Event, 0, size)
	for {
		evs, err := l.Read(ctx, after, buf)
		for _, ev := range evs {
			ev.Data = append([]byte(nil), ev.Data...) // the next Read may reuse it
			out = append(out, ev)
		}
		if len(evs) > 0 {
			after = evs[len(evs)-1].ID
		}
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return out, fmt.Errorf("read after %q: %w", after, err)
		}
	}
}

// poll is Poll with a buffer of size.
func poll(t *testing.T, l sluice.Log, after string, size int) ([]sluice.Event, error) {
	t.Helper()
	return l.Poll(ctxFor(t), after, make([]sluice.Event, 0, size))
}

// wantCode fails t unless err carries the application code.
func wantCode(t *testing.T, what string, err error, code string) {
	t.Helper()
	if sluice.ErrorCode(err) != code {
		t.Fatalf("%s: got %v, want code %q", what, err, code)
	}
}

// gapOf decodes a GapEvent's data, failing t when ev is none.
func gapOf(t *testing.T, ev sluice.Event) sluice.Gap {
	t.Helper()
	if ev.Name != sluice.GapEvent {
		t.Fatalf("event %q (%q) is not a %s", ev.ID, ev.Data, sluice.GapEvent)
	}
	var g sluice.Gap
	if err := json.Unmarshal(ev.Data, &g); err != nil {
		t.Fatalf("gap data %q: %v", ev.Data, err)
	}
	return g
}

// wantIDs fails t unless evs carry exactly the IDs want, in order.
func wantIDs(t *testing.T, what string, evs []sluice.Event, want []string) {
	t.Helper()
	got := make([]string, len(evs))
	for i, ev := range evs {
		got[i] = ev.ID
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("%s: got IDs %q, want %q", what, got, want)
	}
}
