package memory

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"testing"
	"time"

	"github.com/sluice-dev/sluice"
)

// distinct is n bytes that share nothing with other calls' (so each event
// is stored whole), starting with tag.
func distinct(rng *rand.Rand, tag string, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	copy(b, tag)
	return b
}

func heapAfterGC() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// kept returns the tags (first two bytes) of the events a log keeps.
func kept(t *testing.T, l sluice.Log) []string {
	t.Helper()
	evs, err := l.Poll(context.Background(), "", make([]sluice.Event, 0, 1024))
	if err != nil {
		t.Fatal(err)
	}
	out := make([]string, 0, len(evs))
	for _, ev := range evs {
		out = append(out, string(ev.Data[:min(2, len(ev.Data))]))
	}
	return out
}

func TestATopicKeepsWithinItsByteBound(t *testing.T) {
	ctx := context.Background()
	s := New(Options{TopicMaxBytes: 10_000})
	defer s.Close()
	l, _ := s.Open(ctx, "topic/b", true, sluice.LogOptions{MaxLen: 1000, Ring: true})
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 10 { // exactly the bound
		l.Append(ctx, sluice.Event{Data: distinct(rng, fmt.Sprintf("%02d", i), 1000)})
	}
	if got := kept(t, l); len(got) != 10 || got[0] != "00" {
		t.Fatalf("at the bound: %q, want all 10", got)
	}
	l.Append(ctx, sluice.Event{Data: distinct(rng, "10", 1000)}) // one past it
	if got := kept(t, l); len(got) != 10 || got[0] != "01" || got[9] != "10" {
		t.Fatalf("one past the bound: %q, want 01..10", got)
	}
	if _, b, _, _ := s.Topics(); b != 10_000 {
		t.Fatalf("the store counts %d bytes, want 10000", b)
	}
	// An event larger than the bound is kept alone, then dropped for the next.
	l.Append(ctx, sluice.Event{Data: distinct(rng, "BB", 25_000)})
	if got := kept(t, l); len(got) != 1 || got[0] != "BB" {
		t.Fatalf("after a big event: %q, want it alone", got)
	}
	l.Append(ctx, sluice.Event{Data: distinct(rng, "11", 10)})
	if got := kept(t, l); len(got) != 1 || got[0] != "11" {
		t.Fatalf("after a small one: %q, want it alone", got)
	}
	if _, b, _, _ := s.Topics(); b != 10 {
		t.Fatalf("the store counts %d bytes, want 10", b)
	}
}

func TestTopicsTogetherKeepWithinTheNodeBoundLeastRecentlyUsedFirst(t *testing.T) {
	ctx := context.Background()
	s := New(Options{Retention: time.Hour, TopicsMaxBytes: 100_000})
	defer s.Close()
	rng := rand.New(rand.NewPCG(3, 4))
	logs := make([]sluice.Log, 10)
	firstIDs := make([]string, 10)
	for i := range logs {
		logs[i], _ = s.Open(ctx, fmt.Sprint("topic/", i), true, sluice.LogOptions{MaxLen: 100, Ring: true})
		for j := range 10 {
			id, _ := logs[i].Append(ctx, sluice.Event{Data: distinct(rng, fmt.Sprintf("%d%d", i, j), 1000)})
			if j == 0 {
				firstIDs[i] = id
			}
		}
		s.sweep() // the next topic is used a sweep later
	}
	if _, b, _, trims := s.Topics(); b != 100_000 || trims != 0 {
		t.Fatalf("at the bound: %d bytes, %d trims", b, trims)
	}
	// One more event puts the node past its bound: it trims down to 7/8 of
	// it, from the topic used longest ago.
	logs[9].Append(ctx, sluice.Event{Data: distinct(rng, "9x", 1000)})
	if _, b, _, trims := s.Topics(); b != 87_000 || trims != 1 {
		t.Fatalf("past the bound: %d bytes, %d trims; want 87000, 1", b, trims)
	}
	if got := kept(t, logs[0]); len(got) != 0 {
		t.Fatalf("the least recently used topic keeps %q", got)
	}
	if got := kept(t, logs[1]); len(got) != 6 || got[0] != "14" {
		t.Fatalf("the next keeps %q, want 14..19", got)
	}
	for i := 2; i < 10; i++ {
		if got := kept(t, logs[i]); len(got) < 10 {
			t.Fatalf("topic %d keeps %q", i, got)
		}
	}
	// Its reader is told what it missed.
	evs, err := logs[1].Poll(ctx, firstIDs[1], make([]sluice.Event, 0, 16))
	if err != nil || len(evs) != 7 || gapOf(t, evs[0]).Missed != 3 {
		t.Fatalf("a reader of the trimmed topic: %d events, %v", len(evs), err)
	}
}

// TestARingOfOneHoldsOneEvent appends 20,000 events of 10 KB to a ring of
// one: it must hold one event's bytes, not all of them.
func TestARingOfOneHoldsOneEvent(t *testing.T) {
	ctx := context.Background()
	s := New(Options{})
	defer s.Close()
	lg, _ := s.Open(ctx, "topic/one", true, sluice.LogOptions{MaxLen: 1, Ring: true})
	l := lg.(*Log)
	before := heapAfterGC()
	rng := rand.New(rand.NewPCG(5, 6))
	data := distinct(rng, "", 10_000)
	for i := range 20_000 {
		copy(data, fmt.Sprintf("%08d", i))
		if _, err := l.Append(ctx, sluice.Event{Data: data}); err != nil {
			t.Fatal(err)
		}
	}
	after := heapAfterGC()
	l.mu.Lock()
	size := l.size()
	l.mu.Unlock()
	t.Logf("heap %d → %d bytes; the log holds %d", before, after, size)
	if size > 64<<10 || int64(after)-int64(before) > 4<<20 {
		t.Fatalf("a ring of one 10 KB event holds %d bytes, and the heap grew by %d", size, int64(after)-int64(before))
	}
	if got := kept(t, l); len(got) != 1 {
		t.Fatalf("keeps %d events", len(got))
	}
	runtime.KeepAlive(l)
}

// TestUnusedTopicsGiveTheirMemoryBack makes 100,000 topics of one 10-byte
// event each, which nobody uses again: after the retention time they are
// forgotten, and the heap is what it was.
func TestUnusedTopicsGiveTheirMemoryBack(t *testing.T) {
	if testing.Short() {
		t.Skip("100,000 topics")
	}
	ctx := context.Background()
	s := New(Options{Retention: time.Second, MaxTopics: -1})
	defer s.Close()
	before := heapAfterGC()
	for i := range 100_000 {
		l, err := s.Open(ctx, fmt.Sprint("topic/", i), true, sluice.LogOptions{MaxLen: 1000, Ring: true})
		if err != nil {
			t.Fatal(err)
		}
		l.Append(ctx, sluice.Event{Data: []byte("0123456789")})
	}
	held := heapAfterGC()
	n, _, _, _ := s.Topics()
	waitFor(t, func() bool { return s.Len() == 0 })
	after := heapAfterGC()
	_, bytes, forgotten, _ := s.Topics()
	t.Logf("heap %d MB before, %d MB with %d topics, %d MB after", before>>20, held>>20, n, after>>20)
	if forgotten != 100_000 || bytes != 0 {
		t.Fatalf("%d topics forgotten, %d bytes still counted", forgotten, bytes)
	}
	if int64(after)-int64(before) > 2<<20 {
		t.Fatalf("the heap grew by %d MB and stayed", (int64(after)-int64(before))>>20)
	}
}

// TestATopicInUseIsNotForgotten holds a topic with a reader waiting in
// Read and another with a Notify listener (as the hub holds one) for five
// retention times, each measured by an unused topic being forgotten.
func TestATopicInUseIsNotForgotten(t *testing.T) {
	ctx := context.Background()
	const retention = 40 * time.Millisecond
	s := New(Options{Retention: retention})
	defer s.Close()
	open := func(name string) *Log {
		l, err := s.Open(ctx, name, true, sluice.LogOptions{MaxLen: 10, Ring: true})
		if err != nil {
			t.Fatal(err)
		}
		return l.(*Log)
	}
	waited, notified, idle := open("topic/waited"), open("topic/notified"), open("topic/idle")
	stop := notified.Notify(func() {})
	defer stop()
	got := make(chan []sluice.Event)
	go func() {
		evs, _ := waited.Read(ctx, "", make([]sluice.Event, 0, 4))
		got <- evs
	}()
	waitFor(t, func() bool { return waited.waiters.Load() == 1 })

	for i := range 5 {
		w := open(fmt.Sprint("topic/witness", i))
		w.Append(ctx, sluice.Event{Data: []byte("w")})
		start := time.Now()
		waitFor(t, func() bool { return s.holds(w.name) == nil }) // Open would use it
		if d := time.Since(start); d < retention {
			t.Fatalf("an unused topic was forgotten after %v, before its retention of %v", d, retention)
		}
	}
	if _, err := s.Open(ctx, idle.name, false, sluice.LogOptions{}); sluice.ErrorCode(err) != sluice.ENOTFOUND {
		t.Fatalf("the idle topic: %v, want ENOTFOUND", err)
	}
	for _, l := range []*Log{waited, notified} {
		if got, err := s.Open(ctx, l.name, false, sluice.LogOptions{}); err != nil || got != l {
			t.Fatalf("%s after five retention times: %v (the same log: %v)", l.name, err, got == l)
		}
	}
	waited.Append(ctx, sluice.Event{Data: []byte("still here")})
	if evs := <-got; len(evs) != 1 || string(evs[0].Data) != "still here" {
		t.Fatalf("the waiting reader got %+v", evs)
	}
}

// TestAForgottenTopicComesBackAsAnotherIncarnation: whoever still holds
// the forgotten log is refused, and the topic opened again tells a reader
// of the old one that its place is gone.
func TestAForgottenTopicComesBackAsAnotherIncarnation(t *testing.T) {
	ctx := context.Background()
	s := New(Options{Retention: 20 * time.Millisecond})
	defer s.Close()
	old, _ := s.Open(ctx, "topic/again", true, sluice.LogOptions{MaxLen: 10, Ring: true})
	oldIDs := appendN(t, old, 3)
	waitFor(t, func() bool { return s.Len() == 0 })
	if _, err := old.Append(ctx, sluice.Event{Data: []byte("late")}); sluice.ErrorCode(err) != sluice.EUNAVAILABLE {
		t.Fatalf("append to a forgotten topic: %v, want EUNAVAILABLE", err)
	}
	if _, err := old.Read(ctx, "", make([]sluice.Event, 0, 4)); sluice.ErrorCode(err) != sluice.EUNAVAILABLE {
		t.Fatalf("read of a forgotten topic: %v, want EUNAVAILABLE", err)
	}
	l, _ := s.Open(ctx, "topic/again", true, sluice.LogOptions{MaxLen: 10, Ring: true})
	appendN(t, l, 1)
	evs, err := l.Read(ctx, oldIDs[2], make([]sluice.Event, 0, 4))
	if err != nil || len(evs) != 2 || gapOf(t, evs[0]).Reason != sluice.GapReplaced || string(evs[1].Data) != "e0" {
		t.Fatalf("an old reader of the new incarnation: %+v, %v", evs, err)
	}
}

func TestMaxTopicsRefusesOneMore(t *testing.T) {
	ctx := context.Background()
	s := New(Options{Retention: 30 * time.Millisecond, MaxTopics: 3})
	defer s.Close()
	ring := sluice.LogOptions{MaxLen: 10, Ring: true}
	for i := range 3 {
		if _, err := s.Open(ctx, fmt.Sprint("topic/", i), true, ring); err != nil {
			t.Fatal(err)
		}
	}
	_, err := s.Open(ctx, "topic/3", true, ring)
	var e *sluice.Error
	if !errors.As(err, &e) || e.Code != sluice.EUNAVAILABLE || e.Kind != "too_many_topics" || e.RetryAfter <= 0 {
		t.Fatalf("the fourth topic: %v, want EUNAVAILABLE too_many_topics with a RetryAfter", err)
	}
	if _, err := s.Create(ctx, "topic/3", ring); sluice.ErrorCode(err) != sluice.EUNAVAILABLE {
		t.Fatalf("Create of the fourth: %v", err)
	}
	if _, err := s.Open(ctx, "topic/0", true, ring); err != nil {
		t.Fatalf("a topic that exists still opens: %v", err)
	}
	if _, err := s.Create(ctx, "gen/x", sluice.LogOptions{}); err != nil {
		t.Fatalf("logs that are not topics do not count: %v", err)
	}
	// Once unused topics are forgotten, there is room again.
	waitFor(t, func() bool { n, _, _, _ := s.Topics(); return n == 0 })
	if _, err := s.Open(ctx, "topic/3", true, ring); err != nil {
		t.Fatalf("after the others were forgotten: %v", err)
	}
}

func TestARingReusesTheNamesOfEventsItNoLongerKeeps(t *testing.T) {
	ctx := context.Background()
	s := New(Options{})
	defer s.Close()
	for _, maxLen := range []int{10, 1000} {
		t.Run(fmt.Sprint("max ", maxLen), func(t *testing.T) {
			l, _ := s.Open(ctx, fmt.Sprint("topic/names", maxLen), true, sluice.LogOptions{MaxLen: maxLen, Ring: true})
			for i := range 300 {
				if _, err := l.Append(ctx, sluice.Event{Name: fmt.Sprint("n", i), Data: fmt.Appendf(nil, "%d", i)}); err != nil {
					t.Fatalf("name %d: %v", i, err)
				}
			}
			// The unnamed events and a name still kept need no new room.
			l.Append(ctx, sluice.Event{Data: []byte("300")})
			l.Append(ctx, sluice.Event{Name: "n299", Data: []byte("301")})
			evs, _ := l.Poll(ctx, "", make([]sluice.Event, 0, 1024))
			if len(evs) < min(maxLen, 200) {
				t.Fatalf("keeps %d events", len(evs))
			}
			for _, ev := range evs {
				var i int
				fmt.Sscan(string(ev.Data), &i)
				want := fmt.Sprint("n", i)
				switch i {
				case 300:
					want = ""
				case 301:
					want = "n299"
				}
				if ev.Name != want {
					t.Fatalf("event %s is named %q, want %q", ev.Data, ev.Name, want)
				}
			}
		})
	}
}

// holds returns the log the store holds under name, without using it.
func (s *Store) holds(name string) *Log {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.logs[name]
}
