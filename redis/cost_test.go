package redis

import (
	"context"
	"fmt"
	"testing"

	"github.com/sluice-dev/sluice"
	"github.com/sluice-dev/sluice/internal/testenv"
)

// memoryUsage is what Redis reports a key to take (MEMORY USAGE, every
// entry of a stream counted), 0 for none.
func memoryUsage(t *testing.T, s *Store, key string) int64 {
	t.Helper()
	n, err := s.client.Do(context.Background(), s.client.B().MemoryUsage().Key(key).Samples(0).Build()).AsInt64()
	if err != nil && err.Error() != "redis nil message" {
		t.Fatalf("memory usage %s: %v", key, err)
	}
	return n
}

// chunk is an event as a generation writes it: a chat.completion.chunk of
// about 190 bytes around a token.
func chunk(i int) []byte {
	return fmt.Appendf(nil, `{"id":"chatcmpl-5f0c2a8e9b1d4c7a","object":"chat.completion.chunk","created":1767225600,"model":"demo","system_fingerprint":"sluice","choices":[{"index":0,"delta":{"content":"tok%d "},"logprobs":null,"finish_reason":null}]}`, i)
}

// The figures it logs (go test -v -run Cost ./redis) are a log's cost in
// Redis. A stream keeps its entries in listpacks of up to 4 KB, the first
// allocated whole; an entry costs what its data does not share with the
// log's base (scripts.go) and ~15 bytes more.
func TestALogCostsLittleMoreThanWhatItsEventsDoNotShare(t *testing.T) {
	s := newStore(t, testenv.StartRedis(t).URL, Options{})
	ctx := context.Background()
	for _, n := range []int{0, 1, 100, 1000} {
		name := fmt.Sprintf("gen/cost%d", n)
		l, err := s.Create(ctx, name, sluice.LogOptions{Owner: "key_0123456789abcdef"})
		if err != nil {
			t.Fatal(err)
		}
		data := 0
		for i := range n {
			ev := sluice.Event{Data: chunk(i)}
			data += len(ev.Data)
			if _, err := l.Append(ctx, ev); err != nil {
				t.Fatal(err)
			}
		}
		_, keys := s.keysOf(name)
		state, stream := memoryUsage(t, s, keys[0]), memoryUsage(t, s, keys[1])
		over := state + stream - int64(data)
		t.Logf("%4d events (%6d bytes of data): state %d B, stream %d B: %d B over the data (%.1f a event)", n, data, state, stream, over, float64(over)/float64(max(n, 1)))
		total := state + stream
		switch {
		case n == 0 && total > 2048:
			t.Errorf("a log with no events costs %d bytes; want under 2 KB", total)
		case n == 100 && total > 8<<10:
			t.Errorf("a log of 100 chunks costs %d bytes; want under 8 KB (4 KB of it the first listpack)", total)
		case n == 1000 && total > 40*int64(n):
			t.Errorf("a log of %d chunks costs %d bytes; want under 40 a chunk", n, total)
		}
	}
}
