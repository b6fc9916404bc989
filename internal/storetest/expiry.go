package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/sluice-dev/sluice"
)

// retention is the short retention of the tests of expiry. Whether a log
// is kept is checked at several times it, so that a loaded machine does
// not make a kept log look forgotten or the other way round.
const retention = 500 * time.Millisecond

// gone waits until the named log is forgotten, failing t after longTime.
// Opening a ring uses it, so gone suits only logs that are not rings.
func gone(t *testing.T, s sluice.Store, name string) {
	t.Helper()
	deadline := time.Now().Add(longTime)
	for {
		_, err := s.Open(ctxFor(t), name, false, sluice.LogOptions{})
		if sluice.ErrorCode(err) == sluice.ENOTFOUND {
			return
		}
		if err != nil {
			t.Fatalf("open %s: %v", name, err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s is still kept %v after it ended; retention is %v", name, longTime, retention)
		}
		time.Sleep(retention / 10)
	}
}

func testRetention(t *testing.T, newStore NewStore) {
	s := newStore(t, Options{Retention: retention})
	if s.Retention() != retention {
		t.Fatalf("Retention() = %v, want %v", s.Retention(), retention)
	}
	ctx := ctxFor(t)
	l := create(t, s, "gen/ended", sluice.LogOptions{})
	ids := appendN(t, l, 2)
	create(t, s, "gen/open", sluice.LogOptions{}) // no end: not the retention's
	ids = append(ids, end(t, l))
	r, err := s.Open(ctx, "gen/ended", false, sluice.LogOptions{})
	if err != nil {
		t.Fatalf("an ended log must be kept for the retention: %v", err)
	}
	wantIDs(t, "ended log", readAll(t, r, "", 4), ids)

	gone(t, s, "gen/ended")
	if _, err := s.Open(ctx, "gen/open", false, sluice.LogOptions{}); err != nil {
		t.Fatalf("an open log was forgotten along with an ended one: %v", err)
	}
}

func testReplaced(t *testing.T, newStore NewStore) {
	s := newStore(t, Options{Retention: retention})
	ctx := ctxFor(t)
	old := create(t, s, "gen/again", sluice.LogOptions{})
	oldIDs := appendN(t, old, 2)
	end(t, old)
	gone(t, s, "gen/again")

	l := create(t, s, "gen/again", sluice.LogOptions{})
	ids := appendN(t, l, 3)
	for _, after := range []string{oldIDs[1], oldIDs[0], "7"} { // "7": a plain ID, as earlier versions issued
		if err := sluice.CheckAfter(ctx, l, after); err != nil {
			t.Fatalf("CheckAfter %q of another incarnation: %v; want nil", after, err)
		}
		evs, err := poll(t, l, after, 10)
		if err != nil || len(evs) != 4 {
			t.Fatalf("after %q of another incarnation: %q, %v; want a gap and 3 events", after, evs, err)
		}
		if g := gapOf(t, evs[0]); g.Reason != sluice.GapReplaced || g.Missed != 0 || g.Message == "" {
			t.Fatalf("gap after %q = %+v; want replaced, no count", after, g)
		}
		wantIDs(t, "after the gap", evs[1:], ids)
		wantIDs(t, "resumed from the gap's ID", readAll0(t, l, evs[0].ID), ids)
	}
	// The gap counts toward the buffer like any event.
	evs, err := poll(t, l, oldIDs[0], 1)
	if err != nil || len(evs) != 1 || evs[0].Name != sluice.GapEvent {
		t.Fatalf("replaced gap into a buffer of one: %q, %v", evs, err)
	}
}

func testIdleRing(t *testing.T, newStore NewStore) {
	s := newStore(t, Options{Retention: retention})
	ctx := ctxFor(t)
	idle := create(t, s, "topic/idle", sluice.LogOptions{Ring: true, MaxLen: 10})
	appendN(t, idle, 1)
	watched := create(t, s, "topic/watched", sluice.LogOptions{Ring: true, MaxLen: 10})
	last := appendN(t, watched, 1)[0]

	rctx, stop := context.WithCancel(ctx)
	defer stop()
	type result struct {
		evs []sluice.Event
		err error
	}
	got := make(chan result, 1)
	go func() {
		evs, err := watched.Read(rctx, last, make([]sluice.Event, 0, 4))
		got <- result{evs, err}
	}()

	// Nothing tells that a log was kept: look after several retentions
	// (opening a ring uses it, so only once).
	time.Sleep(4 * retention)
	_, err := s.Open(ctx, "topic/idle", false, sluice.LogOptions{})
	wantCode(t, "a ring idle for 4 retentions", err, sluice.ENOTFOUND)
	if _, err := s.Open(ctx, "topic/watched", false, sluice.LogOptions{}); err != nil {
		t.Fatalf("a ring with a waiting reader was forgotten: %v", err)
	}
	id := appendN(t, watched, 1)[0]
	r := <-got
	if r.err != nil || len(r.evs) != 1 || r.evs[0].ID != id {
		t.Fatalf("the waiting reader got %q, %v; want %q", r.evs, r.err, id)
	}

	// Its reader gone, the ring is idle too.
	time.Sleep(4 * retention)
	_, err = s.Open(ctx, "topic/watched", false, sluice.LogOptions{})
	wantCode(t, "a ring idle for 4 retentions after its reader left", err, sluice.ENOTFOUND)
}
