package sse

import (
	"net/http"
	"testing"
	"time"
)

func TestAppendEventWritesExactBytes(t *testing.T) {
	tests := []struct {
		name   string
		id, ev string
		data   string
		want   string
	}{
		{name: "data only", data: "hello", want: "data: hello\n\n"},
		{name: "id, name and data", id: "17-0", ev: "delta", data: `{"a":1}`, want: "id: 17-0\nevent: delta\ndata: {\"a\":1}\n\n"},
		{name: "empty data is one empty data line", data: "", want: "data: \n\n"},
		{name: "LF splits lines", data: "a\nb", want: "data: a\ndata: b\n\n"},
		{name: "CRLF is one break", data: "a\r\nb", want: "data: a\ndata: b\n\n"},
		{name: "lone CR is a break", data: "a\rb", want: "data: a\ndata: b\n\n"},
		{name: "LF CR is two breaks", data: "a\n\rb", want: "data: a\ndata: \ndata: b\n\n"},
		{name: "trailing break keeps an empty last line", data: "a\n", want: "data: a\ndata: \n\n"},
		{name: "trailing CR", data: "a\r", want: "data: a\ndata: \n\n"},
		{name: "only a break", data: "\r\n", want: "data: \ndata: \n\n"},
		{name: "leading space is kept behind the separator space", data: " x", want: "data:  x\n\n"},
		{name: "colons and field-like text stay data", data: "id: 9\nevent: x", want: "data: id: 9\ndata: event: x\n\n"},
		{name: "NUL in data is data", data: "a\x00b", want: "data: a\x00b\n\n"},
		{name: "line breaks and NUL are removed from id", id: "1\r\n2\x003", data: "x", want: "id: 123\ndata: x\n\n"},
		{name: "id of only removed bytes is left out", id: "\r\n\x00", data: "x", want: "data: x\n\n"},
		{name: "line breaks are removed from name", ev: "a\nevent: b\r", data: "x", want: "event: aevent: b\ndata: x\n\n"},
		{name: "NUL stays in name", ev: "a\x00", data: "x", want: "event: a\x00\ndata: x\n\n"},
		{name: "name of only line breaks is left out", ev: "\n", data: "x", want: "data: x\n\n"},
		{name: "DONE sentinel", data: "[DONE]", want: "data: [DONE]\n\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := AppendEvent(nil, tt.id, tt.ev, []byte(tt.data))
			if string(got) != tt.want {
				t.Errorf("AppendEvent(%q, %q, %q)\n got %q\nwant %q", tt.id, tt.ev, tt.data, got, tt.want)
			}
		})
	}
}

func TestAppendEventAppendsAfterExistingBytes(t *testing.T) {
	buf := AppendRetry(make([]byte, 0, 64), 1500*time.Millisecond)
	buf = AppendEvent(buf, "1", "", []byte("a"))
	buf = AppendEvent(buf, "2", "", []byte("b"))
	want := "retry: 1500\nid: 1\ndata: a\n\nid: 2\ndata: b\n\n"
	if string(buf) != want {
		t.Errorf("got %q, want %q", buf, want)
	}
}

func TestAppendEventDoesNotAllocateWithCapacity(t *testing.T) {
	data := []byte(chunkJSON)
	buf := make([]byte, 0, 1024)
	allocs := testing.AllocsPerRun(100, func() {
		buf = AppendEvent(buf[:0], "1712345678901-0", "", data)
		buf = AppendEvent(buf, "\n1712345678901-1", "delta", []byte("multi\r\nline\rdata\n"))
		buf = AppendComment(buf, "ping")
		buf = AppendRetry(buf, 3*time.Second)
	})
	if allocs != 0 {
		t.Errorf("appending allocated %v times per run, want 0", allocs)
	}
}

func TestAppendCommentWritesExactBytes(t *testing.T) {
	tests := []struct{ text, want string }{
		{"ping", ": ping\n"},
		{"", ": \n"},
		{"a\nb", ": a\n: b\n"},
		{"a\r\ndata: x\rb", ": a\n: data: x\n: b\n"},
		{"end\n", ": end\n: \n"},
	}
	for _, tt := range tests {
		if got := AppendComment(nil, tt.text); string(got) != tt.want {
			t.Errorf("AppendComment(%q) = %q, want %q", tt.text, got, tt.want)
		}
	}
}

func TestAppendRetryWritesWholeMillisecondsRoundedUp(t *testing.T) {
	tests := []struct {
		d    time.Duration
		want string
	}{
		{3 * time.Second, "retry: 3000\n"},
		{0, "retry: 0\n"},
		{time.Nanosecond, "retry: 1\n"},
		{1500 * time.Microsecond, "retry: 2\n"},
		{-time.Second, "retry: 0\n"},
		{time.Duration(1<<63 - 1), "retry: 9223372036855\n"},
	}
	for _, tt := range tests {
		if got := AppendRetry(nil, tt.d); string(got) != tt.want {
			t.Errorf("AppendRetry(%v) = %q, want %q", tt.d, got, tt.want)
		}
	}
}

func TestSetHeadersAllowsHTTP2AndDisablesBuffering(t *testing.T) {
	h := http.Header{}
	h.Set("Content-Type", "text/plain")
	SetHeaders(h)
	want := map[string]string{
		"Content-Type":      "text/event-stream",
		"Cache-Control":     "no-cache",
		"X-Accel-Buffering": "no",
	}
	for k, v := range want {
		if got := h.Values(k); len(got) != 1 || got[0] != v {
			t.Errorf("header %s = %q, want [%q]", k, got, v)
		}
	}
	if _, ok := h["Connection"]; ok {
		t.Errorf("Connection header set; HTTP/2 forbids it")
	}
}
