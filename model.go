package sluice

import (
	"context"
	"encoding/json"
)

// Message is one chat message of a request. Content stays in its wire form
// (a string, an array of content parts, or null) so that an upstream receives
// it unchanged; Text gives the plain text of it.
type Message struct {
	Role    string          `json:"role"`
	Content json.RawMessage `json:"content,omitempty"`
	Name    string          `json:"name,omitempty"`
	// Raw is the whole message as the client sent it, for upstreams.
	Raw json.RawMessage `json:"-"`
}

// Text returns the message's text: the string content, or the text parts of
// an array content joined together.
func (m Message) Text() string {
	if len(m.Content) == 0 || string(m.Content) == "null" {
		return ""
	}
	var s string
	if json.Unmarshal(m.Content, &s) == nil {
		return s
	}
	var parts []struct {
		Type string `json:"type"`
		Text string `json:"text"`
	}
	if json.Unmarshal(m.Content, &parts) != nil {
		return ""
	}
	var out []byte
	for _, p := range parts {
		if p.Type == "text" {
			out = append(out, p.Text...)
		}
	}
	return string(out)
}

// ChatRequest is a chat completion request, decoded and validated.
type ChatRequest struct {
	Model        string
	Messages     []Message
	Stream       bool
	IncludeUsage bool   // stream_options.include_usage
	MaxTokens    int    // 0 means no limit but the model's own
	Seed         *int64 // nil when the client gave none
	// Extra holds every field of the request but model, messages, stream and
	// stream_options (so temperature, tools, max_tokens, seed, ...),
	// verbatim, so that an upstream model receives them unchanged.
	Extra map[string]json.RawMessage
}

// Delta is one piece of an answer, as a model produces it. Zero fields are
// absent.
type Delta struct {
	Role             string          // set on the first delta only
	Content          string          // text to append to the answer
	ReasoningContent string          // text of the model's reasoning, if it shows it
	ToolCalls        json.RawMessage // tool-call deltas, in OpenAI's wire form
	FinishReason     string          // set on the last delta: "stop", "length", "tool_calls", ...
}

// Usage counts the tokens of one answer.
type Usage struct {
	PromptTokens     int `json:"prompt_tokens"`
	CompletionTokens int `json:"completion_tokens"`
	TotalTokens      int `json:"total_tokens"`
}

// Model turns a chat request into an answer, piece by piece.
type Model interface {
	// Stream generates the answer to req and calls emit with each piece in
	// order, from one goroutine. It returns when the answer is complete (the
	// last delta carries a FinishReason), with its usage. It stops early and
	// returns ctx's error when ctx is done, and returns emit's error when
	// emit fails; the usage counted so far comes back with the error. Errors
	// that users should see are *Error values.
	Stream(ctx context.Context, req *ChatRequest, emit func(Delta) error) (Usage, error)
}

// ModelInfo describes a model for GET /v1/models.
type ModelInfo struct {
	ID          string
	OwnedBy     string
	Created     int64 // Unix seconds
	Description string
}
