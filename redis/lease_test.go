package redis

import (
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/sluice-dev/sluice"
	"github.com/sluice-dev/sluice/internal/testenv"
)

var lostData = []byte(`{"error":{"code":"node_lost"}}`)

// follow reads l from the start to its end in a goroutine, and returns
// what it read when done.
func follow(ctx context.Context, l sluice.Log) <-chan []sluice.Event {
	out := make(chan []sluice.Event, 1)
	go func() {
		var got []sluice.Event
		after := ""
		for {
			evs, err := l.Read(ctx, after, make([]sluice.Event, 0, 8))
			for _, ev := range evs {
				ev.Data = append([]byte(nil), ev.Data...)
				got = append(got, ev)
				after = ev.ID
			}
			if err != nil {
				if !errors.Is(err, io.EOF) {
					got = append(got, sluice.Event{Name: "error: " + err.Error()})
				}
				out <- got
				return
			}
		}
	}()
	return out
}

// TestALostWritersLogEndsOnceWithinTheBound has the writer's node stop
// renewing its lease, as a frozen node does, while readers on two other
// nodes wait: the log ends with its lost event once, within the stated
// bound, and the writer's late append is refused.
func TestALostWritersLogEndsOnceWithinTheBound(t *testing.T) {
	const lease = 600 * time.Millisecond
	r := testenv.StartRedis(t)
	opts := Options{Prefix: "lease", Lease: lease}
	writer, b, c := newStore(t, r.URL, opts), newStore(t, r.URL, opts), newStore(t, r.URL, opts)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	l, err := writer.Create(ctx, "gen/lost", sluice.LogOptions{Lost: lostData})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Append(ctx, sluice.Event{Data: []byte("one")}); err != nil {
		t.Fatal(err)
	}
	var readers []<-chan []sluice.Event
	for _, s := range []*Store{b, c} {
		h, err := s.Open(ctx, "gen/lost", false, sluice.LogOptions{})
		if err != nil {
			t.Fatal(err)
		}
		readers = append(readers, follow(ctx, h))
	}
	// The writer's node subscribes too, as it creates the log (feeds.prime).
	testenv.Eventually(t, "both readers to subscribe", func() bool { return subscribers(t, b, l) == 3 })

	// Renewed, the lease holds for several times its length.
	time.Sleep(3 * lease)
	if _, err := l.Append(ctx, sluice.Event{Data: []byte("two")}); err != nil {
		t.Fatalf("an append by a writer that renews its lease: %v", err)
	}

	writer.leases.drop(l.(*Log)) // it renews no more: frozen, as far as Redis can tell
	lost := time.Now()
	var got [][]sluice.Event
	for _, rd := range readers {
		got = append(got, <-rd)
	}
	// From the last renewal, at most Lease/3 before the drop; a second
	// more for a busy machine.
	if took, bound := time.Since(lost), lease+lease/3+time.Second; took > bound {
		t.Fatalf("the readers heard of the lost writer after %v; the bound is %v", took, bound)
	}
	for i, evs := range got {
		if len(evs) != 3 || string(evs[0].Data) != "one" || string(evs[1].Data) != "two" ||
			string(evs[2].Data) != string(lostData) || evs[2].End != sluice.EndError {
			t.Fatalf("reader %d got %q", i, evs)
		}
	}
	if got[0][2].ID != got[1][2].ID {
		t.Fatalf("the readers got different endings: %s and %s", got[0][2].ID, got[1][2].ID)
	}

	_, err = l.Append(ctx, sluice.Event{Data: []byte("three, late")})
	if sluice.ErrorCode(err) != sluice.ECONFLICT {
		t.Fatalf("the lost writer's late append: %v, want ECONFLICT", err)
	}
	all, err := l.Poll(ctx, "", make([]sluice.Event, 0, 10))
	if err != nil || len(all) != 3 {
		t.Fatalf("the log holds %q, %v; want the two events and one ending", all, err)
	}
}

// TestAWriterThatWakesLateEndsItsOwnLogAsLost: with nobody reading, the
// lost writer's own next append finds its lease lapsed and ends the log
// as lost rather than carry on.
func TestAWriterThatWakesLateEndsItsOwnLogAsLost(t *testing.T) {
	const lease = 300 * time.Millisecond
	s := newStore(t, testenv.StartRedis(t).URL, Options{Lease: lease})
	ctx := context.Background()
	l, err := s.Create(ctx, "gen/late", sluice.LogOptions{Lost: lostData})
	if err != nil {
		t.Fatal(err)
	}
	s.leases.drop(l.(*Log))
	time.Sleep(2 * lease) // frozen past its lease
	if _, err := l.Append(ctx, sluice.Event{Data: []byte("late")}); sluice.ErrorCode(err) != sluice.ECONFLICT {
		t.Fatalf("append after the lease lapsed: %v, want ECONFLICT", err)
	}
	evs, err := l.Poll(ctx, "", make([]sluice.Event, 0, 4))
	if !errors.Is(err, io.EOF) && err != nil || len(evs) != 1 || string(evs[0].Data) != string(lostData) || evs[0].End != sluice.EndError {
		t.Fatalf("the log holds %q, %v; want only its lost ending", evs, err)
	}
}

// TestAWaitingReaderOfALogThatExpiresIsTold: a log whose writer neither
// ends it nor holds a lease expires after OpenTTL; its waiting reader is
// told it is gone, not left waiting.
func TestAWaitingReaderOfALogThatExpiresIsTold(t *testing.T) {
	const ttl, lease = 500 * time.Millisecond, 300 * time.Millisecond
	s := newStore(t, testenv.StartRedis(t).URL, Options{OpenTTL: ttl, Lease: lease})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	l, err := s.Create(ctx, "gen/expires", sluice.LogOptions{})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err = l.Read(ctx, "", make([]sluice.Event, 0, 4))
	if sluice.ErrorCode(err) != sluice.ENOTFOUND {
		t.Fatalf("the reader got %v; want ENOTFOUND", err)
	}
	if took, bound := time.Since(start), ttl+lease/3+time.Second; took > bound {
		t.Fatalf("the reader heard after %v; want within %v", took, bound)
	}
}

// TestAStopRequestReachesTheWriter: a node asks the writer's node to stop
// a log; the writer hears of it by message, or, when the message is lost,
// from the mark at its next renewal. A log with no writer, or one that has
// ended, asks no one.
func TestAStopRequestReachesTheWriter(t *testing.T) {
	r := testenv.StartRedis(t)
	opts := Options{Prefix: "stop", Lease: 600 * time.Millisecond}
	writer, other := newStore(t, r.URL, opts), newStore(t, r.URL, opts)
	stops := make(chan string, 4)
	writer.OnStop(func(name string) { stops <- name })
	other.OnStop(func(name string) { t.Errorf("the node that asked was asked to stop %s", name) })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	l, err := writer.Create(ctx, "gen/stop", sluice.LogOptions{Lost: lostData})
	if err != nil {
		t.Fatal(err)
	}
	h, err := other.Open(ctx, "gen/stop", false, sluice.LogOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if asked, err := other.RequestStop(ctx, h); !asked || err != nil {
		t.Fatalf("RequestStop: %v, %v", asked, err)
	}
	if name := <-stops; name != "gen/stop" {
		t.Fatalf("the writer was asked to stop %q", name)
	}

	// The mark alone, as when the message is lost: the next renewal finds it.
	rl := l.(*Log)
	if err := stopScript.Exec(ctx, other.client, rl.keys[:1], []string{rl.epoch}).Error(); err != nil {
		t.Fatal(err)
	}
	select {
	case name := <-stops:
		if name != "gen/stop" {
			t.Fatalf("the writer was asked to stop %q", name)
		}
	case <-time.After(opts.Lease):
		t.Fatal("the writer did not find the mark at its next renewal")
	}

	if _, err := l.Append(ctx, sluice.Event{Data: []byte("stopped"), End: sluice.EndCancelled}); err != nil {
		t.Fatal(err)
	}
	if asked, err := other.RequestStop(ctx, h); asked || err != nil {
		t.Fatalf("RequestStop of an ended log: %v, %v; want no one asked", asked, err)
	}
	free, err := other.Create(ctx, "gen/free", sluice.LogOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if asked, err := writer.RequestStop(ctx, free); asked || err != nil {
		t.Fatalf("RequestStop of a log with no writer: %v, %v; want no one asked", asked, err)
	}
}
