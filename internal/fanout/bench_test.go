package fanout_test

import (
	"context"
	"strconv"
	"sync"
	"testing"

	"github.com/sluice-dev/sluice"
	"github.com/sluice-dev/sluice/internal/fanout"
	"github.com/sluice-dev/sluice/memory"
)

// count is a reader that only counts what it is delivered.
type count struct{ events int }

func (c *count) Deliver(_ []byte, n int, _ string, _, _ bool) { c.events += n }

// countLines is lines for counting readers.
type countLines struct{ lines }

func (*countLines) Failed([]*count, error) {}

// BenchmarkInlineDelivery is the core's own per-event path, without a
// socket: one event appended to a log that a few readers follow is read,
// encoded once and handed to each of them by the appending goroutine.
// ns/op and allocs/op are per event; the transports' benchmarks (hub, ws)
// add the writes.
func BenchmarkInlineDelivery(b *testing.B) {
	for _, readers := range []int{1, 4} {
		b.Run("readers="+strconv.Itoa(readers), func(b *testing.B) {
			ctx := context.Background()
			store := memory.New(memory.Options{})
			defer store.Close()
			l, err := store.Create(ctx, "gen/bench", sluice.LogOptions{MaxLen: 1 << 12, Ring: true})
			if err != nil {
				b.Fatal(err)
			}
			var (
				feed fanout.Feed[*count]
				wg   sync.WaitGroup
			)
			feed.Start(l, &countLines{}, &fanout.Config{WG: &wg, Name: "bench"})
			defer func() {
				feed.Stop()
				wg.Wait()
			}()
			counts := make([]*count, readers)
			for i := range counts {
				counts[i] = &count{}
				if joined, _, err := feed.Join(counts[i], ""); !joined || err != nil {
					b.Fatalf("reader %d did not join: %v", i, err)
				}
			}
			ev := sluice.Event{Data: []byte(`{"choices":[{"delta":{"content":" token"}}]}`)}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := l.Append(ctx, ev); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			for i, c := range counts {
				if c.events != b.N {
					b.Fatalf("reader %d was delivered %d events of %d", i, c.events, b.N)
				}
			}
		})
	}
}
