package redis

import (
	"context"
	"errors"
	"io"
	"strconv"
	"testing"
	"time"

	"github.com/sluice-dev/sluice"
	"github.com/sluice-dev/sluice/internal/testenv"
)

// storedTop is the top offset Redis holds for l, read with a command that
// a CLIENT PAUSE WRITE lets through.
func storedTop(t *testing.T, s *Store, l sluice.Log) uint64 {
	t.Helper()
	v, err := s.client.Do(context.Background(), s.client.B().Hget().Key(l.(*Log).keys[0]).Field("t").Build()).ToString()
	if err != nil {
		t.Fatal(err)
	}
	n, _ := strconv.ParseUint(v, 10, 64)
	return n
}

// TestTheWritersReadersGetADeferredEventBeforeRedisStoresIt pauses Redis's
// writes: a reader on the node that writes the log gets the deferred event
// at once, under the ID Redis then gives it, while Redis does not hold it
// yet.
func TestTheWritersReadersGetADeferredEventBeforeRedisStoresIt(t *testing.T) {
	r := testenv.StartRedis(t)
	s := newStore(t, r.URL, Options{Lease: time.Minute})
	// Pauses and looks go on connections of their own: a command queued
	// behind a paused one on the same connection would wait with it.
	ctl := newStore(t, r.URL, Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	l, err := s.Create(ctx, "gen/early", sluice.LogOptions{Lost: lostData})
	if err != nil {
		t.Fatal(err)
	}
	one, err := l.Append(ctx, sluice.Event{Data: []byte("one")})
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan []sluice.Event, 1)
	go func() {
		evs, _ := l.Read(ctx, one, make([]sluice.Event, 0, 4))
		got <- evs
	}()
	testenv.Eventually(t, "the reader to wait", func() bool { return waiting(s, l.(*Log)) == 1 })

	if err := ctl.client.Do(ctx, ctl.client.B().ClientPause().Timeout(5000).Write().Build()).Error(); err != nil {
		t.Fatal(err)
	}
	unpaused := false
	unpause := func() {
		if !unpaused {
			unpaused = true
			if err := ctl.client.Do(context.Background(), ctl.client.B().ClientUnpause().Build()).Error(); err != nil {
				t.Error(err)
			}
		}
	}
	defer unpause()
	deferred := make(chan error, 1)
	go func() { deferred <- l.(*Log).Defer(ctx, sluice.Event{Data: []byte("two")}) }()
	var evs []sluice.Event
	select {
	case evs = <-got:
	case <-time.After(4 * time.Second):
		t.Fatal("the reader on the writer's node did not get the deferred event while Redis's writes were paused")
	}
	if top := storedTop(t, ctl, l); top != 1 {
		t.Fatalf("Redis holds %d events while paused; the test needs it to hold only the first", top)
	}
	unpause()
	if err := <-deferred; err != nil {
		t.Fatal(err)
	}
	stored, err := l.Poll(ctx, one, make([]sluice.Event, 0, 4))
	if err != nil || len(evs) != 1 || len(stored) != 1 || evs[0].ID != stored[0].ID || string(evs[0].Data) != "two" {
		t.Fatalf("the reader got %q before Redis stored %q (%v); want the same event", evs, stored, err)
	}
	if top := storedTop(t, ctl, l); top != 2 {
		t.Fatalf("Redis holds %d events after the pause; want 2", top)
	}
}

// TestAProvisionalEventRedisRefusesIsFollowedByTheLostEnding: the writer's
// lease lapses in Redis unbeknown to it; its next deferred event reaches
// its own node's reader, then Redis refuses it and ends the log as lost.
// That reader gets the lost ending next; a reader on another node gets the
// first event and the lost ending, and so does one that resumes there
// after the refused event's ID; the same ending, under one ID, for all.
// The writer appends nothing more.
func TestAProvisionalEventRedisRefusesIsFollowedByTheLostEnding(t *testing.T) {
	r := testenv.StartRedis(t)
	opts := Options{Prefix: "refused", Lease: time.Minute}
	w, other := newStore(t, r.URL, opts), newStore(t, r.URL, opts)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	l, err := w.Create(ctx, "gen/refused", sluice.LogOptions{Lost: lostData})
	if err != nil {
		t.Fatal(err)
	}
	one, err := l.Append(ctx, sluice.Event{Data: []byte("one")})
	if err != nil {
		t.Fatal(err)
	}
	h, err := other.Open(ctx, l.Name(), false, sluice.LogOptions{})
	if err != nil {
		t.Fatal(err)
	}
	local, remote := follow(ctx, l), follow(ctx, h)
	testenv.Eventually(t, "both readers to wait", func() bool {
		return waiting(w, l.(*Log)) == 1 && waiting(other, h.(*Log)) == 1
	})

	if err := w.client.Do(ctx, w.client.B().Hset().Key(l.(*Log).keys[0]).FieldValue().FieldValue("l", "1").Build()).Error(); err != nil {
		t.Fatal(err)
	}
	// Handed out at once, the event's refusal comes with the next
	// Defer or Flush.
	if err := l.(*Log).Defer(ctx, sluice.Event{Data: []byte("two")}); err != nil && sluice.ErrorKind(err) != "node_lost" {
		t.Fatalf("the deferred event after the lease lapsed: %v; want nil or node_lost", err)
	}
	if err := l.(*Log).Flush(ctx); sluice.ErrorKind(err) != "node_lost" {
		t.Fatalf("Flush after the deferred event that Redis refused: %v; want node_lost", err)
	}
	ending := formatID(1+provisionalSlack+1, l.(*Log).epoch)
	check := func(who string, evs []sluice.Event, want ...string) {
		t.Helper()
		ok := len(evs) == len(want)
		for i := 0; ok && i < len(want); i++ {
			ok = evs[i].ID == want[i]
		}
		if !ok || string(evs[len(evs)-1].Data) != string(lostData) || evs[len(evs)-1].End != sluice.EndError {
			t.Fatalf("%s got %q; want the events %q, the last the lost ending", who, evs, want)
		}
	}
	two := formatID(2, l.(*Log).epoch)
	check("the writer's node's reader", <-local, one, two, ending)
	check("the other node's reader", <-remote, one, ending)
	evs, err := h.Read(ctx, two, make([]sluice.Event, 0, 4))
	if !errors.Is(err, io.EOF) && err != nil {
		t.Fatal(err)
	}
	check("a reader resuming on the other node after the refused event", evs, ending)

	if _, err := l.Append(ctx, sluice.Event{Data: []byte("[DONE]"), End: sluice.EndDone}); err == nil {
		t.Fatal("the writer ended the log after Redis refused its event")
	}
	all, err := h.Poll(ctx, "", make([]sluice.Event, 0, 8))
	if err != nil && !errors.Is(err, io.EOF) {
		t.Fatal(err)
	}
	check("a reader from the start", all, one, ending)
}

// TestAnIDPastTheTopOfALeasedLogIsWaitedForWithinTheSlack reads, on a node
// that does not write the log, after IDs past the top Redis holds: up to
// provisionalSlack past the top of an open leased log, the writer may have
// handed it out (nothing follows it yet); one more, or past the top of a
// log with no lease, or of one that has ended, was never issued.
func TestAnIDPastTheTopOfALeasedLogIsWaitedForWithinTheSlack(t *testing.T) {
	r := testenv.StartRedis(t)
	opts := Options{Prefix: "slack", Lease: time.Minute}
	w, other := newStore(t, r.URL, opts), newStore(t, r.URL, opts)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	leased, err := w.Create(ctx, "gen/leased", sluice.LogOptions{Lost: lostData})
	if err != nil {
		t.Fatal(err)
	}
	plain, err := w.Create(ctx, "gen/plain", sluice.LogOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range []sluice.Log{leased, plain} {
		if _, err := l.Append(ctx, sluice.Event{Data: []byte("one")}); err != nil {
			t.Fatal(err)
		}
	}
	poll := func(l sluice.Log, off uint64) error {
		h, err := other.Open(ctx, l.Name(), false, sluice.LogOptions{})
		if err != nil {
			t.Fatal(err)
		}
		evs, err := h.Poll(ctx, formatID(off, l.(*Log).epoch), make([]sluice.Event, 0, 4))
		if len(evs) != 0 {
			t.Fatalf("%s after %d: %q", l.Name(), off, evs)
		}
		return err
	}
	for _, tc := range []struct {
		what    string
		l       sluice.Log
		off     uint64
		invalid bool
	}{
		{"one past the top of a leased log", leased, 2, false},
		{"the slack past the top of a leased log", leased, 1 + provisionalSlack, false},
		{"one past the slack", leased, 2 + provisionalSlack, true},
		{"one past the top of a log with no lease", plain, 2, true},
	} {
		err := poll(tc.l, tc.off)
		if got := sluice.ErrorCode(err) == sluice.EINVALID; got != tc.invalid || (!got && err != nil) {
			t.Errorf("%s: %v; want invalid %v", tc.what, err, tc.invalid)
		}
	}
	end, err := leased.Append(ctx, sluice.Event{Data: []byte("[DONE]"), End: sluice.EndDone})
	if err != nil {
		t.Fatal(err)
	}
	_ = end
	if err := poll(leased, 3); sluice.ErrorCode(err) != sluice.EINVALID {
		t.Errorf("one past the top of an ended log: %v; want EINVALID", err)
	}
}
