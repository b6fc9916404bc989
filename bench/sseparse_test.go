package bench

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"testing"
	"time"
)

// sinkEvent is an event as the parser yields it. The test stamps each read
// with the wire offset its bytes end at, in place of a time.
type sinkEvent struct {
	at     int64
	finish bool
}

type sink []sinkEvent

func (s *sink) event(now time.Time, data []byte) {
	*s = append(*s, sinkEvent{now.UnixNano(), bytes.Contains(data, []byte(`"finish_reason":"`))})
}

// wire is a response body as the server sends it, and where on it each
// event ends (the offset of the last '\n' of its "\n\n"), the one ending
// the generation last.
type wire struct {
	resp   *http.Response
	bytes  string
	ends   []int
	finish []bool
}

// sseStream is what Sluice writes for a short generation, and then bytes
// the parser must not reach.
func sseStream() (string, []bool) {
	chunk := func(delta, finish string) string {
		return `data: {"id":"chatcmpl-1","object":"chat.completion.chunk","choices":[{"index":0,"delta":` + delta +
			`,"logprobs":null,"finish_reason":` + finish + "}]}\n\n"
	}
	var b strings.Builder
	b.WriteString("retry: 4296\n\n")
	b.WriteString("id: 1\n" + chunk(`{"role":"assistant","content":""}`, "null"))
	b.WriteString(": a comment\n\n")
	finish := []bool{false}
	for i, tok := range []string{"Sluice", "'", "s", " built", " \U0001F680"} {
		fmt.Fprintf(&b, "id: %d\n%s", i+2, chunk(`{"content":"`+tok+`"}`, "null"))
		finish = append(finish, false)
	}
	b.WriteString("id: 7\n" + chunk(`{}`, `"stop"`))
	finish = append(finish, true)
	b.WriteString("id: 8\ndata: [DONE]\n\n")
	b.WriteString("id: 9\ndata: {\"late\":true}\n\n")
	return b.String(), finish
}

// eventEnds is the offset in body of the end of each event with data, the
// last one [DONE].
func eventEnds(body string) []int {
	var ends []int
	for i := 0; ; {
		j := strings.Index(body[i:], "\n\n")
		if j < 0 || strings.Contains(body[i:i+j], "late") {
			return ends
		}
		if strings.Contains(body[i:i+j], "data: ") {
			ends = append(ends, i+j+1)
		}
		i += j + 2
	}
}

// encode frames body: as is (up to the close), with a Content-Length, or in
// chunks of the given sizes (the last one takes the rest), with an
// extension and upper-case hex along the way.
func encode(body string, f framing, sizes []int) wire {
	ends := eventEnds(body)
	w := wire{resp: &http.Response{ContentLength: -1}}
	switch f {
	case untilClose:
		w.bytes, w.ends = body, ends
	case sized:
		w.resp.ContentLength = int64(len(body))
		w.bytes, w.ends = body, ends
	case chunked:
		w.resp.TransferEncoding = []string{"chunked"}
		var b strings.Builder
		k := 0 // of ends
		for i, n := 0, 0; i < len(body); i += n {
			n = len(body) - i
			if len(sizes) > 0 {
				n, sizes = min(sizes[0], n), sizes[1:]
			}
			if n%3 == 0 {
				fmt.Fprintf(&b, "%X;ext=1\r\n", n)
			} else {
				fmt.Fprintf(&b, "%x\r\n", n)
			}
			for ; k < len(ends) && ends[k] < i+n; k++ {
				w.ends = append(w.ends, b.Len()+ends[k]-i)
			}
			b.WriteString(body[i:i+n] + "\r\n")
		}
		b.WriteString("0\r\nX-Trailer: 1\r\n\r\n")
		w.bytes = b.String()
	}
	return w
}

// feedSplit feeds wire to a parser in reads of the given sizes, cycled,
// and returns the events, the wire offset the generation ended at (-1: it
// did not) and the error.
func feedSplit(w wire, sizes []int) (sink, int, error) {
	b := newHTTPBody(w.resp)
	var s sink
	for i, k := 0, 0; i < len(w.bytes); k++ {
		n := min(sizes[k%len(sizes)], len(w.bytes)-i)
		end, err := b.feed([]byte(w.bytes[i:i+n]), time.Unix(0, int64(i+n)), &s)
		i += n
		if end || err != nil {
			return s, i, err
		}
	}
	return s, -1, nil
}

// stampOf is the stamp of the read that held offset pos.
func stampOf(pos int, sizes []int, total int) int64 {
	for i, k := 0, 0; ; k++ {
		i += sizes[k%len(sizes)]
		if pos < i || i >= total {
			return int64(min(i, total))
		}
	}
}

func TestParserYieldsTheSameEventsHoweverTheReadsSplit(t *testing.T) {
	body, finish := sseStream()
	rng := rand.New(rand.NewPCG(1, 2))
	random := make([]int, 200)
	for i := range random {
		random[i] = 1 + rng.IntN(40)
	}
	wires := map[string]wire{
		"close":               encode(body, untilClose, nil),
		"length":              encode(body, sized, nil),
		"chunked, one chunk":  encode(body, chunked, nil),
		"chunked, per byte":   encode(body, chunked, []int{1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1}),
		"chunked, odd chunks": encode(body, chunked, []int{7, 13, 1, 2, 250, 3, 30, 199, 5, 64, 1, 1, 17}),
		"chunked, random":     encode(body, chunked, random),
	}
	splits := map[string][]int{
		"one read":     {1 << 20},
		"byte by byte": {1},
		"odd":          {2, 3, 5, 7, 11, 13, 17, 131},
		"random":       random,
	}
	for wn, w := range wires {
		for sn, sizes := range splits {
			t.Run(wn+"/"+sn, func(t *testing.T) {
				got, endAt, err := feedSplit(w, sizes)
				if err != nil {
					t.Fatal(err)
				}
				done := w.ends[len(w.ends)-1]
				if want := stampOf(done, sizes, len(w.bytes)); int64(endAt) != want {
					t.Errorf("ended after byte %d, want at the read ending %d", endAt, want)
				}
				if len(got) != len(finish) {
					t.Fatalf("%d events, want %d: %v", len(got), len(finish), got)
				}
				for i, ev := range got {
					want := sinkEvent{stampOf(w.ends[i], sizes, len(w.bytes)), finish[i]}
					if ev != want {
						t.Errorf("event %d: %+v, want %+v", i, ev, want)
					}
				}
			})
		}
	}
}

func TestParserEndsOnAnErrorEvent(t *testing.T) {
	w := encode("retry: 1\n\ndata: {\"x\":1}\n\ndata: {\"error\":{\"message\":\"no\"}}\n\n", chunked, []int{9, 9})
	got, endAt, err := feedSplit(w, []int{1})
	if err != nil || endAt < 0 || len(got) != 1 {
		t.Fatalf("events %v, end %d, %v", got, endAt, err)
	}
}

func TestParserReportsABrokenBody(t *testing.T) {
	chunkedResp := &http.Response{ContentLength: -1, TransferEncoding: []string{"chunked"}}
	for _, tc := range []struct {
		name, wire string
		resp       *http.Response
		want       string
	}{
		{"chunked body ends before [DONE]", "9\r\ndata: 1\n\n\r\n0\r\n\r\n", chunkedResp, "without [DONE]: EOF"},
		{"length reached before [DONE]", "data: 1\n\n", &http.Response{ContentLength: 9}, "without [DONE]: EOF"},
		{"size not hex", "zz\r\n", chunkedResp, `malformed chunked encoding: 'z' where a chunk size starts`},
		{"no CRLF after data", "3\r\nabcXY", chunkedResp, `malformed chunked encoding: 'X' after a chunk's data`},
		{"CR without LF", "3\rab", chunkedResp, `malformed chunked encoding: 'a' after a chunk size's CR`},
		{"size too long", "1234567890abcdef0\r\n", chunkedResp, `malformed chunked encoding: 'f' after a chunk size`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, sizes := range [][]int{{1 << 20}, {1}} {
				_, _, err := feedSplit(wire{resp: tc.resp, bytes: tc.wire}, sizes)
				if !errors.Is(err, errNoEnd) || !strings.HasSuffix(err.Error(), tc.want) {
					t.Errorf("reads of %d: %v, want …%s", sizes[0], err, tc.want)
				}
			}
		})
	}
}

func TestParserCountsAnEarlyCloseAsAFailure(t *testing.T) {
	for _, tc := range []struct {
		resp *http.Response
		want string
	}{
		{&http.Response{ContentLength: -1}, "the stream ended without [DONE]: EOF"},
		{&http.Response{ContentLength: -1, TransferEncoding: []string{"chunked"}}, "the stream ended without [DONE]: unexpected EOF"},
	} {
		b := newHTTPBody(tc.resp)
		var s sink
		if _, err := b.feed([]byte("4"), time.Now(), &s); err != nil {
			t.Fatal(err)
		}
		if err := b.closed(nil); err == nil || err.Error() != tc.want {
			t.Errorf("%v, want %s", err, tc.want)
		}
	}
}

// TestFirstContentAndModelStamps: the first token is told from the role
// chunk in both encodings (SSE data, and a WebSocket frame that holds the
// chunk as a JSON string), and the baseline model's stamps are read from it.
func TestFirstContentAndModelStamps(t *testing.T) {
	for _, c := range []struct {
		data       string
		content    bool
		recv, emit int64
		stamped    bool
	}{
		{`{"choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}`, false, 0, 0, false},
		{`{"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}`, false, 0, 0, false},
		{`{"choices":[{"index":0,"delta":{"content":" token"},"finish_reason":null}]}`, true, 0, 0, false},
		{`{"choices":[{"index":0,"delta":{"role":"assistant","content":" @1795441166000000001/1795441166300000002"}}]}`, true, 1795441166000000001, 1795441166300000002, true},
		{`{"type":"event","id":"2","data":"{\"choices\":[{\"delta\":{\"content\":\" @10/25\"}}]}"}`, true, 10, 25, true},
		{`{"type":"event","id":"1","data":"{\"choices\":[{\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}]}"}`, false, 0, 0, false},
		{`{"choices":[{"delta":{"content":" @12"}}]}`, true, 0, 0, false},    // no emit stamp
		{`{"choices":[{"delta":{"content":" @25/10"}}]}`, true, 0, 0, false}, // sent before it was asked
		{`{"choices":[{"delta":{"content":" @/10"}}]}`, true, 0, 0, false},
	} {
		if got := hasContent([]byte(c.data)); got != c.content {
			t.Errorf("hasContent(%s) = %v", c.data, got)
		}
		recv, emit, ok := modelStamps([]byte(c.data))
		if ok != c.stamped || ok && (recv != c.recv || emit != c.emit) {
			t.Errorf("modelStamps(%s) = %d, %d, %v", c.data, recv, emit, ok)
		}
	}
}

// TestTimingAcrossTheMark: a generation under way when its worker is marked
// gives inter-token delays from its next token on, and no second "first
// token" with a TTFT as long as the generation so far.
func TestTimingAcrossTheMark(t *testing.T) {
	w := &worker{}
	h := newReport()
	start := time.Now()
	tm := &timing{w: w, h: &h, sent: start, dialed: start}
	role := []byte(`{"choices":[{"delta":{"role":"assistant","content":""}}]}`)
	token := []byte(`{"choices":[{"delta":{"content":" a"}}]}`)
	tm.event(start.Add(time.Millisecond), role)
	tm.event(start.Add(300*time.Millisecond), token)
	tm.event(start.Add(320*time.Millisecond), token)
	w.recording.Store(true)
	tm.event(start.Add(345*time.Millisecond), token)
	tm.event(start.Add(365*time.Millisecond), token)
	tm.event(start.Add(366*time.Millisecond), []byte(`{"choices":[{"delta":{},"finish_reason":"stop"}]}`))
	if h.TTFT.N != 0 || h.Overhead.N != 0 || h.ITL.N != 2 || h.ITL.MaxUS != 25000 {
		t.Errorf("TTFT %d, overhead %d, ITL %d (max %d µs); want 0, 0, 2 (25000)", h.TTFT.N, h.Overhead.N, h.ITL.N, h.ITL.MaxUS)
	}
}
