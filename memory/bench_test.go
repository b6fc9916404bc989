package memory

import (
	"context"
	"strconv"
	"sync"
	"testing"

	"github.com/sluice-dev/sluice"
)

// chunk is a typical chat.completion.chunk of one token.
var chunk = []byte(`{"id":"chatcmpl-7d1f","object":"chat.completion.chunk","created":1712345678,"model":"demo","choices":[{"index":0,"delta":{"content":" token"},"finish_reason":null}]}`)

// BenchmarkAppend is one event appended to a ring log with no reader: the
// cost a model pays per token. The data is copied into 16 KiB blocks, and
// the returned IDs into chunks of 1 KiB (the bytes/op); neither allocates
// per event.
func BenchmarkAppend(b *testing.B) {
	l := newLog("topic/bench", sluice.LogOptions{MaxLen: 4096, Ring: true})
	ctx := context.Background()
	b.ReportAllocs()
	b.SetBytes(int64(len(chunk)))
	for b.Loop() {
		if _, err := l.Append(ctx, sluice.Event{Data: chunk}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkReadBatch is a reader catching up: one read of 256 kept events
// into a reused buffer and scratch space, as the hub reads. It must not
// allocate.
func BenchmarkReadBatch(b *testing.B) {
	l := newLog("gen/bench", sluice.LogOptions{MaxLen: 1 << 16})
	ctx := context.Background()
	ids := []string{""}
	for range 1024 {
		id, err := l.Append(ctx, sluice.Event{Data: chunk})
		if err != nil {
			b.Fatal(err)
		}
		ids = append(ids, id)
	}
	buf := make([]sluice.Event, 0, 256)
	var scratch []byte
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		var err error
		if buf, scratch, err = l.ReadScratch(ctx, ids[i%768], buf, scratch); err != nil || len(buf) != 256 {
			b.Fatalf("read %d events: %v", len(buf), err)
		}
	}
}

// BenchmarkFanOut is one append woken in many waiting readers, each reading
// the new event into its own buffer and scratch space, as the hub's readers
// do: the log's share of the fan-out path. ns/op is per append; allocs/op
// must not grow with the readers.
func BenchmarkFanOut(b *testing.B) {
	for _, readers := range []int{1, 100, 1000} {
		b.Run("readers="+strconv.Itoa(readers), func(b *testing.B) {
			l := newLog("topic/bench", sluice.LogOptions{MaxLen: 1 << 20, Ring: true})
			ctx, cancel := context.WithCancel(context.Background())
			var wg sync.WaitGroup
			var got sync.WaitGroup // one Done per reader per event
			for range readers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					buf := make([]sluice.Event, 0, 64)
					var scratch []byte
					after := ""
					for {
						var err error
						buf, scratch, err = l.ReadScratch(ctx, after, buf, scratch)
						if err != nil {
							return
						}
						after = buf[len(buf)-1].ID
						for range buf {
							got.Done()
						}
					}
				}()
			}
			b.ReportAllocs()
			for b.Loop() {
				got.Add(readers)
				if _, err := l.Append(ctx, sluice.Event{Data: chunk}); err != nil {
					b.Fatal(err)
				}
				got.Wait()
			}
			b.ReportMetric(float64(readers)*float64(b.N)/b.Elapsed().Seconds(), "deliveries/s")
			cancel()
			wg.Wait()
		})
	}
}
