package sse

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"
	"time"
)

// TestOracleAgreesWithSpecCases checks FuzzReader's oracle against the
// hand-written cases, so that a fault in it cannot hide one in Reader.
func TestOracleAgreesWithSpecCases(t *testing.T) {
	for _, tt := range readerSpecCases {
		got := specParse([]byte(tt.in))
		if !reflect.DeepEqual(got.events, tt.want) || got.lastID != tt.lastID || got.hasRetry != (tt.retry >= 0) || (got.hasRetry && got.retry != tt.retry) {
			t.Errorf("%s: oracle read %q as %+v", tt.name, tt.in, got)
		}
	}
}

func FuzzReader(f *testing.F) {
	for _, tt := range readerSpecCases {
		f.Add([]byte(tt.in), uint64(len(tt.in)), uint16(0))
	}
	f.Add([]byte("data: a\r\n\r\ndata: b\r"), uint64(3), uint16(7))
	f.Add([]byte("\xEF\xBB\xBFdata: x\n\n"), uint64(1), uint16(1))
	f.Fuzz(func(t *testing.T, in []byte, seed uint64, maxSize uint16) {
		whole := readResult(NewReader(bytes.NewReader(in)), 0)
		if whole.err != io.EOF {
			t.Fatalf("reading %q whole ended with %v", in, whole.err)
		}
		want := specParse(in)
		if !slices.Equal(whole.events, want.events) || whole.lastID != want.lastID ||
			whole.hasRetry != want.hasRetry || whole.retry != want.retry {
			t.Fatalf("read %q\n got %#v\nwant %#v", in, whole, want)
		}
		chunked := readResult(NewReader(&randomChunks{in: in, rng: rand.New(rand.NewPCG(seed, 0))}), 0)
		if !slices.Equal(chunked.events, whole.events) || chunked.err != whole.err || chunked.lastID != whole.lastID ||
			chunked.retry != whole.retry || chunked.hasRetry != whole.hasRetry {
			t.Fatalf("read %q in chunks (seed %d)\n got %#v\nwant %#v", in, seed, chunked, whole)
		}

		// With a limit, where the stream stops must not depend on chunking
		// either, and what comes before must be what comes without a limit.
		limit := int(maxSize%256) + 1
		lw := readResult(NewReader(bytes.NewReader(in)), limit)
		lc := readResult(NewReader(&randomChunks{in: in, rng: rand.New(rand.NewPCG(seed, 1))}), limit)
		if !slices.Equal(lw.events, lc.events) || lw.err.Error() != lc.err.Error() {
			t.Fatalf("limit %d, %q: whole %#v, chunked %#v", limit, in, lw, lc)
		}
		if lw.err != io.EOF && !errors.Is(lw.err, ErrTooLarge) {
			t.Fatalf("limit %d, %q: error %v", limit, in, lw.err)
		}
		if len(lw.events) > len(whole.events) || !slices.Equal(lw.events, whole.events[:len(lw.events)]) {
			t.Fatalf("limit %d, %q: events %#v are not a prefix of %#v", limit, in, lw.events, whole.events)
		}
	})
}

// result is everything a Reader made of a stream.
type result struct {
	events   []Event
	err      error
	lastID   string
	retry    time.Duration
	hasRetry bool
}

func readResult(r *Reader, maxSize int) result {
	r.MaxSize = maxSize
	var res result
	for {
		ev, err := r.Next()
		if err != nil {
			res.err = err
			break
		}
		res.events = append(res.events, ev)
	}
	d, ok := r.Retry()
	res.lastID, res.retry, res.hasRetry = r.LastEventID(), d, ok
	return res
}

// randomChunks returns in a random number of bytes per Read, 0 to 16, but
// never two empty reads in a row.
type randomChunks struct {
	in    []byte
	rng   *rand.Rand
	empty bool
}

func (c *randomChunks) Read(p []byte) (int, error) {
	if len(c.in) == 0 {
		return 0, io.EOF
	}
	n := c.rng.IntN(17)
	if n == 0 && c.empty {
		n = 1
	}
	c.empty = n == 0
	n = copy(p[:min(n, len(p))], c.in)
	c.in = c.in[n:]
	return n, nil
}
