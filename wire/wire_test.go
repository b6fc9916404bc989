package wire

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/sluice-dev/sluice"
)

func TestAppendString(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", `""`},
		{"plain", `"plain"`},
		{"q\"b\\", `"q\"b\\"`},
		{"a\nb\r\tc", `"a\nb\r\tc"`},
		{"\x00\x1f", `"\u0000\u001f"`},
		{"<tag>&", `"<tag>&"`},
		{"你好 🚀", `"你好 🚀"`},
		{"bad\xffbyte", `"bad\ufffdbyte"`},
		{"\u2028\u2029", `"\u2028\u2029"`},
	}
	for _, tt := range tests {
		if got := string(AppendString(nil, tt.in)); got != tt.want {
			t.Errorf("AppendString(%q) = %s, want %s", tt.in, got, tt.want)
		}
	}
}

// FuzzAppendString checks the hand-written encoder against encoding/json:
// both must decode to the same string.
func FuzzAppendString(f *testing.F) {
	for _, s := range []string{"", "a\"b", "\x00", "\xff\xfe", "日本\u2028", "\\u0041"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var got, want string
		if err := json.Unmarshal(AppendString(nil, s), &got); err != nil {
			t.Fatalf("AppendString(%q) is not JSON: %v", s, err)
		}
		std, _ := json.Marshal(s)
		_ = json.Unmarshal(std, &want)
		if got != want {
			t.Fatalf("AppendString(%q) decodes to %q, encoding/json's to %q", s, got, want)
		}
	})
}

func TestChunksAreValidJSON(t *testing.T) {
	c := NewChunks("chatcmpl-x", "demo\"model", 42, true)
	for _, d := range []sluice.Delta{
		{Role: "assistant"},
		{Content: "hi \"there\"\n"},
		{ReasoningContent: "hmm"},
		{ToolCalls: json.RawMessage(`[{"index":0,"id":"call_1","type":"function","function":{"name":"f","arguments":""}}]`)},
		{FinishReason: "stop"},
	} {
		b := c.Delta(d)
		var ch Chunk
		if err := json.Unmarshal(b, &ch); err != nil {
			t.Fatalf("%s: %v", b, err)
		}
		if ch.Model != "demo\"model" || ch.Object != "chat.completion.chunk" || ch.Created != 42 || len(ch.Choices) != 1 {
			t.Fatalf("%s decoded to %+v", b, ch)
		}
		if !strings.Contains(string(b), `"usage":null`) {
			t.Errorf("%s: with include_usage every chunk carries usage:null", b)
		}
	}
	var ch Chunk
	if err := json.Unmarshal(c.Usage(sluice.Usage{PromptTokens: 3, CompletionTokens: 4}), &ch); err != nil {
		t.Fatal(err)
	}
	if len(ch.Choices) != 0 || ch.Usage == nil || ch.Usage.TotalTokens != 7 {
		t.Fatalf("usage chunk %+v", ch)
	}
}

func TestCollectorRebuildsTheAnswer(t *testing.T) {
	c := NewChunks("chatcmpl-x", "m", 1, false)
	var co Collector
	for _, d := range []sluice.Delta{
		{Role: "assistant"}, {Content: "Hel"}, {Content: "lo"},
		{ToolCalls: json.RawMessage(`[{"index":0,"id":"call_1","type":"function","function":{"name":"get","arguments":"{\"a\""}}]`)},
		{ToolCalls: json.RawMessage(`[{"index":0,"function":{"arguments":":1}"}}]`)},
		{FinishReason: "tool_calls"},
	} {
		if err := co.Add(c.Delta(d)); err != nil {
			t.Fatal(err)
		}
	}
	got := co.Completion()
	if got.Object != "chat.completion" || *got.Choices[0].Message.Content != "Hello" || got.Choices[0].FinishReason != "tool_calls" {
		t.Fatalf("%+v", got)
	}
	if want := `[{"function":{"name":"get","arguments":"{\"a\":1}"},"id":"call_1","type":"function"}]`; string(got.Choices[0].Message.ToolCalls) != want {
		t.Fatalf("tool calls %s, want %s", got.Choices[0].Message.ToolCalls, want)
	}
}

func TestErrorHidesInternalDetail(t *testing.T) {
	b := string(ErrorJSON(&sluice.Error{Code: sluice.EUPSTREAM, Kind: "upstream_reset", Message: "Reset.", Err: errSecret}))
	if strings.Contains(b, "secret") || !strings.Contains(b, `"code":"upstream_reset"`) || !strings.Contains(b, `"message":"Reset."`) {
		t.Fatalf("%s", b)
	}
	if b := string(ErrorJSON(errSecret)); strings.Contains(b, "secret") || !strings.Contains(b, `"type":"server_error"`) {
		t.Fatalf("%s", b)
	}
}

var errSecret = &json.UnsupportedValueError{Str: "secret detail"}

// BenchmarkChunkDelta is one token's chunk encoded into a reused buffer,
// as a generation does for every token: it must not allocate.
func BenchmarkChunkDelta(b *testing.B) {
	c := NewChunks("chatcmpl-0123456789abcdef0123456789abcdef", "demo", 1700000000, false)
	d := sluice.Delta{Content: " token"}
	var buf []byte
	b.ReportAllocs()
	for b.Loop() {
		buf = c.AppendDelta(buf[:0], d)
	}
}
