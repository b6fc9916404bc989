package storetest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/sluice-dev/sluice"
)

func testCreateOpen(t *testing.T, newStore NewStore) {
	s := newStore(t, Options{})
	ctx := ctxFor(t)
	create(t, s, "gen/a", sluice.LogOptions{})
	_, err := s.Create(ctx, "gen/a", sluice.LogOptions{})
	wantCode(t, "create twice", err, sluice.ECONFLICT)

	_, err = s.Open(ctx, "gen/none", false, sluice.LogOptions{})
	wantCode(t, "open unknown", err, sluice.ENOTFOUND)

	l, err := s.Open(ctx, "gen/made", true, sluice.LogOptions{})
	if err != nil || l.Name() != "gen/made" {
		t.Fatalf("open with create: %v, %v", l, err)
	}
	_, err = s.Create(ctx, "gen/made", sluice.LogOptions{})
	wantCode(t, "create what open made", err, sluice.ECONFLICT)

	// Two handles on one log see one log.
	a, _ := s.Open(ctx, "gen/a", false, sluice.LogOptions{})
	b, err := s.Open(ctx, "gen/a", true, sluice.LogOptions{})
	if err != nil {
		t.Fatal(err)
	}
	id := appendN(t, a, 1)[0]
	if last, _, err := b.Last(ctx); err != nil || last != id {
		t.Fatalf("other handle's Last = %q, %v; want %q", last, err, id)
	}
}

func testOwner(t *testing.T, newStore NewStore) {
	s := newStore(t, Options{})
	ctx := ctxFor(t)
	for _, owner := range []string{"", "key_1"} {
		name := "gen/owned" + owner
		if l := create(t, s, name, sluice.LogOptions{Owner: owner}); l.Owner() != owner {
			t.Fatalf("created with owner %q, Owner() = %q", owner, l.Owner())
		}
		l, err := s.Open(ctx, name, true, sluice.LogOptions{Owner: "someone else"})
		if err != nil || l.Owner() != owner {
			t.Fatalf("opened %s: owner %q, %v; want %q (an open does not change it)", name, l.Owner(), err, owner)
		}
	}
}

func testReadInOrder(t *testing.T, newStore NewStore) {
	s := newStore(t, Options{})
	l := create(t, s, "gen/order", sluice.LogOptions{})
	ids := appendN(t, l, 10)
	ids = append(ids, end(t, l))
	seen := map[string]bool{}
	for _, id := range ids {
		if seen[id] || id == "" {
			t.Fatalf("IDs %q: not unique and non-empty", ids)
		}
		seen[id] = true
	}
	all := readAll(t, l, "", 3)
	wantIDs(t, "from the start", all, ids)
	for i, ev := range all[:10] {
		if ev.Name != fmt.Sprint("n", i%3) || string(ev.Data) != fmt.Sprintf(`{"i":%d}`, i) || ev.End != sluice.EndNone {
			t.Fatalf("event %d = %+v", i, ev)
		}
	}
	if last := all[10]; string(last.Data) != "[DONE]" || last.End != sluice.EndDone {
		t.Fatalf("last event = %+v", last)
	}
	for i, id := range ids[:len(ids)-1] {
		wantIDs(t, fmt.Sprintf("after event %d", i), readAll(t, l, id, 4), ids[i+1:])
	}
}

func testAppendCopies(t *testing.T, newStore NewStore) {
	s := newStore(t, Options{})
	l := create(t, s, "gen/copy", sluice.LogOptions{})
	data := []byte("hello")
	if _, err := l.Append(ctxFor(t), sluice.Event{Data: data}); err != nil {
		t.Fatal(err)
	}
	copy(data, "XXXXX")
	evs, err := poll(t, l, "", 1)
	if err != nil || len(evs) != 1 || string(evs[0].Data) != "hello" {
		t.Fatalf("got %q, %v; the log must keep its own copy", evs, err)
	}
}

func testReadCap(t *testing.T, newStore NewStore) {
	s := newStore(t, Options{})
	l := create(t, s, "gen/cap", sluice.LogOptions{})
	ids := appendN(t, l, 5)
	for _, size := range []int{1, 2, 5, 9} {
		evs, err := l.Read(ctxFor(t), "", make([]sluice.Event, 0, size))
		if err != nil {
			t.Fatal(err)
		}
		wantIDs(t, fmt.Sprintf("cap %d", size), evs, ids[:min(size, 5)])
	}
}

func testReadWaits(t *testing.T, newStore NewStore) {
	s := newStore(t, Options{})
	l := create(t, s, "gen/wait", sluice.LogOptions{})

	// Nothing to read: Read waits out its context and says so.
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	evs, err := l.Read(ctx, "", make([]sluice.Event, 0, 4))
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) || len(evs) != 0 {
		t.Fatalf("read of an empty log: %q, %v; want it to wait until its context is done", evs, err)
	}

	// An append wakes a waiting reader, in another handle too.
	type result struct {
		evs []sluice.Event
		err error
	}
	got := make(chan result, 2)
	other, err := s.Open(ctxFor(t), "gen/wait", false, sluice.LogOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range []sluice.Log{l, other} {
		go func() {
			evs, err := h.Read(ctxFor(t), "", make([]sluice.Event, 0, 4))
			got <- result{evs, err}
		}()
	}
	id := appendN(t, l, 1)[0]
	for range 2 {
		r := <-got
		if r.err != nil || len(r.evs) != 1 || r.evs[0].ID != id {
			t.Fatalf("woken reader got %q, %v; want the event %q", r.evs, r.err, id)
		}
	}
}

func testReadNoCapacity(t *testing.T, newStore NewStore) {
	s := newStore(t, Options{})
	l := create(t, s, "gen/nocap", sluice.LogOptions{})
	done := make(chan error, 1)
	go func() {
		evs, err := l.Read(ctxFor(t), "", nil)
		if len(evs) != 0 {
			err = fmt.Errorf("got %d events into no capacity", len(evs))
		}
		done <- err
	}()
	appendN(t, l, 1)
	if err := <-done; err != nil {
		t.Fatalf("read with no capacity after an append: %v; want no events and no error", err)
	}
	// With events there already, it returns at once.
	evs, err := l.Read(ctxFor(t), "", nil)
	if err != nil || len(evs) != 0 {
		t.Fatalf("read with no capacity: %q, %v", evs, err)
	}
}

func testPollNeverWaits(t *testing.T, newStore NewStore) {
	s := newStore(t, Options{})
	l := create(t, s, "gen/poll", sluice.LogOptions{})
	// The context would let a wait go on for longTime: Poll must not.
	start := time.Now()
	evs, err := poll(t, l, "", 4)
	if err != nil || len(evs) != 0 {
		t.Fatalf("poll of an empty log: %q, %v", evs, err)
	}
	ids := appendN(t, l, 2)
	evs, err = poll(t, l, "", 4)
	if err != nil {
		t.Fatal(err)
	}
	wantIDs(t, "poll", evs, ids)
	if evs, err = poll(t, l, ids[1], 4); err != nil || len(evs) != 0 {
		t.Fatalf("poll at the newest event: %q, %v", evs, err)
	}
	if d := time.Since(start); d > longTime/2 {
		t.Fatalf("three polls took %v", d)
	}
}

func testEOF(t *testing.T, newStore NewStore) {
	s := newStore(t, Options{})
	ctx := ctxFor(t)
	l := create(t, s, "gen/eof", sluice.LogOptions{})
	ids := appendN(t, l, 2)
	last := end(t, l)

	evs, err := l.Read(ctx, ids[1], make([]sluice.Event, 0, 4))
	if err != nil || len(evs) != 1 || evs[0].ID != last {
		t.Fatalf("read to the end: %q, %v", evs, err)
	}
	for name, read := range map[string]func(context.Context, string, []sluice.Event) ([]sluice.Event, error){"Read": l.Read, "Poll": l.Poll} {
		evs, err := read(ctx, last, make([]sluice.Event, 0, 4))
		if !errors.Is(err, io.EOF) || len(evs) != 0 {
			t.Fatalf("%s after the ending event: %q, %v; want io.EOF", name, evs, err)
		}
	}
	if err := sluice.CheckAfter(ctx, l, last); !errors.Is(err, io.EOF) {
		t.Fatalf("CheckAfter the ending event: %v, want io.EOF", err)
	}
	if err := sluice.CheckAfter(ctx, l, ids[0]); err != nil {
		t.Fatalf("CheckAfter an event before the end: %v", err)
	}
}

func testAppendAfterEnd(t *testing.T, newStore NewStore) {
	s := newStore(t, Options{})
	l := create(t, s, "gen/ended", sluice.LogOptions{})
	end(t, l)
	for _, ev := range []sluice.Event{{Data: []byte("x")}, {Data: []byte("y"), End: sluice.EndError}} {
		_, err := l.Append(ctxFor(t), ev)
		wantCode(t, "append after the end", err, sluice.ECONFLICT)
	}
}

func testFull(t *testing.T, newStore NewStore) {
	s := newStore(t, Options{})
	l := create(t, s, "gen/full", sluice.LogOptions{MaxLen: 3})
	ids := appendN(t, l, 3)
	_, err := l.Append(ctxFor(t), sluice.Event{Data: []byte("one too many")})
	wantCode(t, "append past MaxLen", err, sluice.EFULL)
	ids = append(ids, end(t, l))
	wantIDs(t, "a full log's events", readAll(t, l, "", 10), ids)
}

func testLast(t *testing.T, newStore NewStore) {
	s := newStore(t, Options{})
	ctx := ctxFor(t)
	l := create(t, s, "gen/last", sluice.LogOptions{})
	check := func(what, wantID string, wantEnd sluice.End) {
		t.Helper()
		id, e, err := l.Last(ctx)
		if err != nil || id != wantID || e != wantEnd {
			t.Fatalf("%s: Last = %q, %v, %v; want %q, %v", what, id, e, err, wantID, wantEnd)
		}
	}
	check("empty", "", sluice.EndNone)
	ids := appendN(t, l, 2)
	check("open", ids[1], sluice.EndNone)
	last, err := l.Append(ctx, sluice.Event{Data: []byte(`{"error":{}}`), End: sluice.EndError})
	if err != nil {
		t.Fatal(err)
	}
	check("ended", last, sluice.EndError)
}

func testGarbageIDs(t *testing.T, newStore NewStore) {
	s := newStore(t, Options{})
	l := create(t, s, "gen/garbage", sluice.LogOptions{})
	appendN(t, l, 3)
	for _, id := range []string{"garbage", "-", "1-", "-1", "1.5", " 1", "1 ", "+1", "0x1", "1-2-3-!", "1-A B", "\x00"} {
		_, err := poll(t, l, id, 4)
		wantCode(t, fmt.Sprintf("Poll after %q", id), err, sluice.EINVALID)
		_, err = l.Read(ctxFor(t), id, make([]sluice.Event, 0, 4))
		wantCode(t, fmt.Sprintf("Read after %q", id), err, sluice.EINVALID)
		wantCode(t, fmt.Sprintf("CheckAfter %q", id), sluice.CheckAfter(ctxFor(t), l, id), sluice.EINVALID)
	}
}

func testRingTrims(t *testing.T, newStore NewStore) {
	s := newStore(t, Options{})
	l := create(t, s, "topic/ring", sluice.LogOptions{Ring: true, MaxLen: 3})
	ids := appendN(t, l, 10)

	// From the start there was no place to lose: the kept events, no gap.
	wantIDs(t, "ring from the start", readAll0(t, l, ""), ids[7:])

	evs := readAll0(t, l, ids[1])
	if len(evs) != 4 {
		t.Fatalf("after a trimmed event: %d events, want a gap and 3", len(evs))
	}
	g := gapOf(t, evs[0])
	if g.Reason != sluice.GapTrimmed || g.Missed != 5 || g.Message == "" {
		t.Fatalf("gap = %+v; want trimmed, 5 missed (events 2 to 6)", g)
	}
	if evs[0].ID != ids[6] {
		t.Fatalf("gap ID %q; want that of the last event missed, %q", evs[0].ID, ids[6])
	}
	wantIDs(t, "after the gap", evs[1:], ids[7:])
	wantIDs(t, "resumed from the gap's ID", readAll0(t, l, evs[0].ID), ids[7:])
	wantIDs(t, "after the oldest kept", readAll0(t, l, ids[7]), ids[8:])
}

// readAll0 polls a log that does not end until nothing more follows.
func readAll0(t *testing.T, l sluice.Log, after string) []sluice.Event {
	t.Helper()
	var out []sluice.Event
	for {
		evs, err := poll(t, l, after, 2)
		if err != nil {
			t.Fatalf("poll after %q: %v", after, err)
		}
		if len(evs) == 0 {
			return out
		}
		out = append(out, evs...)
		after = evs[len(evs)-1].ID
	}
}

func testManyReaders(t *testing.T, newStore NewStore) {
	const readers, events = 40, 300
	s := newStore(t, Options{})
	l := create(t, s, "gen/many", sluice.LogOptions{})
	var wg sync.WaitGroup
	got := make([][]sluice.Event, readers)
	errs := make([]error, readers)
	for i := range readers {
		// Every reader its own handle: a node's readers share nothing but the store.
		h, err := s.Open(ctxFor(t), "gen/many", false, sluice.LogOptions{})
		if err != nil {
			t.Fatal(err)
		}
		wg.Go(func() { got[i], errs[i] = readToEnd(ctxFor(t), h, "", 1+i%7) })
	}
	ids := appendN(t, l, events)
	ids = append(ids, end(t, l))
	wg.Wait()
	for i := range readers {
		if errs[i] != nil {
			t.Fatalf("reader %d: %v", i, errs[i])
		}
		wantIDs(t, fmt.Sprintf("reader %d", i), got[i], ids)
	}
}
