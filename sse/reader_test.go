package sse

import (
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
	"testing/iotest"
	"time"
)

// readAll reads events until Next fails, and returns them with that error.
func readAll(t *testing.T, r *Reader) ([]Event, error) {
	t.Helper()
	var evs []Event
	for {
		ev, err := r.Next()
		if err != nil {
			return evs, err
		}
		evs = append(evs, ev)
		if len(evs) > 1<<20 {
			t.Fatal("Next does not stop")
		}
	}
}

// readerSpecCases are streams and the events the WHATWG algorithm makes of
// them. The first ones are the examples of the standard itself.
var readerSpecCases = []struct {
	name   string
	in     string
	want   []Event
	lastID string
	retry  time.Duration // -1: no retry field takes effect
}{
	{
		name: "spec: data lines join with LF",
		in:   "data: YHOO\ndata: +2\ndata: 10\n\n",
		want: []Event{{Data: "YHOO\n+2\n10"}}, retry: -1,
	},
	{
		name: "spec: comment, ids, empty id resets, one space stripped",
		in:   ": test stream\n\ndata: first event\nid: 1\n\ndata:second event\nid\n\ndata:  third event\n\n",
		want: []Event{
			{ID: "1", HasID: true, Data: "first event"},
			{ID: "", HasID: true, Data: "second event"},
			{Data: " third event"},
		},
		retry: -1,
	},
	{
		name: "spec: bare data dispatches empty data, unterminated event is dropped",
		in:   "data\n\ndata\ndata\n\ndata:",
		want: []Event{{Data: ""}, {Data: "\n"}}, retry: -1,
	},
	{
		name: "spec: space after colon is optional",
		in:   "data:test\n\ndata: test\n\n",
		want: []Event{{Data: "test"}, {Data: "test"}}, retry: -1,
	},
	{name: "CR line endings", in: "event: a\rdata: x\rdata: y\r\r", want: []Event{{Name: "a", Data: "x\ny"}}, retry: -1},
	{name: "CRLF line endings", in: "id: 7\r\ndata: x\r\n\r\n", want: []Event{{ID: "7", HasID: true, Data: "x"}}, lastID: "7", retry: -1},
	{name: "LF CR is two line endings", in: "data: x\n\rdata: y\n\n", want: []Event{{Data: "x"}, {Data: "y"}}, retry: -1},
	{name: "mixed line endings", in: "data: a\r\ndata: b\rdata: c\n\r\n", want: []Event{{Data: "a\nb\nc"}}, retry: -1},
	{name: "leading BOM is dropped", in: "\uFEFFdata: x\n\n", want: []Event{{Data: "x"}}, retry: -1},
	{name: "only one BOM is dropped", in: "\uFEFF\uFEFFdata: x\n\ndata: y\n\n", want: []Event{{Data: "y"}}, retry: -1},
	{name: "BOM later is a character", in: "data: x\n\n\uFEFFdata: y\n\n", want: []Event{{Data: "x"}}, retry: -1},
	{name: "partial BOM is text", in: "\xEF\xBBdata: x\n\ndata: y\n\n", want: []Event{{Data: "y"}}, retry: -1},
	{name: "colon in value", in: "data: a: b:c\n\n", want: []Event{{Data: "a: b:c"}}, retry: -1},
	{name: "only one space is stripped", in: "data:   x \n\n", want: []Event{{Data: "  x "}}, retry: -1},
	{name: "tab is not stripped", in: "data:\tx\n\n", want: []Event{{Data: "\tx"}}, retry: -1},
	{name: "field names are case-sensitive", in: "Data: x\nDATA: y\n\ndata: z\n\n", want: []Event{{Data: "z"}}, retry: -1},
	{name: "unknown fields are ignored", in: "foo: bar\ndata: x\nbaz\n:\n\n", want: []Event{{Data: "x"}}, retry: -1},
	{name: "space before colon makes another field", in: "data : x\n\ndata: y\n\n", want: []Event{{Data: "y"}}, retry: -1},
	{name: "event without colon sets an empty name", in: "event: a\nevent\ndata: x\n\n", want: []Event{{Data: "x"}}, retry: -1},
	{name: "last event field wins", in: "event: a\nevent: b\ndata: x\n\n", want: []Event{{Name: "b", Data: "x"}}, retry: -1},
	{name: "name resets after dispatch", in: "event: a\ndata: x\n\ndata: y\n\n", want: []Event{{Name: "a", Data: "x"}, {Data: "y"}}, retry: -1},
	{name: "name-only block dispatches nothing and does not leak", in: "event: a\n\ndata: y\n\n", want: []Event{{Data: "y"}}, retry: -1},
	{name: "comment-only and blank blocks dispatch nothing", in: ": ping\n\n\n\n: a\n: b\n\ndata: x\n\n", want: []Event{{Data: "x"}}, retry: -1},
	{name: "id carries over to later events", in: "id: 1\ndata: a\n\ndata: b\n\n", want: []Event{{ID: "1", HasID: true, Data: "a"}, {ID: "1", Data: "b"}}, lastID: "1", retry: -1},
	{name: "id-only block sets the id of the next event", in: "id: 5\n\ndata: x\n\n", want: []Event{{ID: "5", HasID: true, Data: "x"}}, lastID: "5", retry: -1},
	{name: "id after data in the same block applies", in: "data: x\nid: 9\n\n", want: []Event{{ID: "9", HasID: true, Data: "x"}}, lastID: "9", retry: -1},
	{name: "id with NUL is ignored", in: "id: 1\ndata: a\n\nid: 2\x003\ndata: b\n\n", want: []Event{{ID: "1", HasID: true, Data: "a"}, {ID: "1", Data: "b"}}, lastID: "1", retry: -1},
	{name: "id keeps inner spaces", in: "id:  a b \ndata: x\n\n", want: []Event{{ID: " a b ", HasID: true, Data: "x"}}, lastID: " a b ", retry: -1},
	{name: "id without blank line does not become the last event ID", in: "id: 1\ndata: a\n\nid: 2\n", want: []Event{{ID: "1", HasID: true, Data: "a"}}, lastID: "1", retry: -1},
	{name: "NUL in data and name is kept", in: "event: a\x00\ndata: b\x00\n\n", want: []Event{{Name: "a\x00", Data: "b\x00"}}, retry: -1},
	{name: "retry goes with the next event", in: "retry: 1500\n\ndata: x\n\ndata: y\n\n", want: []Event{{Data: "x", Retry: 1500 * time.Millisecond}, {Data: "y"}}, retry: 1500 * time.Millisecond},
	{name: "retry at the end of the stream is kept", in: "data: x\n\nretry: 10\n", want: []Event{{Data: "x"}}, retry: 10 * time.Millisecond},
	{name: "last retry wins", in: "retry: 10\nretry: 20\ndata: x\n\n", want: []Event{{Data: "x", Retry: 20 * time.Millisecond}}, retry: 20 * time.Millisecond},
	{name: "retry zero", in: "retry: 0\ndata: x\n\n", want: []Event{{Data: "x"}}, retry: 0},
	{name: "retry with non-digits is ignored", in: "retry: 10\nretry: 1a\nretry: -1\nretry: 1.5\nretry:  5\nretry: 5 \nretry\nretry: \ndata: x\n\n", want: []Event{{Data: "x", Retry: 10 * time.Millisecond}}, retry: 10 * time.Millisecond},
	{name: "huge retry saturates", in: "retry: 99999999999999999999999\ndata: x\n\n", want: []Event{{Data: "x", Retry: 1<<63 - 1}}, retry: 1<<63 - 1},
	{name: "unterminated last line is dropped", in: "data: x\n\ndata: y", want: []Event{{Data: "x"}}, retry: -1},
	{name: "event without blank line at EOF is dropped", in: "data: x\n\ndata: y\n", want: []Event{{Data: "x"}}, retry: -1},
	{name: "empty stream", in: "", retry: -1},
	{name: "only blank lines", in: "\n\r\n\r", retry: -1},
	{name: "invalid UTF-8 becomes U+FFFD per maximal subpart", in: "data: a\xffb\xe2\x82c\xf0\x9f\x98\n\n", want: []Event{{Data: "a\uFFFDb\uFFFDc\uFFFD"}}, retry: -1},
	{name: "surrogates and overlongs are ill-formed byte by byte", in: "data: \xed\xa0\x80\xc0\xaf\n\n", want: []Event{{Data: "\uFFFD\uFFFD\uFFFD\uFFFD\uFFFD"}}, retry: -1},
	{name: "invalid UTF-8 in id and name", in: "id: \xff\nevent: \xfe\ndata: x\n\n", want: []Event{{ID: "\uFFFD", HasID: true, Name: "\uFFFD", Data: "x"}}, lastID: "\uFFFD", retry: -1},
	{name: "U+FFFD itself is kept", in: "data: \uFFFD\n\n", want: []Event{{Data: "\uFFFD"}}, retry: -1},
}

func TestReaderFollowsTheWHATWGAlgorithm(t *testing.T) {
	for _, tt := range readerSpecCases {
		t.Run(tt.name, func(t *testing.T) {
			for _, how := range []struct {
				name string
				wrap func(io.Reader) io.Reader
			}{
				{"whole", func(r io.Reader) io.Reader { return r }},
				{"one byte per read", iotest.OneByteReader},
				{"data with EOF", iotest.DataErrReader},
			} {
				r := NewReader(how.wrap(strings.NewReader(tt.in)))
				got, err := readAll(t, r)
				if err != io.EOF {
					t.Errorf("%s: read ended with %v, want io.EOF", how.name, err)
				}
				if !reflect.DeepEqual(got, tt.want) {
					t.Errorf("%s: %q\n got %+v\nwant %+v", how.name, tt.in, got, tt.want)
				}
				if id := r.LastEventID(); id != tt.lastID {
					t.Errorf("%s: LastEventID() = %q, want %q", how.name, id, tt.lastID)
				}
				d, ok := r.Retry()
				if want := tt.retry; ok != (want >= 0) || (ok && d != want) {
					t.Errorf("%s: Retry() = %v, %v; want %v", how.name, d, ok, want)
				}
			}
		})
	}
}

func TestReaderParsesEventsOfAnyChunking(t *testing.T) {
	in := "\uFEFFid: 1\r\nevent: a\r\ndata: x\r\n\r\n: c\r\rdata: y\rdata: \xe2\x82\xac\n\r\nretry: 7\r\n\r\n"
	want, err := readAll(t, NewReader(strings.NewReader(in)))
	if err != io.EOF || len(want) != 2 {
		t.Fatalf("whole stream: %d events, %v", len(want), err)
	}
	for i := 0; i <= len(in); i++ {
		for j := i; j <= len(in); j++ {
			got, err := readAll(t, NewReader(&chunks{parts: []string{in[:i], in[i:j], in[j:]}}))
			if err != io.EOF || !reflect.DeepEqual(got, want) {
				t.Fatalf("split at %d and %d: got %+v, %v; want %+v", i, j, got, err, want)
			}
		}
	}
}

// chunks is a reader that returns its parts one per Read, empty ones too.
type chunks struct{ parts []string }

func (c *chunks) Read(p []byte) (int, error) {
	if len(c.parts) == 0 {
		return 0, io.EOF
	}
	n := copy(p, c.parts[0])
	if c.parts[0] = c.parts[0][n:]; c.parts[0] == "" {
		c.parts = c.parts[1:]
	}
	return n, nil
}

func TestReaderParsesLinesLongerThanAnyBuffer(t *testing.T) {
	long := strings.Repeat("0123456789abcdef", 3<<20/16) // 3 MiB
	in := ": " + long + "\ndata: " + long + "\ndata: " + long + "\n\ndata: after\n\n"
	for _, wrap := range []func(io.Reader) io.Reader{func(r io.Reader) io.Reader { return r }, iotest.HalfReader} {
		got, err := readAll(t, NewReader(wrap(strings.NewReader(in))))
		if err != io.EOF || len(got) != 2 {
			t.Fatalf("got %d events, %v; want 2, EOF", len(got), err)
		}
		if got[0].Data != long+"\n"+long || got[1].Data != "after" {
			t.Errorf("long event has %d bytes of data, want %d; then %q", len(got[0].Data), 2*len(long)+1, got[1].Data)
		}
	}
}

func TestReaderRejectsLinesAndEventsOverMaxSize(t *testing.T) {
	tests := []struct {
		name string
		in   string
		ok   int // events before the error
	}{
		{"long terminated line", "data: a\n\ndata: " + strings.Repeat("x", 100) + "\n\n", 1},
		{"long unterminated line", "data: a\n\ndata: " + strings.Repeat("x", 100), 1},
		{"long comment", ":" + strings.Repeat("x", 100) + "\ndata: a\n\n", 0},
		{"data over the limit in short lines", "data: a\n\n" + strings.Repeat("data: 0123456789\n", 6) + "\n", 1},
		{"long line at end after CR", "data: a\r\r" + strings.Repeat("x", 65) + "\r", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, wrap := range []func(io.Reader) io.Reader{func(r io.Reader) io.Reader { return r }, iotest.OneByteReader} {
				r := NewReader(wrap(strings.NewReader(tt.in)))
				r.MaxSize = 64
				got, err := readAll(t, r)
				if !errors.Is(err, ErrTooLarge) || len(got) != tt.ok {
					t.Fatalf("got %d events, then %v; want %d, then ErrTooLarge", len(got), err, tt.ok)
				}
				if _, again := r.Next(); again != err {
					t.Errorf("after the error Next returned %v, want the same error", again)
				}
			}
		})
	}
}

func TestReaderAcceptsLinesAndEventsOfExactlyMaxSize(t *testing.T) {
	line := "data: " + strings.Repeat("x", 58) // 64 bytes
	in := line + "\r" + "data: " + strings.Repeat("y", 5) + "\r\r" + line + "\n\n"
	r := NewReader(iotest.OneByteReader(strings.NewReader(in)))
	r.MaxSize = 64
	got, err := readAll(t, r)
	if err != io.EOF || len(got) != 2 || len(got[0].Data) != 64 || len(got[1].Data) != 58 {
		t.Fatalf("got %+v, %v; want 2 events of 64 and 58 bytes", got, err)
	}
}

func TestReaderReturnsAnEventWithoutWaitingForMoreInput(t *testing.T) {
	for _, frame := range []string{"data: a\n\n", "data: a\r\r", "data: a\r\n\r\n", "\uFEFFdata: a\n\n"} {
		pr, pw := io.Pipe()
		defer pw.Close()
		go pw.Write([]byte(frame)) // the pipe blocks this write until it is read
		got := make(chan error, 1)
		go func() {
			ev, err := NewReader(pr).Next()
			if err == nil && ev.Data != "a" {
				err = errors.New("wrong data " + ev.Data)
			}
			got <- err
		}()
		select {
		case err := <-got:
			if err != nil {
				t.Errorf("%q: %v", frame, err)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%q: Next still waits for input after a whole event", frame)
		}
	}
}

func TestReaderReturnsReadErrorsAfterCompleteEvents(t *testing.T) {
	boom := errors.New("boom")
	in := io.MultiReader(strings.NewReader("data: a\n\ndata: b\n\ndata: c\n"), iotest.ErrReader(boom))
	r := NewReader(in)
	got, err := readAll(t, r)
	if err != boom || len(got) != 2 {
		t.Fatalf("got %+v, %v; want events a and b, then boom", got, err)
	}
	if _, err := r.Next(); err != boom {
		t.Errorf("second call after the error: %v, want boom", err)
	}
}

func TestReaderGivesUpOnAReaderThatMakesNoProgress(t *testing.T) {
	_, err := NewReader(zeroReader{}).Next()
	if err != io.ErrNoProgress {
		t.Fatalf("got %v, want io.ErrNoProgress", err)
	}
}

type zeroReader struct{}

func (zeroReader) Read([]byte) (int, error) { return 0, nil }
