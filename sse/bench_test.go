package sse

import (
	"bytes"
	"fmt"
	"io"
	"strings"
	"testing"

	gosse "github.com/tmaxmax/go-sse"
)

// chunkJSON is a typical chat.completion.chunk of one token, 120 bytes.
const chunkJSON = `{"id":"chatcmpl-7d1f","object":"chat.completion.chunk","created":1712345678,"choices":[{"index":0,"delta":{"content":"he"}}]}`

func BenchmarkAppendEvent(b *testing.B) {
	data := []byte(chunkJSON)
	buf := make([]byte, 0, 4096)
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		buf = AppendEvent(buf[:0], "1712345678901-42", "", data)
	}
}

// chatStream is an upstream-like stream of n chunk events and [DONE].
func chatStream(n int) []byte {
	var buf []byte
	for i := range n {
		buf = AppendEvent(buf, fmt.Sprint(i), "", []byte(chunkJSON))
	}
	return AppendEvent(buf, "", "", []byte("[DONE]"))
}

func BenchmarkReader(b *testing.B) {
	stream := chatStream(1000)
	b.ReportAllocs()
	b.SetBytes(int64(len(stream)))
	for b.Loop() {
		r := NewReader(bytes.NewReader(stream))
		n := 0
		for {
			if _, err := r.Next(); err == io.EOF {
				break
			} else if err != nil {
				b.Fatal(err)
			}
			n++
		}
		if n != 1001 {
			b.Fatalf("read %d events, want 1001", n)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*1001), "ns/event")
}

// BenchmarkGoSSERead is BenchmarkReader for the independent parser, as a
// yardstick.
func BenchmarkGoSSERead(b *testing.B) {
	stream := chatStream(1000)
	b.ReportAllocs()
	b.SetBytes(int64(len(stream)))
	for b.Loop() {
		n := 0
		for _, err := range gosse.Read(strings.NewReader(string(stream)), nil) {
			if err != nil {
				b.Fatal(err)
			}
			n++
		}
		if n != 1001 {
			b.Fatalf("read %d events, want 1001", n)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*1001), "ns/event")
}
