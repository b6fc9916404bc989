package ws

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/sluice-dev/sluice"
	"github.com/sluice-dev/sluice/admit"
	"github.com/sluice-dev/sluice/memory"
	"github.com/sluice-dev/sluice/wire"
)

// BenchmarkFollowLive is one subscription's per-event path while it keeps
// up with a live log, as a WebSocket reader of a generation does: one event
// appended, read by the subscription's goroutine, framed and queued, and
// taken by the writer (the socket write itself is left out). ns/op and
// allocs/op are per event.
func BenchmarkFollowLive(b *testing.B) {
	ctx := context.Background()
	store := memory.New(memory.Options{})
	defer store.Close()
	l, err := store.Create(ctx, "gen/bench", sluice.LogOptions{MaxLen: 1 << 12, Ring: true})
	if err != nil {
		b.Fatal(err)
	}
	chunks := wire.NewChunks("chatcmpl-bench", "demo", 1712345678, false)
	if _, err := l.Append(ctx, sluice.Event{Data: chunks.Delta(sluice.Delta{Role: "assistant"})}); err != nil {
		b.Fatal(err)
	}
	token := sluice.Event{Data: chunks.Delta(sluice.Delta{Content: " token"})}

	h := NewHandler(Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	c := newConn(h, nil, admit.Caller{}, "/ws", "")
	c.out = newSendQueue(1<<20, time.Minute)
	s, err := c.reserve("stream", "bench", false)
	if err != nil {
		b.Fatal(err)
	}
	last, _, _ := l.Last(ctx)
	c.follow(s, l, last)
	defer func() {
		c.cancel()
		c.subWG.Wait()
	}()

	var frames [][]byte
	b.ReportAllocs()
	for b.Loop() {
		if _, err := l.Append(ctx, token); err != nil {
			b.Fatal(err)
		}
		for len(frames) == 0 {
			<-c.out.wake
			frames, _ = c.out.take(frames)
		}
		for _, f := range frames {
			c.out.release(len(f))
		}
		frames = frames[:0]
	}
}
