package memory

import (
	"bytes"
	"context"
	"fmt"
	"testing"

	"github.com/sluice-dev/sluice"
)

// chunkOf is a chat.completion.chunk carrying content, as the runner writes it.
func chunkOf(content string) []byte {
	return fmt.Appendf(nil, `{"id":"chatcmpl-0123456789abcdef0123456789abcdef","object":"chat.completion.chunk","created":1763900000,"model":"demo","system_fingerprint":null,"choices":[{"index":0,"delta":{"content":%q},"logprobs":null,"finish_reason":null}]}`, content)
}

func TestATokenCostsTheBytesItDoesNotShare(t *testing.T) {
	s := New(Options{})
	defer s.Close()
	ctx := context.Background()
	lg, _ := s.Create(ctx, "gen/tokens", sluice.LogOptions{})
	l := lg.(*Log)
	var want [][]byte
	for i := range 2000 {
		d := chunkOf(fmt.Sprintf(" word%d", i))
		want = append(want, d)
		if _, err := l.Append(ctx, sluice.Event{Data: d}); err != nil {
			t.Fatal(err)
		}
	}
	l.Append(ctx, sluice.Event{Data: []byte("[DONE]"), End: sluice.EndDone})
	l.mu.Lock()
	size := l.size()
	l.mu.Unlock()
	total := 0
	for _, d := range want {
		total += len(d)
	}
	if perEvent := size / 2000; perEvent > 50 {
		t.Errorf("%d events of %d bytes on average take %d bytes each", len(want), total/len(want), perEvent)
	}
	got := readAll(t, l, "")
	for i, d := range want {
		if !bytes.Equal(got[i].Data, d) {
			t.Fatalf("event %d:\n got %s\nwant %s", i, got[i].Data, d)
		}
	}
	if string(got[2000].Data) != "[DONE]" {
		t.Fatalf("last event %q", got[2000].Data)
	}
}

func TestCommonPrefixAndSuffix(t *testing.T) {
	tests := []struct {
		a, b     string
		pre, suf int
	}{
		{"", "", 0, 0},
		{"abc", "", 0, 0},
		{"abcdefghijklmnop", "abcdefghijklmnop", 16, 16},
		{"abcdefghijklmnopq", "abcdefghXjklmnopq", 8, 8},
		{"0123456789abcdefXYZ", "0123456789abcdefQYZ", 16, 2},
		{"same-start-longer", "same-start", 10, 0},
		{"zzzzzzzzzz-tail", "tail", 0, 4},
	}
	for _, tt := range tests {
		if got := commonPrefix([]byte(tt.a), []byte(tt.b), 1<<16); got != tt.pre {
			t.Errorf("commonPrefix(%q, %q) = %d, want %d", tt.a, tt.b, got, tt.pre)
		}
		if got := commonSuffix([]byte(tt.a), []byte(tt.b), 1<<16); got != tt.suf {
			t.Errorf("commonSuffix(%q, %q) = %d, want %d", tt.a, tt.b, got, tt.suf)
		}
	}
	if got := commonPrefix([]byte("aaaaaaaaaaaa"), []byte("aaaaaaaaaaaa"), 5); got != 5 {
		t.Errorf("limit: %d", got)
	}
}

// FuzzLogKeepsEveryEventAsWritten splits the input into events at each 0
// byte, with a base of its own, appends them to a log (which stores most
// as differences from its first event) and reads them back, in batches of
// several sizes, with Read and with ReadScratch reusing its scratch space:
// every event comes back byte for byte.
func FuzzLogKeepsEveryEventAsWritten(f *testing.F) {
	f.Add([]byte(`{"delta":{"role":"assistant","content":""},"finish_reason":null}`), []byte("{\"delta\":{\"content\":\"a\"},\"finish_reason\":null}\x00{\"delta\":{\"content\":\"\"},\"finish_reason\":\"stop\"}\x00[DONE]"), uint8(3))
	f.Add([]byte("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"), []byte("aaaa\x00aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\x00\x00aaaaaaaaaaaaaaaaaaaabaaaaaaaaaaaaaaaaaaa"), uint8(1))
	f.Add([]byte{}, []byte("x\x00y"), uint8(0))
	f.Fuzz(func(t *testing.T, first, rest []byte, batch uint8) {
		ctx := context.Background()
		l := newLog("gen/fuzz", sluice.LogOptions{MaxLen: 1 << 20})
		want := append([][]byte{first}, bytes.Split(rest, []byte{0})...)
		for _, d := range want {
			if _, err := l.Append(ctx, sluice.Event{Data: d}); err != nil {
				t.Fatal(err)
			}
		}
		l.Append(ctx, sluice.Event{End: sluice.EndDone})
		for _, reuse := range []bool{false, true} {
			buf := make([]sluice.Event, 0, int(batch%7)+1)
			var scratch []byte
			var got [][]byte
			after := ""
			for {
				var evs []sluice.Event
				var err error
				if reuse {
					// The scratch space is used again by the next read: keep copies.
					evs, scratch, err = l.ReadScratch(ctx, after, buf, scratch)
					for _, e := range evs {
						got = append(got, bytes.Clone(e.Data))
					}
				} else {
					evs, err = l.Read(ctx, after, buf)
					for _, e := range evs {
						got = append(got, e.Data)
					}
				}
				if len(evs) > 0 {
					after = evs[len(evs)-1].ID
				}
				if err != nil {
					break
				}
			}
			if len(got) != len(want)+1 {
				t.Fatalf("reuse %v: %d events back, want %d", reuse, len(got), len(want)+1)
			}
			for i, d := range want {
				if !bytes.Equal(got[i], d) {
					t.Fatalf("reuse %v: event %d: got %q, want %q", reuse, i, got[i], d)
				}
			}
		}
	})
}

func TestReadWithNoBufferOnlyWaits(t *testing.T) {
	ctx := context.Background()
	l := newLog("gen/wait", sluice.LogOptions{MaxLen: 10})
	done := make(chan error, 1)
	go func() {
		evs, err := l.Read(ctx, "", nil)
		if len(evs) != 0 {
			err = fmt.Errorf("%d events read into no buffer", len(evs))
		}
		done <- err
	}()
	l.Append(ctx, sluice.Event{Data: []byte("a")})
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if evs, err := l.Read(ctx, "", make([]sluice.Event, 0, 4)); err != nil || len(evs) != 1 {
		t.Fatalf("the event is still there to read: %d, %v", len(evs), err)
	}
}
