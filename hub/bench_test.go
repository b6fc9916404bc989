package hub_test

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluice-dev/sluice"
	"github.com/sluice-dev/sluice/hub"
	"github.com/sluice-dev/sluice/memory"
	"github.com/sluice-dev/sluice/sse"
)

var benchChunk = []byte(`{"id":"chatcmpl-7d1f","object":"chat.completion.chunk","created":1712345678,"model":"demo","choices":[{"index":0,"delta":{"content":" token"},"finish_reason":null}]}`)

// BenchmarkFanOut is the whole SSE fan-out path on loopback sockets: one
// event appended to a topic log reaches every subscriber connection through
// the hub. With one subscriber (a generation and its reader) the appending
// goroutine writes to the socket itself; with more than four, the feed's
// pump does. ns/op and allocs/op are per appended event (whatever the number
// of subscribers); deliveries/s counts events read by all subscribers, whose
// reading shares the CPU with the server, as real clients on one machine do.
func BenchmarkFanOut(b *testing.B) {
	for _, subs := range []int{1, 100, 1000} {
		b.Run("subs="+strconv.Itoa(subs), func(b *testing.B) { benchFanOut(b, subs) })
	}
}

func benchFanOut(b *testing.B, subs int) {
	ctx := context.Background()
	store := memory.New(memory.Options{})
	defer store.Close()
	l, err := store.Open(ctx, "topic/bench", true, sluice.LogOptions{MaxLen: 1 << 16, Ring: true})
	if err != nil {
		b.Fatal(err)
	}
	h := hub.New(hub.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sse.SetHeaders(w.Header())
		last, _, _ := l.Last(ctx)
		if err := h.Attach(w, l, last, hub.AttachOptions{Topic: true}); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
		}
	}))
	defer srv.Close()

	var delivered atomic.Int64
	var wg sync.WaitGroup
	conns := make([]net.Conn, 0, subs)
	host := srv.Listener.Addr().String()
	for range subs {
		c, err := net.Dial("tcp", host)
		if err != nil {
			b.Fatal(err)
		}
		conns = append(conns, c)
		if _, err := io.WriteString(c, "GET /t HTTP/1.1\r\nHost: "+host+"\r\n\r\n"); err != nil {
			b.Fatal(err)
		}
		br := bufio.NewReaderSize(c, 32<<10)
		resp, err := http.ReadResponse(br, nil)
		if err != nil || resp.StatusCode != http.StatusOK {
			b.Fatalf("subscribe: %v %v", err, resp)
		}
		wg.Add(1)
		// Counts "\nid: ", the start of every event: each follows a line
		// end (the retry line, a heartbeat comment or the blank line that
		// ends the event before), and a data line of JSON holds no "\n".
		go func() {
			defer wg.Done()
			buf := make([]byte, 32<<10)
			pat := []byte("\nid: ")
			// tail is the end of the last read and joint where it meets the
			// next: reused, so that the server's allocations alone are counted.
			tail, joint := make([]byte, 0, len(pat)), make([]byte, 0, 2*len(pat))
			for {
				n, err := resp.Body.Read(buf)
				j := append(append(joint[:0], tail...), buf[:min(n, len(pat)-1)]...)
				delivered.Add(int64(bytes.Count(j, pat) + bytes.Count(buf[:n], pat)))
				if n >= len(pat)-1 {
					tail = append(tail[:0], buf[n-len(pat)+1:n]...)
				}
				if err != nil {
					return
				}
			}
		}()
	}
	for start := time.Now(); h.Len() < subs; time.Sleep(time.Millisecond) {
		if time.Since(start) > 30*time.Second {
			b.Fatalf("%d of %d subscribers attached after 30s", h.Len(), subs)
		}
	}

	b.ReportAllocs()
	b.SetBytes(int64(len(benchChunk)))
	sent := 0
	// A counted loop rather than b.Loop, whose end stops the timer: the
	// wait for the last deliveries below belongs in the measurement.
	b.ResetTimer()
	for range b.N {
		if _, err := l.Append(ctx, sluice.Event{Data: benchChunk}); err != nil {
			b.Fatal(err)
		}
		sent++
		// Keep at most 256 events in flight, so the ring never laps a reader.
		for wait := time.Now(); int64(sent-256)*int64(subs) > delivered.Load(); time.Sleep(50 * time.Microsecond) {
			if time.Since(wait) > 30*time.Second {
				b.Fatalf("deliveries stalled at %d of %d", delivered.Load(), int64(sent)*int64(subs))
			}
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for delivered.Load() < int64(sent)*int64(subs) && time.Now().Before(deadline) {
		time.Sleep(100 * time.Microsecond)
	}
	b.StopTimer()
	elapsed := b.Elapsed()
	if got, want := delivered.Load(), int64(sent)*int64(subs); got != want {
		b.Fatalf("delivered %d events, want %d", got, want)
	}
	b.ReportMetric(float64(delivered.Load())/elapsed.Seconds(), "deliveries/s")
	for _, c := range conns {
		c.Close()
	}
	wg.Wait()
	sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	_ = h.Shutdown(sctx)
}
