package memory

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/sluice-dev/sluice"
)

// endLog creates a log of n events of size bytes each, and ends it.
func endLog(t *testing.T, s *Store, name string, n, size int) sluice.Log {
	t.Helper()
	ctx := context.Background()
	l, err := s.Create(ctx, name, sluice.LogOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// Random bytes: nothing to share with the log's base event, so each
	// event costs its full size.
	rng := rand.New(rand.NewPCG(uint64(len(name)), uint64(n)))
	data := make([]byte, size)
	for range n {
		for i := range data {
			data[i] = byte(rng.Uint32())
		}
		if _, err := l.Append(ctx, sluice.Event{Data: data}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := l.Append(ctx, sluice.Event{Data: []byte("[DONE]"), End: sluice.EndDone}); err != nil {
		t.Fatal(err)
	}
	return l
}

func TestEndedLogsBeyondTheByteBoundAreForgottenOldestFirst(t *testing.T) {
	// Each log holds 100 events of 1,000 bytes: about 100 KB.
	s := New(Options{Retention: time.Hour, RetainedBytes: 350_000})
	defer s.Close()
	ctx := context.Background()
	readers := make([]sluice.Log, 0, 6)
	for i := range 6 {
		readers = append(readers, endLog(t, s, fmt.Sprintf("gen/%d", i), 100, 1000))
	}
	logs, held, evicted := s.Retained()
	if logs != 3 || evicted != 3 || held > 350_000 || held < 300_000 {
		t.Fatalf("retained %d logs of %d bytes, %d evicted; want the newest 3, about 300 KB, 3 evicted", logs, held, evicted)
	}
	for i := range 6 {
		_, err := s.Open(ctx, fmt.Sprintf("gen/%d", i), false, sluice.LogOptions{})
		if want := i >= 3; (err == nil) != want {
			t.Errorf("open gen/%d after the bound: %v (kept: %v)", i, err, want)
		}
		if i < 3 && sluice.ErrorCode(err) != sluice.ENOTFOUND {
			t.Errorf("gen/%d: %v, want ENOTFOUND", i, err)
		}
	}
	// A reader that already held a forgotten log reads it to the end.
	if got := readAll(t, readers[0], ""); len(got) != 101 || string(got[100].Data) != "[DONE]" {
		t.Fatalf("reader of an evicted log got %d events", len(got))
	}
}

func TestOneEndedLogIsKeptWhateverItsSize(t *testing.T) {
	s := New(Options{Retention: time.Hour, RetainedBytes: 1000})
	defer s.Close()
	endLog(t, s, "gen/big", 10, 1000)
	if _, err := s.Open(context.Background(), "gen/big", false, sluice.LogOptions{}); err != nil {
		t.Fatalf("the newest ended log must stay resumable: %v", err)
	}
}

func TestEndedLogsExpireInTheOrderTheyEnded(t *testing.T) {
	s := New(Options{Retention: 60 * time.Millisecond, RetainedBytes: -1})
	defer s.Close()
	ctx := context.Background()
	endLog(t, s, "gen/a", 1, 10)
	time.Sleep(40 * time.Millisecond)
	endLog(t, s, "gen/b", 1, 10)
	// gen/c stays open, so it never expires.
	if _, err := s.Create(ctx, "gen/c", sluice.LogOptions{}); err != nil {
		t.Fatal(err)
	}
	// Whenever b is seen gone, a must be gone already: b is looked at
	// first, so a that went a moment later is not taken for a that stayed.
	waitFor(t, func() bool {
		bGone := s.holds("gen/b") == nil
		aGone := s.holds("gen/a") == nil
		if bGone && !aGone {
			t.Fatal("gen/b, which ended 40 ms after gen/a, expired first")
		}
		return aGone && bGone
	})
	if n, _, _ := s.Retained(); n != 0 {
		t.Fatalf("%d ended logs still retained", n)
	}
	if s.Len() != 1 {
		t.Fatalf("store holds %d logs, want only the open one", s.Len())
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 5s")
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func TestAppendCopiesTheCallersData(t *testing.T) {
	s := New(Options{})
	defer s.Close()
	ctx := context.Background()
	l, _ := s.Create(ctx, "gen/x", sluice.LogOptions{})
	buf := []byte("first")
	l.Append(ctx, sluice.Event{Data: buf})
	copy(buf, "XXXXX") // a generation reuses its buffer for the next token
	l.Append(ctx, sluice.Event{Data: buf, End: sluice.EndDone})
	got := readAll(t, l, "")
	if string(got[0].Data) != "first" || string(got[1].Data) != "XXXXX" {
		t.Fatalf("events %q, %q", got[0].Data, got[1].Data)
	}
}

func TestEventsOfEverySizeAndNameRoundTrip(t *testing.T) {
	s := New(Options{})
	defer s.Close()
	ctx := context.Background()
	l, _ := s.Create(ctx, "gen/sizes", sluice.LogOptions{})
	var want []sluice.Event
	for i, size := range []int{0, 1, 511, 512, 513, 5000, maxBlock - 1, maxBlock, maxBlock + 1, 100_000, 3, 0} {
		ev := sluice.Event{Name: []string{"", "usage", "error"}[i%3], Data: bytes.Repeat([]byte{byte('a' + i)}, size)}
		want = append(want, ev)
		if _, err := l.Append(ctx, ev); err != nil {
			t.Fatal(err)
		}
	}
	l.Append(ctx, sluice.Event{Name: "end", Data: []byte("bye"), End: sluice.EndError})
	got := readAll(t, l, "")
	if len(got) != len(want)+1 {
		t.Fatalf("%d events, want %d", len(got), len(want)+1)
	}
	for i, w := range want {
		if got[i].Name != w.Name || !bytes.Equal(got[i].Data, w.Data) || got[i].End != sluice.EndNone {
			t.Errorf("event %d: name %q, %d bytes, end %v; want %q, %d bytes", i, got[i].Name, len(got[i].Data), got[i].End, w.Name, len(w.Data))
		}
		// A reader cannot grow a slice into its neighbour's bytes.
		if cap(got[i].Data) != len(got[i].Data) {
			t.Errorf("event %d: cap %d > len %d", i, cap(got[i].Data), len(got[i].Data))
		}
	}
	if e := got[len(want)]; e.Name != "end" || string(e.Data) != "bye" || e.End != sluice.EndError {
		t.Errorf("last event %+v", e)
	}
}

func TestTooManyEventNamesAreRefused(t *testing.T) {
	s := New(Options{})
	defer s.Close()
	ctx := context.Background()
	l, _ := s.Create(ctx, "topic/names", sluice.LogOptions{})
	for i := 1; i < maxNames; i++ {
		if _, err := l.Append(ctx, sluice.Event{Name: fmt.Sprint("n", i)}); err != nil {
			t.Fatalf("name %d: %v", i, err)
		}
	}
	_, err := l.Append(ctx, sluice.Event{Name: "one-too-many"})
	if sluice.ErrorCode(err) != sluice.ETOOLARGE || !strings.Contains(err.Error(), "event names") {
		t.Fatalf("err = %v, want ETOOLARGE about event names", err)
	}
	if _, err := l.Append(ctx, sluice.Event{Name: "n7"}); err != nil {
		t.Fatalf("a known name is still fine: %v", err)
	}
}

func TestARingReleasesTheBlocksItTrimmed(t *testing.T) {
	s := New(Options{})
	defer s.Close()
	ctx := context.Background()
	lg, _ := s.Create(ctx, "topic/ring", sluice.LogOptions{MaxLen: 100, Ring: true})
	l := lg.(*Log)
	data := make([]byte, 1000)
	for i := range 100_000 {
		copy(data, fmt.Sprintf("%08d", i)) // differs from the base at once: stored whole
		if _, err := l.Append(ctx, sluice.Event{Data: data}); err != nil {
			t.Fatal(err)
		}
	}
	l.mu.Lock()
	size, recs := l.size(), len(l.pages)*recPage
	l.mu.Unlock()
	// 100 events of 1,000 bytes in 16 KiB blocks, and records for them.
	if size > 200_000 || recs > 300 {
		t.Fatalf("a ring of 100 × 1 KB holds %d bytes and room for %d records after 100,000 appends", size, recs)
	}
	got, err := l.Read(ctx, "", make([]sluice.Event, 0, 200))
	if err != nil || len(got) != 100 || !bytes.Equal(got[99].Data, data) {
		t.Fatalf("read %d events: %v", len(got), err)
	}
}
