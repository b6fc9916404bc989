package wire

import (
	"encoding/json"
	"strings"

	"github.com/sluice-dev/sluice"
)

// Completion is a whole chat.completion object: the answer to a request
// with stream:false.
type Completion struct {
	ID                string        `json:"id"`
	Object            string        `json:"object"`
	Created           int64         `json:"created"`
	Model             string        `json:"model"`
	SystemFingerprint *string       `json:"system_fingerprint"`
	Choices           []Choice      `json:"choices"`
	Usage             *sluice.Usage `json:"usage,omitempty"`
}

// Choice is one answer of a Completion.
type Choice struct {
	Index        int     `json:"index"`
	Message      Reply   `json:"message"`
	Logprobs     *string `json:"logprobs"`
	FinishReason string  `json:"finish_reason"`
}

// Reply is the assistant message of a Choice.
type Reply struct {
	Role             string          `json:"role"`
	Content          *string         `json:"content"`
	ReasoningContent string          `json:"reasoning_content,omitempty"`
	ToolCalls        json.RawMessage `json:"tool_calls,omitempty"`
	Refusal          *string         `json:"refusal"`
}

// Collector rebuilds a Completion from the chunks of a stream. Tool-call
// deltas are merged by index, as OpenAI's SDKs do.
type Collector struct {
	c         Completion
	content   strings.Builder
	reasoning strings.Builder
	tools     []toolCall
	finish    string
}

type toolCall struct {
	Index    int    `json:"index"`
	ID       string `json:"id,omitempty"`
	Type     string `json:"type,omitempty"`
	Function struct {
		Name      string `json:"name"`
		Arguments string `json:"arguments"`
	} `json:"function"`
}

// Add takes one chunk's JSON. A chunk that does not decode is an error.
func (co *Collector) Add(data []byte) error {
	var ch Chunk
	if err := json.Unmarshal(data, &ch); err != nil {
		return err
	}
	co.c.ID, co.c.Created, co.c.Model = ch.ID, ch.Created, ch.Model
	if ch.Usage != nil {
		co.c.Usage = ch.Usage
	}
	for _, choice := range ch.Choices {
		d := choice.Delta
		if d.Content != nil {
			co.content.WriteString(*d.Content)
		}
		co.reasoning.WriteString(d.ReasoningContent)
		co.reasoning.WriteString(d.Reasoning)
		if len(d.ToolCalls) > 0 {
			var parts []toolCall
			if err := json.Unmarshal(d.ToolCalls, &parts); err != nil {
				return err
			}
			for _, p := range parts {
				co.mergeTool(p)
			}
		}
		if choice.FinishReason != nil {
			co.finish = *choice.FinishReason
		}
	}
	return nil
}

func (co *Collector) mergeTool(p toolCall) {
	for i := range co.tools {
		t := &co.tools[i]
		if t.Index == p.Index {
			t.Function.Arguments += p.Function.Arguments
			t.Function.Name += p.Function.Name
			if p.ID != "" {
				t.ID = p.ID
			}
			if p.Type != "" {
				t.Type = p.Type
			}
			return
		}
	}
	co.tools = append(co.tools, p)
}

// Completion returns the completion collected so far.
func (co *Collector) Completion() Completion {
	c := co.c
	c.Object = "chat.completion"
	content := co.content.String()
	r := Reply{Role: "assistant", Content: &content, ReasoningContent: co.reasoning.String()}
	if len(co.tools) > 0 {
		r.ToolCalls, _ = json.Marshal(stripIndex(co.tools))
		if content == "" {
			r.Content = nil
		}
	}
	c.Choices = []Choice{{Index: 0, Message: r, FinishReason: co.finish}}
	return c
}

// stripIndex drops the index, which belongs to deltas, not to a message.
func stripIndex(ts []toolCall) []map[string]any {
	out := make([]map[string]any, len(ts))
	for i, t := range ts {
		out[i] = map[string]any{"id": t.ID, "type": t.Type, "function": t.Function}
	}
	return out
}
