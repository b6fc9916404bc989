// Package testenv holds what the tests of several packages share: a
// Sluice server wired like `sluice serve`, a scripted model and helpers
// that send requests, build chat requests and read chat streams back. It is
// for tests only.
package testenv

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluice-dev/sluice"
	"github.com/sluice-dev/sluice/sse"
)

// ChatBody is a streaming chat completion request to the demo model with
// one user message; extra holds more fields as name, value pairs, which
// replace the defaults.
func ChatBody(content string, extra ...any) map[string]any {
	b := map[string]any{
		"model":    "demo",
		"stream":   true,
		"messages": []map[string]any{{"role": "user", "content": content}},
	}
	for i := 0; i+1 < len(extra); i += 2 {
		b[extra[i].(string)] = extra[i+1]
	}
	return b
}

// ChatText joins the delta contents of the chat.completion.chunk data of a
// stream's events, and reports the data of the last one ([DONE] or an
// error object, for a stream that ended).
func ChatText(t *testing.T, datas []string) (text, last string) {
	t.Helper()
	var sb strings.Builder
	for _, d := range datas {
		last = d
		if d == "[DONE]" || strings.HasPrefix(d, `{"error"`) {
			continue
		}
		var ch struct {
			Choices []struct {
				Delta struct {
					Content string `json:"content"`
				} `json:"delta"`
			} `json:"choices"`
		}
		if err := json.Unmarshal([]byte(d), &ch); err != nil {
			t.Fatalf("data %q is not a chunk: %v", d, err)
		}
		for _, c := range ch.Choices {
			sb.WriteString(c.Delta.Content)
		}
	}
	return sb.String(), last
}

// EventsText is ChatText over the data of SSE events.
func EventsText(t *testing.T, evs []sse.Event) (text, last string) {
	t.Helper()
	datas := make([]string, len(evs))
	for i, ev := range evs {
		datas[i] = ev.Data
	}
	return ChatText(t, datas)
}

// Events reads the SSE events of resp until the stream ends or max events
// have come (max < 0: no limit). It closes resp when the stream has ended.
func Events(t *testing.T, resp *http.Response, max int) []sse.Event {
	t.Helper()
	var out []sse.Event
	rd := sse.NewReader(resp.Body)
	for max < 0 || len(out) < max {
		ev, err := rd.Next()
		if errors.Is(err, io.EOF) {
			resp.Body.Close()
			return out
		}
		if err != nil {
			t.Fatalf("reading the stream: %v", err)
		}
		out = append(out, ev)
	}
	return out
}

// Eventually polls cond until it holds, or fails the test after 10 s: for
// states that send no signal to wait for.
func Eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// StepModel is a sluice.Model that emits the role, then its Tokens one by
// one, each after a receive from Step (when Step is set), then fails with
// Fail or finishes with "stop". It records what stopped it.
type StepModel struct {
	Tokens []string
	Step   chan struct{}
	Fail   error

	mu      sync.Mutex
	stopped error
}

// Stream implements sluice.Model.
func (m *StepModel) Stream(ctx context.Context, req *sluice.ChatRequest, emit func(sluice.Delta) error) (sluice.Usage, error) {
	if err := emit(sluice.Delta{Role: "assistant"}); err != nil {
		return sluice.Usage{}, err
	}
	for i, tok := range m.Tokens {
		if m.Step != nil {
			select {
			case <-m.Step:
			case <-ctx.Done():
				m.mu.Lock()
				m.stopped = ctx.Err()
				m.mu.Unlock()
				return sluice.Usage{CompletionTokens: i}, ctx.Err()
			}
		}
		if err := emit(sluice.Delta{Content: tok}); err != nil {
			return sluice.Usage{}, err
		}
	}
	if m.Fail != nil {
		return sluice.Usage{CompletionTokens: len(m.Tokens)}, m.Fail
	}
	return sluice.Usage{PromptTokens: 1, CompletionTokens: len(m.Tokens)}, emit(sluice.Delta{FinishReason: "stop"})
}

// StoppedBy returns the context error that stopped the model, or nil.
func (m *StepModel) StoppedBy() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.stopped
}
