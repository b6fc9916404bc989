package wire

import (
	"encoding/json"
	"strconv"

	"github.com/sluice-dev/sluice"
)

// Chunks encodes the chat.completion.chunk events of one answer. Its zero
// value is not usable; make one with NewChunks. It is not safe for
// concurrent use: one generation owns it.
type Chunks struct {
	prefix       []byte // {"id":...,"model":"...","choices":
	includeUsage bool
}

// NewChunks returns the encoder for the answer with completion ID id.
func NewChunks(id, model string, created int64, includeUsage bool) *Chunks {
	p := append([]byte(`{"id":`), AppendString(nil, id)...)
	p = append(p, `,"object":"chat.completion.chunk","created":`...)
	p = strconv.AppendInt(p, created, 10)
	p = append(p, `,"model":`...)
	p = AppendString(p, model)
	p = append(p, `,"system_fingerprint":null,"choices":`...)
	return &Chunks{prefix: p, includeUsage: includeUsage}
}

// Delta returns the chunk that carries d, freshly allocated.
func (c *Chunks) Delta(d sluice.Delta) []byte {
	return c.AppendDelta(make([]byte, 0, len(c.prefix)+len(d.Content)+96), d)
}

// AppendDelta appends the chunk that carries d to b: a generation encodes
// every token into one buffer, which the log copies.
func (c *Chunks) AppendDelta(b []byte, d sluice.Delta) []byte {
	b = append(b, c.prefix...)
	b = append(b, `[{"index":0,"delta":{`...)
	sep := false
	field := func(b []byte, name string) []byte {
		if sep {
			b = append(b, ',')
		}
		sep = true
		b = append(b, '"')
		b = append(b, name...)
		return append(b, '"', ':')
	}
	if d.Role != "" {
		b = AppendString(field(b, "role"), d.Role)
	}
	if d.Content != "" || d.Role != "" {
		b = AppendString(field(b, "content"), d.Content)
	}
	if d.ReasoningContent != "" {
		b = AppendString(field(b, "reasoning_content"), d.ReasoningContent)
	}
	if len(d.ToolCalls) > 0 {
		b = append(field(b, "tool_calls"), d.ToolCalls...)
	}
	b = append(b, `},"logprobs":null,"finish_reason":`...)
	if d.FinishReason != "" {
		b = AppendString(b, d.FinishReason)
	} else {
		b = append(b, "null"...)
	}
	b = append(b, "}]"...)
	if c.includeUsage {
		b = append(b, `,"usage":null`...)
	}
	return append(b, '}')
}

// Usage returns the last chunk of a stream that asked for usage: no
// choices, and the token counts.
func (c *Chunks) Usage(u sluice.Usage) []byte {
	b := make([]byte, 0, len(c.prefix)+96)
	b = append(b, c.prefix...)
	b = append(b, `[],"usage":`...)
	u.TotalTokens = u.PromptTokens + u.CompletionTokens
	ub, _ := json.Marshal(u) // a struct of ints cannot fail
	b = append(b, ub...)
	return append(b, '}')
}

// Chunk is a decoded chat.completion.chunk, as clients and upstreams send
// it.
type Chunk struct {
	ID      string `json:"id"`
	Object  string `json:"object"`
	Created int64  `json:"created"`
	Model   string `json:"model"`
	Choices []struct {
		Index int `json:"index"`
		Delta struct {
			Role             string          `json:"role,omitempty"`
			Content          *string         `json:"content,omitempty"`
			ReasoningContent string          `json:"reasoning_content,omitempty"`
			Reasoning        string          `json:"reasoning,omitempty"`
			ToolCalls        json.RawMessage `json:"tool_calls,omitempty"`
		} `json:"delta"`
		FinishReason *string `json:"finish_reason"`
	} `json:"choices"`
	Usage *sluice.Usage   `json:"usage,omitempty"`
	Error json.RawMessage `json:"error,omitempty"`
}
