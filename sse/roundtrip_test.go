package sse

import (
	"bytes"
	"reflect"
	"strings"
	"testing"
	"time"

	gosse "github.com/tmaxmax/go-sse"
	"golang.org/x/text/encoding/unicode"
)

// The encoder is checked against github.com/tmaxmax/go-sse, an SSE library
// that has its own parser, written from the WHATWG text: it handles \r, \n
// and \r\n line ends, a leading BOM, and ids with NUL, is maintained, and has
// no dependencies. The alternative, github.com/launchdarkly/eventsource,
// reads lines through a goroutine per stream and does not strip a BOM.
// go-sse's Read departs from the standard in two ways that do not matter
// here: it dispatches blocks with an id or event field but no data (the
// encoder never writes one), and it does not decode UTF-8, so it hands back
// invalid bytes as they are (the checks below expect raw bytes from it).

// readGoSSE parses stream with go-sse.
func readGoSSE(t *testing.T, stream []byte) []gosse.Event {
	t.Helper()
	var evs []gosse.Event
	for ev, err := range gosse.Read(bytes.NewReader(stream), &gosse.ReadConfig{MaxEventSize: 64 << 20}) {
		if err != nil {
			t.Fatalf("go-sse: %v", err)
		}
		evs = append(evs, ev)
	}
	return evs
}

func TestEncodedStreamReadsBackInBothParsers(t *testing.T) {
	big := strings.Repeat("x", 200<<10)
	var stream []byte
	stream = AppendRetry(stream, 2*time.Second)
	stream = AppendComment(stream, "connected\ndata: not data")
	stream = AppendEvent(stream, "1-0", "", []byte(chunkJSON))
	stream = AppendEvent(stream, "1-1", "status", []byte(" spaced\r\nlines\r\n"))
	stream = AppendComment(stream, "ping")
	stream = AppendEvent(stream, "", "", nil)
	stream = AppendEvent(stream, "1-2", "", []byte(big))
	stream = AppendEvent(stream, "1-3", "", []byte("[DONE]"))

	want := []gosse.Event{
		{LastEventID: "1-0", Data: chunkJSON},
		{LastEventID: "1-1", Type: "status", Data: " spaced\nlines\n"},
		{LastEventID: "1-1", Data: ""},
		{LastEventID: "1-2", Data: big},
		{LastEventID: "1-3", Data: "[DONE]"},
	}
	if got := readGoSSE(t, stream); !reflect.DeepEqual(got, want) {
		t.Errorf("go-sse read\n%.500q\nwant\n%.500q", got, want)
	}
	r := NewReader(bytes.NewReader(stream))
	got, err := readAll(t, r)
	if len(got) != len(want) {
		t.Fatalf("Reader: %d events, %v; want %d", len(got), err, len(want))
	}
	for i, ev := range got {
		w := want[i]
		if ev.ID != w.LastEventID || ev.Name != w.Type || ev.Data != w.Data {
			t.Errorf("Reader event %d: got %.200q, want %.200q", i, []string{ev.ID, ev.Name, ev.Data}, w)
		}
	}
	if got[0].Retry != 2*time.Second || got[2].HasID {
		t.Errorf("Reader: first event Retry %v (want 2s), event without id has HasID %v", got[0].Retry, got[2].HasID)
	}
}

func FuzzRoundTrip(f *testing.F) {
	f.Add("1-0", "", []byte(chunkJSON))
	f.Add("", "", []byte(""))
	f.Add("7", "delta", []byte("a\nb\r\nc\rd\n\re\n"))
	f.Add("id\r\nevent: x", "name\rdata: y", []byte(" lead\r\r\n"))
	f.Add("\x00", "\x00", []byte("\x00: x\n:"))
	f.Add("\xff\xfe", "\xe2\x82", []byte("\xf0\x9f\x98\n\xed\xa0\x80"))
	f.Add("\uFEFF", "\uFEFF", []byte("\uFEFFdata: x\n\n"))
	f.Fuzz(func(t *testing.T, id, name string, data []byte) {
		var stream []byte
		stream = AppendComment(stream, name)
		stream = AppendEvent(stream, id, name, data)
		stream = AppendComment(stream, string(data))
		stream = AppendEvent(stream, "", "", []byte("end"))

		wantID := strip(id, "\r\n\x00")
		wantName := strip(name, "\r\n")
		wantData := strings.ReplaceAll(strings.ReplaceAll(string(data), "\r\n", "\n"), "\r", "\n")

		// go-sse passes bytes through undecoded.
		want := []gosse.Event{
			{LastEventID: wantID, Type: wantName, Data: wantData},
			{LastEventID: wantID, Data: "end"},
		}
		if got := readGoSSE(t, stream); !reflect.DeepEqual(got, want) {
			t.Fatalf("go-sse read %q\n got %q\nwant %q", stream, got, want)
		}

		// Reader decodes UTF-8 as the standard does.
		decID, decName, decData := decode(wantID), decode(wantName), decode(wantData)
		wantEvents := []Event{
			{ID: decID, HasID: wantID != "", Name: decName, Data: decData},
			{ID: decID, Data: "end"},
		}
		got, _ := readAll(t, NewReader(bytes.NewReader(stream)))
		if !reflect.DeepEqual(got, wantEvents) {
			t.Fatalf("Reader read %q\n got %#v\nwant %#v", stream, got, wantEvents)
		}
	})
}

// strip returns s without any byte of cut.
func strip(s, cut string) string {
	var b []byte // strings.Map would replace invalid UTF-8
	for i := 0; i < len(s); i++ {
		if !strings.Contains(cut, s[i:i+1]) {
			b = append(b, s[i])
		}
	}
	return string(b)
}

// decode returns s as the Encoding Standard's UTF-8 decoder (without BOM
// handling) reads it.
func decode(s string) string {
	out, err := unicode.UTF8.NewDecoder().String(s)
	if err != nil {
		panic(err)
	}
	return out
}
