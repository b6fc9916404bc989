package redis

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/sluice-dev/sluice"
	"github.com/sluice-dev/sluice/internal/testenv"
)

// BenchmarkAppend is one append's round trip: one script run, waited for.
func BenchmarkAppend(b *testing.B) {
	s := benchStore(b)
	l, err := s.Create(context.Background(), "gen/bench", sluice.LogOptions{MaxLen: 1 << 30})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if _, err := l.Append(context.Background(), sluice.Event{Data: chunk(i)}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAppendParallel is appends to many logs at once, as a node's
// generations make them: the client pipelines them onto its connections.
func BenchmarkAppendParallel(b *testing.B) {
	s := benchStore(b)
	var n atomic.Int64
	b.ReportAllocs()
	b.SetParallelism(32)
	b.RunParallel(func(pb *testing.PB) {
		l, err := s.Create(context.Background(), fmt.Sprint("gen/p", n.Add(1)), sluice.LogOptions{MaxLen: 1 << 30})
		if err != nil {
			b.Error(err)
			return
		}
		for i := 0; pb.Next(); i++ {
			if _, err := l.Append(context.Background(), sluice.Event{Data: chunk(i)}); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkReadFromTheStream is a reader behind the subscription's window:
// a read script and an XRANGE of 64 events.
func BenchmarkReadFromTheStream(b *testing.B) {
	s := benchStore(b)
	ctx := context.Background()
	l, _ := s.Create(ctx, "gen/read", sluice.LogOptions{})
	for i := range 64 {
		l.Append(ctx, sluice.Event{Data: chunk(i)})
	}
	buf := make([]sluice.Event, 0, 64)
	b.ReportAllocs()
	for b.Loop() {
		if evs, err := l.Poll(ctx, "", buf); err != nil || len(evs) != 64 {
			b.Fatal(len(evs), err)
		}
	}
}

func benchStore(b *testing.B) *Store {
	b.Helper()
	r := testenv.StartRedis(b)
	s, err := New(context.Background(), Options{URL: r.URL, Prefix: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	return s
}
