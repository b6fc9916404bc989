package memory

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"testing"

	"github.com/sluice-dev/sluice"
)

// TestReadAfterEachKindOfID holds the contract of sluice.Log on IDs: what a
// reader gets after each kind of ID, from a ring of three that has trimmed
// two events.
func TestReadAfterEachKindOfID(t *testing.T) {
	ctx := context.Background()
	s := New(Options{})
	defer s.Close()
	lg, _ := s.Create(ctx, "topic/t", sluice.LogOptions{MaxLen: 3, Ring: true})
	l := lg.(*Log)
	ids := appendN(t, l, 5) // e2, e3, e4 are kept
	epoch := l.epoch

	// The same name in a restarted process: another store, another log.
	s2 := New(Options{})
	defer s2.Close()
	other, _ := s2.Create(ctx, "topic/t", sluice.LogOptions{MaxLen: 3, Ring: true})
	otherIDs := appendN(t, other, 4)
	if otherIDs[1] == ids[1] || other.(*Log).epoch == epoch {
		t.Fatalf("a recreated log issues the IDs of the old one: %q, epoch %q", otherIDs[1], epoch)
	}

	const none = "" // no gap
	tests := []struct {
		name    string
		after   string
		gap     string // the gap's reason, or none
		gapID   string
		missed  uint64
		want    []string // data of the events after the gap
		invalid bool
	}{
		{name: "from the start", after: "", want: []string{"e2", "e3", "e4"}},
		{name: "a kept ID", after: ids[3], want: []string{"e4"}},
		{name: "the newest ID", after: ids[4], want: nil},
		{name: "before the first", after: "0-" + epoch, want: []string{"e2", "e3", "e4"}},
		{name: "a trimmed ID", after: ids[0], gap: sluice.GapTrimmed, gapID: ids[1], missed: 1, want: []string{"e2", "e3", "e4"}},
		{name: "the last trimmed ID", after: ids[1], want: []string{"e2", "e3", "e4"}},
		{name: "another incarnation's", after: otherIDs[1], gap: sluice.GapReplaced, gapID: "0-" + epoch, want: []string{"e2", "e3", "e4"}},
		{name: "another incarnation's past this one's end", after: "99-" + other.(*Log).epoch, gap: sluice.GapReplaced, gapID: "0-" + epoch, want: []string{"e2", "e3", "e4"}},
		{name: "an earlier version's plain ID", after: "42", gap: sluice.GapReplaced, gapID: "0-" + epoch, want: []string{"e2", "e3", "e4"}},
		// Without the epoch this would skip e2 and e3 without a word.
		{name: "a plain ID this log has too", after: "3", gap: sluice.GapReplaced, gapID: "0-" + epoch, want: []string{"e2", "e3", "e4"}},
		{name: "never issued here", after: "6-" + epoch, invalid: true},
		{name: "far from issued here", after: "18446744073709551615-" + epoch, invalid: true},
	}
	for _, bad := range []string{"abc", "-1", "01", "1.5", "99999999999999999999999", " 1", "1 ", "1-", "-" + epoch, "01-" + epoch,
		"1-0" + epoch, "1-" + epoch + "-", "1-MH3K2X1A", "1-mh3k_x1a", "1-zzzzzzzzzzzzzz", "+1-" + epoch, "1--" + epoch} {
		tests = append(tests, struct {
			name    string
			after   string
			gap     string
			gapID   string
			missed  uint64
			want    []string
			invalid bool
		}{name: fmt.Sprintf("garbage %q", bad), after: bad, invalid: true})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			evs, err := l.Poll(ctx, tt.after, make([]sluice.Event, 0, 8))
			if tt.invalid {
				if sluice.ErrorCode(err) != sluice.EINVALID {
					t.Fatalf("got %d events, %v; want EINVALID", len(evs), err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tt.gap != none {
				if len(evs) == 0 || evs[0].Name != sluice.GapEvent {
					t.Fatalf("got %+v, want a gap first", evs)
				}
				g := gapOf(t, evs[0])
				if g.Reason != tt.gap || g.Missed != tt.missed || evs[0].ID != tt.gapID || g.Message == "" {
					t.Fatalf("gap %+v under ID %q; want %s, %d missed, under %q", g, evs[0].ID, tt.gap, tt.missed, tt.gapID)
				}
				evs = evs[1:]
			}
			var got []string
			for _, ev := range evs {
				if ev.Name == sluice.GapEvent {
					t.Fatalf("a second gap: %+v", ev)
				}
				got = append(got, string(ev.Data))
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Fatalf("events %q, want %q", got, tt.want)
			}
		})
	}
}

// TestAReplacedReaderResumesFromTheGapsID reads one event at a time: the
// gap alone, then, after its ID, every event kept, and no other gap.
func TestAReplacedReaderResumesFromTheGapsID(t *testing.T) {
	ctx := context.Background()
	s := New(Options{})
	defer s.Close()
	for _, ring := range []bool{true, false} {
		t.Run(fmt.Sprint("ring ", ring), func(t *testing.T) {
			l, _ := s.Create(ctx, fmt.Sprint("log/", ring), sluice.LogOptions{MaxLen: 3, Ring: ring})
			evs, err := l.Poll(ctx, "42", make([]sluice.Event, 0, 1))
			if err != nil || len(evs) != 1 || evs[0].Name != sluice.GapEvent {
				t.Fatalf("an empty log: %+v, %v; want the gap alone", evs, err)
			}
			after := evs[0].ID
			if evs, err := l.Poll(ctx, after, make([]sluice.Event, 0, 1)); err != nil || len(evs) != 0 {
				t.Fatalf("after the gap of an empty log: %+v, %v; want nothing yet", evs, err)
			}
			appendN(t, l, 3)
			var got []string
			for range 3 {
				evs, err := l.Read(ctx, after, make([]sluice.Event, 0, 1))
				if err != nil || len(evs) != 1 {
					t.Fatalf("%+v, %v", evs, err)
				}
				got = append(got, string(evs[0].Data))
				after = evs[0].ID
			}
			if fmt.Sprint(got) != "[e0 e1 e2]" {
				t.Fatalf("read %q", got)
			}
		})
	}
}

func TestPollNeverWaits(t *testing.T) {
	ctx := context.Background()
	s := New(Options{})
	defer s.Close()
	l, _ := s.Create(ctx, "gen/p", sluice.LogOptions{})
	if evs, err := l.Poll(ctx, "", make([]sluice.Event, 0, 4)); err != nil || len(evs) != 0 {
		t.Fatalf("an empty log: %+v, %v", evs, err)
	}
	ids := appendN(t, l, 2)
	if evs, err := l.Poll(ctx, ids[0], make([]sluice.Event, 0, 4)); err != nil || len(evs) != 1 || evs[0].ID != ids[1] {
		t.Fatalf("after the first: %+v, %v", evs, err)
	}
	end, _ := l.Append(ctx, sluice.Event{End: sluice.EndDone})
	if _, err := l.Poll(ctx, end, make([]sluice.Event, 0, 4)); err != io.EOF {
		t.Fatalf("after the end: %v, want io.EOF", err)
	}
	if err := sluice.CheckAfter(ctx, l, ids[1]); err != nil {
		t.Fatalf("CheckAfter before the end: %v", err)
	}
}

// TestIDsAcrossEveryCarry reads events whose sequence numbers cross each
// number of digits: each ID, made from the one before it, is the ID of its
// own sequence, and the batch's arena was sized exactly.
func TestIDsAcrossEveryCarry(t *testing.T) {
	l := newLog("gen/carry", sluice.LogOptions{MaxLen: 1 << 20})
	ctx := context.Background()
	for range 1200 {
		l.Append(ctx, sluice.Event{Data: []byte("x")})
	}
	for _, start := range []uint64{0, 5, 95, 985, 1100} {
		evs, scratch, err := l.ReadScratch(ctx, string(appendID(nil, start, l.epoch)), make([]sluice.Event, 0, 64), nil)
		if err != nil {
			t.Fatal(err)
		}
		used := 0
		for i, ev := range evs {
			if want := string(appendID(nil, start+1+uint64(i), l.epoch)); ev.ID != want {
				t.Fatalf("after %d, event %d has ID %q, want %q", start, i, ev.ID, want)
			}
			used += len(ev.ID)
		}
		if want := idsLen(start+1, start+1+uint64(len(evs)), l.epoch); used != want || cap(scratch) != want {
			t.Fatalf("after %d: IDs of %d bytes, arena of %d, idsLen %d", start, used, cap(scratch), want)
		}
	}
	for _, v := range []uint64{0, 9, 10, 99, 100, 1<<64 - 1} {
		if d, _ := digits(v); d != len(strconv.FormatUint(v, 10)) {
			t.Errorf("digits(%d) = %d", v, d)
		}
	}
}
