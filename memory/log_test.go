package memory

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/sluice-dev/sluice"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func appendN(t *testing.T, l sluice.Log, n int) []string {
	t.Helper()
	ids := make([]string, n)
	for i := range n {
		id, err := l.Append(context.Background(), sluice.Event{Data: fmt.Appendf(nil, "e%d", i)})
		if err != nil {
			t.Fatalf("append %d: %v", i, err)
		}
		ids[i] = id
	}
	return ids
}

func readAll(t *testing.T, l sluice.Log, after string) []sluice.Event {
	t.Helper()
	var out []sluice.Event
	buf := make([]sluice.Event, 0, 3) // small, to exercise batching
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for {
		evs, err := l.Read(ctx, after, buf)
		out = append(out, evs...)
		if len(evs) > 0 {
			after = evs[len(evs)-1].ID
		}
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("read after %q: %v", after, err)
		}
	}
}

func TestReadResumesAfterAnyID(t *testing.T) {
	s := New(Options{})
	defer s.Close()
	l, _ := s.Create(context.Background(), "gen/x", sluice.LogOptions{})
	ids := appendN(t, l, 10)
	if _, err := l.Append(context.Background(), sluice.Event{Data: []byte("[DONE]"), End: sluice.EndDone}); err != nil {
		t.Fatal(err)
	}
	for i, after := range append([]string{""}, ids...) {
		got := readAll(t, l, after)
		if want := 11 - i; len(got) != want {
			t.Fatalf("after %q: got %d events, want %d", after, len(got), want)
		}
		for j, ev := range got[:len(got)-1] {
			if want := fmt.Sprintf("e%d", i+j); string(ev.Data) != want {
				t.Fatalf("after %q: event %d is %q, want %q", after, j, ev.Data, want)
			}
		}
		if last := got[len(got)-1]; last.End != sluice.EndDone {
			t.Fatalf("after %q: last event %+v does not end the log", after, last)
		}
	}
}

func TestIDsIncreaseWithinOneIncarnation(t *testing.T) {
	s := New(Options{})
	defer s.Close()
	lg, _ := s.Create(context.Background(), "t", sluice.LogOptions{})
	l := lg.(*Log)
	ids := appendN(t, l, 1000)
	var prev uint64
	for _, id := range ids {
		seq, ours, err := l.parseID(id)
		if err != nil || !ours || seq != prev+1 {
			t.Fatalf("id %q: seq %d, ours %v, %v; want seq %d of this log", id, seq, ours, err, prev+1)
		}
		prev = seq
	}
	if last, _, _ := l.Last(context.Background()); last != ids[len(ids)-1] {
		t.Fatalf("Last = %q, want %q", last, ids[len(ids)-1])
	}
}

func TestReadWaitsForAppend(t *testing.T) {
	s := New(Options{})
	defer s.Close()
	l, _ := s.Create(context.Background(), "t", sluice.LogOptions{})
	got := make(chan []sluice.Event)
	go func() {
		evs, _ := l.Read(context.Background(), "", make([]sluice.Event, 0, 4))
		got <- evs
	}()
	appendN(t, l, 1)
	if evs := <-got; len(evs) != 1 || string(evs[0].Data) != "e0" {
		t.Fatalf("got %+v", evs)
	}
}

func TestReadStopsOnContext(t *testing.T) {
	s := New(Options{})
	defer s.Close()
	l, _ := s.Create(context.Background(), "t", sluice.LogOptions{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() {
		_, err := l.Read(ctx, "", make([]sluice.Event, 0, 4))
		done <- err
	}()
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
}

func TestEndedLogRefusesAppends(t *testing.T) {
	s := New(Options{})
	defer s.Close()
	l, _ := s.Create(context.Background(), "t", sluice.LogOptions{})
	if _, err := l.Append(context.Background(), sluice.Event{End: sluice.EndCancelled}); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Append(context.Background(), sluice.Event{}); sluice.ErrorCode(err) != sluice.ECONFLICT {
		t.Fatalf("append after end: %v, want ECONFLICT", err)
	}
	if _, end, _ := l.Last(context.Background()); end != sluice.EndCancelled {
		t.Fatalf("end = %v", end)
	}
}

func TestBounds(t *testing.T) {
	tests := []struct {
		name      string
		ring      bool
		wantFirst string // data of the oldest event kept
		wantErr   string
	}{
		{"full log refuses", false, "e0", sluice.EFULL},
		{"ring drops oldest", true, "e3", ""}, // e0..e4 and the end: the last three stay
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := New(Options{})
			defer s.Close()
			l, _ := s.Create(context.Background(), "t", sluice.LogOptions{MaxLen: 3, Ring: tt.ring})
			appendN(t, l, 3)
			for i := 3; i < 5; i++ {
				_, err := l.Append(context.Background(), sluice.Event{Data: fmt.Appendf(nil, "e%d", i)})
				if sluice.ErrorCode(err) != tt.wantErr {
					t.Fatalf("append %d: err %v, want code %q", i, err, tt.wantErr)
				}
			}
			if _, err := l.Append(context.Background(), sluice.Event{End: sluice.EndDone}); err != nil {
				t.Fatalf("a full log must still take its end: %v", err)
			}
			got := readAll(t, l, "")
			if string(got[0].Data) != tt.wantFirst {
				t.Fatalf("oldest kept = %q, want %q", got[0].Data, tt.wantFirst)
			}
		})
	}
}

func TestEndedLogExpires(t *testing.T) {
	s := New(Options{Retention: 20 * time.Millisecond})
	defer s.Close()
	ctx := context.Background()
	l, _ := s.Create(ctx, "gen/a", sluice.LogOptions{})
	if _, err := s.Open(ctx, "gen/a", false, sluice.LogOptions{}); err != nil {
		t.Fatal(err)
	}
	l.Append(ctx, sluice.Event{End: sluice.EndDone})
	deadline := time.Now().Add(5 * time.Second)
	for s.Len() > 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if _, err := s.Open(ctx, "gen/a", false, sluice.LogOptions{}); sluice.ErrorCode(err) != sluice.ENOTFOUND {
		t.Fatalf("open after retention: %v, want ENOTFOUND", err)
	}
	if _, err := s.Create(ctx, "gen/a", sluice.LogOptions{}); err != nil {
		t.Fatalf("the name is free again: %v", err)
	}
}

func TestCreateTwiceConflicts(t *testing.T) {
	s := New(Options{})
	defer s.Close()
	s.Create(context.Background(), "x", sluice.LogOptions{})
	if _, err := s.Create(context.Background(), "x", sluice.LogOptions{}); sluice.ErrorCode(err) != sluice.ECONFLICT {
		t.Fatalf("err = %v", err)
	}
}

// TestManyReadersSeeEveryEvent runs readers and a writer at once, under the
// race detector in CI: every reader gets every event, in order, once.
func TestManyReadersSeeEveryEvent(t *testing.T) {
	s := New(Options{})
	defer s.Close()
	l, _ := s.Create(context.Background(), "t", sluice.LogOptions{})
	const readers, events = 50, 500
	var wg sync.WaitGroup
	errs := make(chan error, readers)
	for range readers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			after, n := "", 0
			buf := make([]sluice.Event, 0, 7)
			for {
				evs, err := l.Read(context.Background(), after, buf)
				for _, ev := range evs {
					if ev.End == sluice.EndNone && string(ev.Data) != fmt.Sprintf("e%d", n) {
						errs <- fmt.Errorf("event %d is %q", n, ev.Data)
						return
					}
					n++
					after = ev.ID
				}
				if errors.Is(err, io.EOF) {
					if n != events+1 {
						errs <- fmt.Errorf("read %d events, want %d", n, events+1)
					}
					return
				}
			}
		}()
	}
	appendN(t, l, events)
	l.Append(context.Background(), sluice.Event{End: sluice.EndDone})
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestRingReaderIsToldWhatItMissed(t *testing.T) {
	s := New(Options{})
	defer s.Close()
	l, _ := s.Create(context.Background(), "t", sluice.LogOptions{MaxLen: 3, Ring: true})
	ids := appendN(t, l, 6) // e3, e4, e5 are kept
	evs, err := l.Read(context.Background(), ids[0], make([]sluice.Event, 0, 8))
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 4 || evs[0].Name != sluice.GapEvent || evs[0].ID != ids[2] {
		t.Fatalf("got %+v, want a gap under the ID of e2, then e3..e5", evs)
	}
	if g := gapOf(t, evs[0]); g.Reason != sluice.GapTrimmed || g.Missed != 2 || g.Message == "" {
		t.Fatalf("gap %+v, want 2 trimmed", g)
	}
	if string(evs[1].Data) != "e3" || evs[3].ID != ids[5] {
		t.Fatalf("after the gap: %+v", evs[1:])
	}
	// Resuming from the gap's ID goes on without another gap; a reader
	// from the start is not told of a gap.
	for _, after := range []string{evs[0].ID, ""} {
		evs, _ := l.Read(context.Background(), after, make([]sluice.Event, 0, 8))
		if len(evs) != 3 || string(evs[0].Data) != "e3" {
			t.Fatalf("after %q: %+v", after, evs)
		}
	}
}

func gapOf(t *testing.T, ev sluice.Event) sluice.Gap {
	t.Helper()
	var g sluice.Gap
	if err := json.Unmarshal(ev.Data, &g); err != nil {
		t.Fatalf("gap data %q: %v", ev.Data, err)
	}
	return g
}
