package ws

import (
	"context"
	"io"
	"log/slog"
	"net"
	"testing"

	"github.com/sluice-dev/sluice"
	"github.com/sluice-dev/sluice/admit"
	"github.com/sluice-dev/sluice/memory"
	"github.com/sluice-dev/sluice/wire"
)

// BenchmarkDeliverLive is one subscription's per-event path while it keeps
// up with a live log, as a WebSocket reader of a generation does: one event
// appended, and, in the appending goroutine, encoded into a frame and
// written to a loopback socket, which a client drains. ns/op and
// allocs/op are per event.
func BenchmarkDeliverLive(b *testing.B) {
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

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	server, err := ln.Accept()
	if err != nil {
		b.Fatal(err)
	}
	drained := make(chan struct{})
	go func() {
		defer close(drained)
		_, _ = io.Copy(io.Discard, client)
	}()

	h := NewHandler(Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	c := newConn(h, server, admit.Caller{}, "/ws", "", func() {})
	if ok, _ := h.enter(c); !ok {
		b.Fatal("not entered")
	}
	h.wg.Done()
	s, err := c.reserve("stream", "bench", false)
	if err != nil {
		b.Fatal(err)
	}
	last, _, _ := l.Last(ctx)
	c.follow(s, l, last)
	testJoined(b, s)

	b.ReportAllocs()
	for b.Loop() {
		if _, err := l.Append(ctx, token); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	c.destroy()
	client.Close()
	<-drained
	_ = h.Shutdown(ctx)
}

// testJoined waits until s is delivered to by its feed.
func testJoined(b *testing.B, s *sub) {
	for {
		s.c.wmu.Lock()
		lag := s.lag
		s.c.wmu.Unlock()
		if !lag {
			return
		}
		select {
		case <-b.Context().Done():
			return
		default:
		}
	}
}
