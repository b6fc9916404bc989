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

// The figures it logs (go test -v -run Cost ./redis) are those of
// docs: Redis keeps a stream in listpacks of up to 4 KB, allocated whole
// for the first entry; past a few events each costs ~50 bytes over its
// data.
func TestAnEmptyLogCostsUnder2KBAndAnEventLittleOverItsData(t *testing.T) {
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
		switch {
		case n == 0 && over > 2048:
			t.Errorf("a log with no events costs %d bytes; want under 2 KB", over)
		case n == 1000 && over > 64*int64(n):
			t.Errorf("a log of %d events costs %d bytes over its data; want under 64 an event", n, over)
		}
	}
}
