package redis

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluice-dev/sluice"
	"github.com/sluice-dev/sluice/internal/testenv"
)

// scriptRuns returns how many scripts Redis has run since its stats were
// reset.
func scriptRuns(t *testing.T, s *Store) int64 {
	t.Helper()
	return max(info(t, s, "commandstats", "cmdstat_evalsha"), 0) + max(info(t, s, "commandstats", "cmdstat_eval"), 0)
}

func resetStats(t *testing.T, s *Store) {
	t.Helper()
	if err := s.client.Do(context.Background(), s.client.B().ConfigResetstat().Build()).Error(); err != nil {
		t.Fatal(err)
	}
}

// TestADeferredAppendGoesAtOnceWhenIdleAndTogetherUnderLoad: the first
// deferred append of a quiet store goes at once, not after the window;
// the hundred deferred within the window go together in the next round,
// one script run, in order.
func TestADeferredAppendGoesAtOnceWhenIdleAndTogetherUnderLoad(t *testing.T) {
	const window = time.Second
	s := newStore(t, testenv.StartRedis(t).URL, Options{Coalesce: window})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	l, err := s.Create(ctx, "gen/defer", sluice.LogOptions{})
	if err != nil {
		t.Fatal(err)
	}
	dl := l.(*Log)
	start := time.Now()
	if err := dl.Defer(ctx, sluice.Event{Data: []byte("first")}); err != nil {
		t.Fatal(err)
	}
	if err := dl.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > window/2 {
		t.Fatalf("the first deferred append after a quiet spell took %v: it waited for the window", took)
	}

	resetStats(t, s)
	for i := range 100 {
		if err := dl.Defer(ctx, sluice.Event{Data: fmt.Appendf(nil, "token %d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := dl.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took < window {
		t.Fatalf("the appends deferred within the window went after %v, before it ended", took)
	}
	if n := scriptRuns(t, s); n != 1 {
		t.Fatalf("100 appends deferred within the window took %d script runs; want 1", n)
	}
	evs, err := l.Poll(ctx, "", make([]sluice.Event, 0, 200))
	if err != nil || len(evs) != 101 {
		t.Fatalf("the log holds %d events, %v; want 101", len(evs), err)
	}
	for i, ev := range evs[1:] {
		if want := fmt.Sprintf("token %d", i); string(ev.Data) != want || ev.ID != formatID(uint64(i+2), dl.epoch) {
			t.Fatalf("event %d is %s %q; want %q", i+1, ev.ID, ev.Data, want)
		}
	}
}

// TestAFullQueueMakesDeferWait: a log's queue holds maxQueueEvents; one
// more waits for room (here, for ever: the window is an hour).
func TestAFullQueueMakesDeferWait(t *testing.T) {
	s := newStore(t, testenv.StartRedis(t).URL, Options{Coalesce: time.Hour})
	ctx := context.Background()
	l, err := s.Create(ctx, "gen/full", sluice.LogOptions{})
	if err != nil {
		t.Fatal(err)
	}
	dl := l.(*Log)
	if err := dl.Defer(ctx, sluice.Event{Data: []byte("goes at once")}); err != nil {
		t.Fatal(err)
	}
	if err := dl.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	for i := range maxQueueEvents {
		if err := dl.Defer(ctx, sluice.Event{Data: []byte("x")}); err != nil {
			t.Fatalf("deferred append %d: %v", i, err)
		}
	}
	wctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	if err := dl.Defer(wctx, sluice.Event{Data: []byte("one too many")}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("a deferred append to a full queue: %v; want it to wait", err)
	}
}

// TestADeferredAppendThatFailsIsReportedAndStopsTheRest: a deferred append
// to a log that has ended fails; Flush and the next Defer report it, and
// nothing deferred after it is stored. One that goes at once (its log was
// quiet) reports its failure itself.
func TestADeferredAppendThatFailsIsReportedAndStopsTheRest(t *testing.T) {
	s := newStore(t, testenv.StartRedis(t).URL, Options{Coalesce: time.Second})
	ctx := context.Background()
	l, err := s.Create(ctx, "gen/failed", sluice.LogOptions{})
	if err != nil {
		t.Fatal(err)
	}
	other, err := s.Open(ctx, "gen/failed", false, sluice.LogOptions{})
	if err != nil {
		t.Fatal(err)
	}
	dl := l.(*Log)
	if err := dl.Defer(ctx, sluice.Event{Data: []byte("early, at once")}); err != nil {
		t.Fatal(err)
	}
	end, err := other.Append(ctx, sluice.Event{Data: []byte("ended elsewhere"), End: sluice.EndCancelled})
	if err != nil {
		t.Fatal(err)
	}
	if err := dl.Defer(ctx, sluice.Event{Data: []byte("late, within the window")}); err != nil {
		t.Fatalf("Defer waited for Redis: %v", err)
	}
	if err := dl.Flush(ctx); sluice.ErrorCode(err) != sluice.ECONFLICT {
		t.Fatalf("Flush after a failed deferred append: %v; want ECONFLICT", err)
	}
	if err := dl.Defer(ctx, sluice.Event{Data: []byte("later")}); sluice.ErrorCode(err) != sluice.ECONFLICT {
		t.Fatalf("Defer after a failed deferred append: %v; want ECONFLICT", err)
	}
	if last, _, _ := l.Last(ctx); last != end {
		t.Fatalf("the log's newest event is %s; want its ending %s", last, end)
	}
	quiet, err := s.Open(ctx, "gen/failed", false, sluice.LogOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := quiet.(*Log).Defer(ctx, sluice.Event{Data: []byte("at once")}); sluice.ErrorCode(err) != sluice.ECONFLICT {
		t.Fatalf("a deferred append that went at once to an ended log: %v; want ECONFLICT", err)
	}
}

// appendRounds counts the store's append round trips (a pipeline of
// script runs is one).
type appendRounds struct{ n atomic.Int64 }

func (a *appendRounds) Command(name string, _ time.Duration, _ error) {
	if name == "append" {
		a.n.Add(1)
	}
}

// TestCoalescingCutsScriptRunsPerToken measures what deferred appends
// save: generations writing tokens as fast as they come (an upstream that
// sends a burst) and at 50 a second each, with appends coalesced (the
// default window) and not (each one a script run and a round trip, as
// before). It logs the round trips, script runs and published messages
// per token (go test -v -run Coalescing ./redis); a burst must cost at
// most half a script run a token.
func TestCoalescingCutsScriptRunsPerToken(t *testing.T) {
	r := testenv.StartRedis(t)
	for _, tc := range []struct {
		name           string
		writers, count int
		every          time.Duration // between one writer's tokens; 0: as fast as they go
	}{
		{"burst", 20, 500, 0},
		{"50 tok/s", 20, 100, 20 * time.Millisecond},
	} {
		var runs [2]float64
		for i, coalesce := range []time.Duration{-1, 0} {
			var rounds appendRounds
			s := newStore(t, r.URL, Options{Coalesce: coalesce, Observer: &rounds})
			resetStats(t, s)
			var wg sync.WaitGroup
			for w := range tc.writers {
				l, err := s.Create(context.Background(), fmt.Sprintf("gen/%s/%d/%d", tc.name, i, w), sluice.LogOptions{})
				if err != nil {
					t.Fatal(err)
				}
				wg.Go(func() {
					dl := l.(*Log)
					next := time.Now()
					for k := range tc.count {
						if tc.every > 0 {
							next = next.Add(tc.every)
							time.Sleep(time.Until(next))
						}
						if err := dl.Defer(context.Background(), sluice.Event{Data: chunk(k)}); err != nil {
							t.Error(err)
							return
						}
					}
					if err := dl.Flush(context.Background()); err != nil {
						t.Error(err)
					}
				})
			}
			wg.Wait()
			tokens := float64(tc.writers * tc.count)
			runs[i] = float64(scriptRuns(t, s)) / tokens
			pubs := float64(max(info(t, s, "commandstats", "cmdstat_spublish"), 0)) / tokens
			t.Logf("%s, %d writers, coalescing %v: %.3f round trips, %.3f script runs and %.3f messages published a token",
				tc.name, tc.writers, map[bool]string{true: "off", false: "on (" + DefaultCoalesce.String() + ")"}[coalesce < 0],
				float64(rounds.n.Load())/tokens, runs[i], pubs)
		}
		if tc.every == 0 && runs[1] > 0.5 {
			t.Errorf("a burst coalesced cost %.3f script runs a token; want at most 0.5", runs[1])
		}
	}
}

// TestDeferredAppendsFailOnceTheStoreCloses: what is still queued when the
// store closes fails, and so does a later Defer: no writer waits for a
// round that will not come.
func TestDeferredAppendsFailOnceTheStoreCloses(t *testing.T) {
	s := newStore(t, testenv.StartRedis(t).URL, Options{Coalesce: time.Hour})
	ctx := context.Background()
	l, err := s.Create(ctx, "gen/closing", sluice.LogOptions{})
	if err != nil {
		t.Fatal(err)
	}
	dl := l.(*Log)
	for _, data := range []string{"goes at once", "waits for the hour"} {
		if err := dl.Defer(ctx, sluice.Event{Data: []byte(data)}); err != nil {
			t.Fatal(err)
		}
		if data == "goes at once" {
			if err := dl.Flush(ctx); err != nil {
				t.Fatal(err)
			}
		}
	}
	s.Close()
	if err := dl.Flush(ctx); sluice.ErrorCode(err) != sluice.EUNAVAILABLE {
		t.Fatalf("Flush after the store closed: %v; want EUNAVAILABLE", err)
	}
	other, err := newStore(t, testenv.StartRedis(t).URL, Options{Coalesce: time.Hour}).Create(ctx, "gen/late", sluice.LogOptions{})
	if err != nil {
		t.Fatal(err)
	}
	other.(*Log).s.Close()
	if err := other.(*Log).Defer(ctx, sluice.Event{Data: []byte("x")}); sluice.ErrorCode(err) != sluice.EUNAVAILABLE {
		t.Fatalf("a Defer that goes at once after Close: %v; want EUNAVAILABLE", err)
	}
	if err := other.(*Log).Flush(ctx); sluice.ErrorCode(err) != sluice.EUNAVAILABLE {
		t.Fatalf("Flush of a Defer after Close: %v; want EUNAVAILABLE", err)
	}
}

// TestAQuietLogsAppendGoesAloneNotAfterOthersRounds: with a window of a
// second and another log's tokens keeping rounds going, an append to a
// quiet log goes at once, not after the window of the rounds; and events
// deferred right after it follow it, in order, in the next round.
func TestAQuietLogsAppendGoesAloneNotAfterOthersRounds(t *testing.T) {
	const window = time.Second
	s := newStore(t, testenv.StartRedis(t).URL, Options{Coalesce: window})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	busy, err := s.Create(ctx, "gen/busy", sluice.LogOptions{})
	if err != nil {
		t.Fatal(err)
	}
	quiet, err := s.Create(ctx, "gen/quiet", sluice.LogOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// The busy log's first token goes at once; once it is stored, the
	// rest wait for a round a window later: the coalescer is mid-window
	// from here on.
	for i := range 10 {
		if err := busy.(*Log).Defer(ctx, sluice.Event{Data: fmt.Appendf(nil, "busy %d", i)}); err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			if err := busy.(*Log).Flush(ctx); err != nil {
				t.Fatal(err)
			}
		}
	}
	start := time.Now()
	ql := quiet.(*Log)
	for i := range 50 { // the first goes at once; the others, within the quiet spell, in a round
		if err := ql.Defer(ctx, sluice.Event{Data: fmt.Appendf(nil, "quiet %d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	first := make(chan time.Duration, 1)
	go func() {
		evs, err := quiet.Read(ctx, "", make([]sluice.Event, 0, 1))
		if err != nil || len(evs) != 1 || string(evs[0].Data) != "quiet 0" {
			t.Errorf("the quiet log's first read: %v, %v", evs, err)
		}
		first <- time.Since(start)
	}()
	if took := <-first; took > window/2 {
		t.Fatalf("the quiet log's first event was readable after %v: it waited for the window of another log's rounds", took)
	}
	if err := ql.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	var evs []sluice.Event
	for len(evs) < 50 { // a poll may return fewer than follow: those the node has received
		more, err := quiet.Poll(ctx, formatID(uint64(len(evs)), ql.epoch), make([]sluice.Event, 0, 64))
		if err != nil || len(more) == 0 {
			t.Fatalf("the quiet log holds %d events, %v; want 50", len(evs), err)
		}
		evs = append(evs, more...)
	}
	for i, ev := range evs {
		if want := fmt.Sprintf("quiet %d", i); string(ev.Data) != want || ev.ID != formatID(uint64(i+1), ql.epoch) {
			t.Fatalf("event %d is %s %q; want %q: out of order", i, ev.ID, ev.Data, want)
		}
	}
	if err := busy.(*Log).Flush(ctx); err != nil {
		t.Fatal(err)
	}
}
