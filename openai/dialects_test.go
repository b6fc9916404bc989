package openai_test

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/sluice-dev/sluice/openai"
)

// The chunks below are shaped as each server sends them; only the texts
// are made up.
func TestUpstreamDialectsReachTheClientAsOpenAIChunks(t *testing.T) {
	const (
		role  = `{"role":"assistant","content":""}`
		stop  = `{} finish stop`
		usage = "usage 9+2=11"
	)
	toolStart := `{"role":"assistant","content":null,"tool_calls":[{"index":0,"id":"call_1","type":"function","function":{"name":"get_weather","arguments":""}}]}`
	toolArgs1 := `{"tool_calls":[{"index":0,"function":{"arguments":"{\"city\":"}}]}`
	toolArgs2 := `{"tool_calls":[{"index":0,"function":{"arguments":"\"Paris\"}"}}]}`
	tests := []struct {
		name   string
		frames []string
		want   []string
	}{
		{"DeepSeek reasoning_content", []string{roleChunk, chunk(`{"reasoning_content":"Let me think."}`, "null"),
			chunk(`{"content":"42","reasoning_content":null}`, "null"), stopChunk, usageChunk, doneFrame},
			[]string{role, `{"reasoning_content":"Let me think."}`, `{"content":"42"}`, stop, usage, "[DONE]"}},
		{"vLLM reasoning", []string{roleChunk, chunk(`{"reasoning":"Hmm."}`, "null"), content("42"), stopChunk, usageChunk, doneFrame},
			[]string{role, `{"reasoning_content":"Hmm."}`, `{"content":"42"}`, stop, usage, "[DONE]"}},
		{"both reasoning fields, same text", []string{roleChunk, chunk(`{"reasoning":"Hmm.","reasoning_content":"Hmm."}`, "null"), stopChunk, doneFrame},
			[]string{role, `{"reasoning_content":"Hmm."}`, stop, "usage 0+1=1", "[DONE]"}},
		{"tool calls", []string{chunk(toolStart, "null"), chunk(toolArgs1, "null"), chunk(toolArgs2, "null"), chunk(`{}`, `"tool_calls"`), usageChunk, doneFrame},
			[]string{`{"role":"assistant","content":"","tool_calls":[{"index":0,"id":"call_1","type":"function","function":{"name":"get_weather","arguments":""}}]}`,
				toolArgs1, toolArgs2, `{} finish tool_calls`, usage, "[DONE]"}},
		{"llama.cpp: usage on the last content chunk", []string{
			data(`{"choices":[{"finish_reason":null,"index":0,"delta":{"role":"assistant","content":null}}],"created":1,"id":"chatcmpl-x","model":"m","system_fingerprint":"b5","object":"chat.completion.chunk"}`),
			data(`{"choices":[{"finish_reason":null,"index":0,"delta":{"content":"Hi"}}],"created":1,"id":"chatcmpl-x","model":"m","system_fingerprint":"b5","object":"chat.completion.chunk"}`),
			data(`{"choices":[{"finish_reason":"stop","index":0,"delta":{}}],"created":1,"id":"chatcmpl-x","model":"m","system_fingerprint":"b5","object":"chat.completion.chunk","usage":{"completion_tokens":2,"prompt_tokens":9,"total_tokens":11},"timings":{"prompt_n":9,"predicted_n":2}}`),
			doneFrame},
			[]string{role, `{"content":"Hi"}`, stop, usage, "[DONE]"}},
		{"last chunk without choices", []string{roleChunk, content("Hi"), stopChunk,
			data(`{"id":"chatcmpl-up","object":"chat.completion.chunk","usage":{"prompt_tokens":9,"completion_tokens":2,"total_tokens":11}}`), doneFrame},
			[]string{role, `{"content":"Hi"}`, stop, usage, "[DONE]"}},
		{"Ollama: the role on every chunk", []string{chunk(`{"role":"assistant","content":"Hel"}`, "null"),
			chunk(`{"role":"assistant","content":"lo"}`, "null"), chunk(`{"role":"assistant","content":""}`, `"stop"`), usageChunk, doneFrame},
			[]string{`{"role":"assistant","content":"Hel"}`, `{"content":"lo"}`, stop, usage, "[DONE]"}},
		{"no role, no usage", []string{content("Hi"), content(" there"), stopChunk, doneFrame},
			[]string{`{"role":"assistant","content":"Hi"}`, `{"content":" there"}`, stop, "usage 0+2=2", "[DONE]"}},
		{"empty deltas, other events and stray choices are skipped", []string{roleChunk, chunk(`{"content":null}`, "null"),
			"event: ping\ndata: {}\n\n", ": comment\n\n",
			data(`{"choices":[{"index":1,"delta":{"content":"other choice"},"finish_reason":null}]}`), content("Hi"), stopChunk, usageChunk, doneFrame},
			[]string{role, `{"content":"Hi"}`, stop, usage, "[DONE]"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake(t, answer(tt.frames...))
			n := front(t, upstream(t, f.URL, openai.UpstreamOptions{}))
			got := openStream(t, post(t, n.URL+"/v1/chat/completions", chat("up", "hi", "stream_options", map[string]any{"include_usage": true}))).rest()
			equal(t, seen(t, got), tt.want)
		})
	}
}

func TestUpstreamToolCallsAndReasoningMakeANonStreamingAnswer(t *testing.T) {
	f := newFake(t, answer(
		chunk(`{"role":"assistant","reasoning":"The user wants weather."}`, "null"),
		chunk(`{"tool_calls":[{"index":0,"id":"call_1","type":"function","function":{"name":"get_weather","arguments":"{\"city\":"}}]}`, "null"),
		chunk(`{"tool_calls":[{"index":0,"function":{"arguments":"\"Paris\"}"}}]}`, "null"),
		chunk(`{}`, `"tool_calls"`), usageChunk, doneFrame))
	n := front(t, upstream(t, f.URL, openai.UpstreamOptions{}))
	resp := post(t, n.URL+"/v1/chat/completions", chat("up", "weather?", "stream", false))
	if resp.StatusCode != http.StatusOK {
		t.Fatal(resp.Status)
	}
	var c struct {
		Choices []struct {
			Message struct {
				Content          *string         `json:"content"`
				ReasoningContent string          `json:"reasoning_content"`
				ToolCalls        json.RawMessage `json:"tool_calls"`
			} `json:"message"`
			FinishReason string `json:"finish_reason"`
		} `json:"choices"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&c); err != nil {
		t.Fatal(err)
	}
	m := c.Choices[0].Message
	const calls = `[{"function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"},"id":"call_1","type":"function"}]`
	if m.Content != nil || m.ReasoningContent != "The user wants weather." || string(m.ToolCalls) != calls || c.Choices[0].FinishReason != "tool_calls" {
		t.Fatalf("got content %v, reasoning %q, tool calls %s, finish %q", m.Content, m.ReasoningContent, m.ToolCalls, c.Choices[0].FinishReason)
	}
}
