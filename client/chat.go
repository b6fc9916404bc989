package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"net/http"
	"net/url"
	"strings"

	"github.com/sluice-dev/sluice/sse"
)

// Message is one message of a conversation.
type Message struct {
	Role    string `json:"role"` // "system", "user" or "assistant"
	Content string `json:"content"`
}

// ChatRequest is a chat completion request, as OpenAI's API takes it. It is
// always streamed.
type ChatRequest struct {
	Model       string
	Messages    []Message
	Temperature *float64
	Seed        *int64
	// Extra holds more fields of the request, sent as they are (max_tokens,
	// tools, response_format, …). It cannot replace the fields above.
	Extra map[string]any
	// CancelOnDisconnect asks the server to stop the generation when the
	// connection that started it drops, rather than keep it for a resume.
	CancelOnDisconnect bool
}

// MarshalJSON renders the request's body, with "stream": true.
func (r ChatRequest) MarshalJSON() ([]byte, error) {
	m := make(map[string]any, len(r.Extra)+5)
	for k, v := range r.Extra {
		m[k] = v
	}
	m["model"] = r.Model
	m["messages"] = r.Messages
	m["stream"] = true
	if r.Temperature != nil {
		m["temperature"] = *r.Temperature
	}
	if r.Seed != nil {
		m["seed"] = *r.Seed
	}
	return json.Marshal(m)
}

// Usage is what a generation counted, sent with its last chunk when the
// request asks for it (Extra: "stream_options": {"include_usage": true}).
type Usage struct {
	PromptTokens     int `json:"prompt_tokens"`
	CompletionTokens int `json:"completion_tokens"`
	TotalTokens      int `json:"total_tokens"`
}

// Delta is one chat.completion.chunk of an answer.
type Delta struct {
	// EventID is the ID of the event that carried the chunk: attach with it
	// to read what follows.
	EventID          string
	Role             string
	Content          string
	ReasoningContent string
	FinishReason     string // set on the chunk that ends the answer
	Usage            *Usage
	// Chunk is the chunk as Sluice sent it, for the fields Delta does not
	// name (tool calls, logprobs).
	Chunk json.RawMessage
}

// Stream is one chat answer being read. Make one with Client.Chat or
// Client.Attach and read it with Deltas. Its methods are safe for
// concurrent use.
type Stream struct {
	reading
	c  *Client
	id string
}

// Chat starts a streamed chat completion and returns once Sluice has
// answered with the stream's head, which names it (Stream.ID). ctx bounds
// the whole stream, reconnects included, not only this call. The request
// is sent once: if it cannot be sent, or no head comes back, Chat returns
// the error rather than risk starting a second answer; a 503 (the server
// is full or draining, so nothing started) is tried again as the retry
// policy says.
func (c *Client) Chat(ctx context.Context, req ChatRequest) (*Stream, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	s := c.newStream(ctx, "")
	s.f.first = func(ctx context.Context) (*http.Request, error) {
		r, err := c.newRequest(ctx, http.MethodPost, "/v1/chat/completions", body)
		if err == nil && req.CancelOnDisconnect {
			r.Header.Set("Sluice-Cancel-On-Disconnect", "true")
		}
		return r, err
	}
	s.f.onOpen = func(resp *http.Response) { s.id = resp.Header.Get("Sluice-Stream-ID") }
	if err := s.f.open(); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// Attach follows the chat stream id from just after the event lastEventID
// ("" for its start): after a restart, or in another process. It returns
// once the server has answered; an unknown or expired stream is an error
// that wraps ErrExpired. A reader already past the stream's end gets a
// Stream with nothing more to read. ctx bounds the whole stream.
func (c *Client) Attach(ctx context.Context, id, lastEventID string) (*Stream, error) {
	s := c.newStream(ctx, id)
	s.lastID, s.f.lastID = lastEventID, lastEventID
	s.f.first = func(ctx context.Context) (*http.Request, error) { return s.resumeRequest(ctx, lastEventID) }
	if err := s.f.open(); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

func (c *Client) newStream(ctx context.Context, id string) *Stream {
	ctx, cancel := context.WithCancel(ctx)
	s := &Stream{reading: reading{cancel: cancel}, c: c, id: id}
	s.f = &follower{
		c:       c,
		ctx:     ctx,
		policy:  c.Retry.withDefaults(DefaultChatMaxAttempts),
		resume:  s.resumeRequest,
		isEnd:   isChatEnd,
		expires: true,
	}
	s.f.maxDelay = s.f.policy.MaxDelay
	return s
}

func (s *Stream) resumeRequest(ctx context.Context, lastID string) (*http.Request, error) {
	if s.id == "" {
		return nil, errors.New("sluice: the server named no stream (Sluice-Stream-ID), so it cannot be resumed")
	}
	r, err := s.c.newRequest(ctx, http.MethodGet, "/v1/streams/"+url.PathEscape(s.id), nil)
	if err == nil && lastID != "" {
		r.Header.Set("Last-Event-ID", lastID)
	}
	return r, err
}

func isChatEnd(ev sse.Event) bool {
	return ev.Name == "" && (ev.Data == "[DONE]" || strings.HasPrefix(ev.Data, `{"error"`))
}

// ID returns the stream's ID, for Attach and Client.Cancel.
func (s *Stream) ID() string { return s.id }

// LastEventID returns the ID of the last event read: keep it with the text
// read so far, to attach later from there.
func (s *Stream) LastEventID() string { return s.last() }

// Deltas returns the answer's chunks in order, reconnecting as needed. The
// sequence ends after the answer's last chunk (data: [DONE]) with no
// error; otherwise its last pair holds the error that ended it: an *Error
// for an error event (errors.Is ErrCancelled when the generation was
// cancelled) or a refusal, one that wraps ErrExpired or ErrDisconnected,
// or ctx's error. Leaving the loop early closes the stream (see Close).
// A Stream can be ranged over once.
func (s *Stream) Deltas() iter.Seq2[Delta, error] {
	return func(yield func(Delta, error) bool) {
		err := s.each(func(ev sse.Event) bool {
			if ev.Name != "" { // a name a later Sluice may add
				return true
			}
			if ev.Data == "[DONE]" {
				return false
			}
			d, err := parseDelta(ev)
			if err != nil {
				yield(d, err)
				return false
			}
			return yield(d, nil)
		})
		if err != nil {
			yield(Delta{}, err)
		}
	}
}

func parseDelta(ev sse.Event) (Delta, error) {
	d := Delta{EventID: ev.ID, Chunk: json.RawMessage(ev.Data)}
	var ch struct {
		errorObject
		Choices []struct {
			Delta struct {
				Role             string `json:"role"`
				Content          string `json:"content"`
				ReasoningContent string `json:"reasoning_content"`
			} `json:"delta"`
			FinishReason *string `json:"finish_reason"`
		} `json:"choices"`
		Usage *Usage `json:"usage"`
	}
	if err := json.Unmarshal([]byte(ev.Data), &ch); err != nil {
		return d, fmt.Errorf("sluice: event %s is not a chat.completion.chunk: %w", ev.ID, err)
	}
	if e := ch.toError(0); e != nil {
		return d, e
	}
	if len(ch.Choices) > 0 {
		c := ch.Choices[0]
		d.Role, d.Content, d.ReasoningContent = c.Delta.Role, c.Delta.Content, c.Delta.ReasoningContent
		if c.FinishReason != nil {
			d.FinishReason = *c.FinishReason
		}
	}
	d.Usage = ch.Usage
	return d, nil
}

// Cancel stops the generation on the server (see Client.Cancel). A range
// over Deltas goes on to the server's closing event, so that what it read
// is exactly what was generated, and ends with an error that
// errors.Is ErrCancelled (or with none, if the answer had ended already).
func (s *Stream) Cancel(ctx context.Context) error {
	_, err := s.c.Cancel(ctx, s.id)
	return err
}

// Close stops reading, without stopping the generation on the server: it
// can be attached to again. A range over Deltas that is under way ends
// without an error. Close is safe to call more than once.
func (s *Stream) Close() error {
	s.close()
	return nil
}
