package api_test

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluice-dev/sluice"
	"github.com/sluice-dev/sluice/api"
	"github.com/sluice-dev/sluice/convo"
	"github.com/sluice-dev/sluice/internal/testenv"
	"github.com/sluice-dev/sluice/sse"
	"github.com/sluice-dev/sluice/wire"
)

// echoModel answers with the text of every message it was given, each
// followed by "|", one token a message, and keeps the last request.
type echoModel struct {
	mu   sync.Mutex
	last *sluice.ChatRequest
}

func (m *echoModel) Stream(ctx context.Context, req *sluice.ChatRequest, emit func(sluice.Delta) error) (sluice.Usage, error) {
	m.mu.Lock()
	m.last = req
	m.mu.Unlock()
	if err := emit(sluice.Delta{Role: "assistant"}); err != nil {
		return sluice.Usage{}, err
	}
	for _, msg := range req.Messages {
		if err := emit(sluice.Delta{Content: msg.Text() + "|"}); err != nil {
			return sluice.Usage{}, err
		}
	}
	n := len(req.Messages)
	return sluice.Usage{PromptTokens: n, CompletionTokens: n, TotalTokens: 2 * n}, emit(sluice.Delta{FinishReason: "stop"})
}

func (m *echoModel) request() *sluice.ChatRequest {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.last
}

// waitItem waits until item id of conversation conv satisfies cond (the
// recorder writes after the stream, with no signal to wait for) and
// returns it.
func waitItem(t *testing.T, e *env, conv, id string, what string, cond func(itemJSON) bool) itemJSON {
	t.Helper()
	var it itemJSON
	testenv.Eventually(t, what, func() bool {
		it = ok[itemJSON](t, do(t, e, "GET", "/v1/conversations/"+conv+"/items/"+id, nil))
		return cond(it)
	})
	return it
}

func completed(it itemJSON) bool { return it.Status == "completed" }

// TestChatWithAConversationIsAnsweredFromItAndStored: the model answers
// the stored branch followed by the new message, without the conversation
// fields; the reply streams as any other, names its conversation and
// message, and is stored whole, completed, with its model, stream and
// usage, under the new user message.
func TestChatWithAConversationIsAnsweredFromItAndStored(t *testing.T) {
	forEachStore(t, func(t *testing.T, open openFunc) {
		echo := &echoModel{}
		e := convEnv(t, open, envOptions{Models: map[string]sluice.Model{"echo": echo}}, false)
		c := createConv(t, e, map[string]any{"items": []map[string]any{
			{"role": "system", "content": "S"}, {"role": "user", "content": "U1"}, {"role": "assistant", "content": "A1"}}})

		resp := do(t, e, "POST", "/v1/chat/completions", chatBody("U2", "model", "echo", "conversation", c.ID))
		if resp.StatusCode != 200 || resp.Header.Get(api.HeaderConversationID) != c.ID || resp.Header.Get(api.HeaderMessageID) == "" {
			t.Fatalf("status %d, headers %v", resp.StatusCode, resp.Header)
		}
		stream, msg := resp.Header.Get(api.HeaderStreamID), resp.Header.Get(api.HeaderMessageID)
		txt, last := content(t, events(t, resp, -1))
		if txt != "S|U1|A1|U2|" || last != "[DONE]" {
			t.Fatalf("streamed %q, last %q", txt, last)
		}
		if _, leaked := echo.request().Extra["conversation"]; leaked {
			t.Fatal("the model was sent the conversation field")
		}

		answer := waitItem(t, e, c.ID, msg, "the answer stored as completed", completed)
		if text(answer) != "S|U1|A1|U2|" || answer.Model != "echo" || answer.StreamID != stream || answer.Role != "assistant" ||
			answer.Usage == nil || answer.Usage.PromptTokens != 4 || answer.Error != nil {
			t.Fatalf("stored answer %+v", answer)
		}
		items := itemsAsc(t, e, c.ID)
		if len(items) != 5 || text(items[3]) != "U2" || *items[3].ParentID != items[2].ID || *items[4].ParentID != items[3].ID || items[4].ID != msg {
			t.Fatalf("items %+v", items)
		}
		if head := ok[convJSON](t, do(t, e, "GET", "/v1/conversations/"+c.ID, nil)); *head.CurrentID != msg {
			t.Fatalf("current %v, want the answer %s", *head.CurrentID, msg)
		}

		// Answer U2 again: a sibling of the first answer, from the same input.
		resp = do(t, e, "POST", "/v1/chat/completions", chatBody("", "model", "echo", "conversation", map[string]string{"id": c.ID},
			"parent_id", items[3].ID, "messages", []any{}, "stream", false))
		done := ok[wire.Completion](t, resp)
		if got := *done.Choices[0].Message.Content; got != "S|U1|A1|U2|" {
			t.Fatalf("regenerated from %q", got)
		}
		again := waitItem(t, e, c.ID, resp.Header.Get(api.HeaderMessageID), "the second answer stored", completed)
		if *again.ParentID != items[3].ID || again.ID == msg {
			t.Fatalf("second answer %+v, want a sibling of %s", again, msg)
		}
		if n := len(itemsAsc(t, e, c.ID)); n != 6 {
			t.Fatalf("%d items after regenerating, want 6 (no message repeated)", n)
		}

		// A chat under the first answer follows that branch, not the newest.
		resp = do(t, e, "POST", "/v1/chat/completions", chatBody("U3", "model", "echo", "conversation", c.ID, "parent_id", msg))
		if txt, _ := content(t, events(t, resp, -1)); txt != "S|U1|A1|U2|S|U1|A1|U2||U3|" {
			t.Fatalf("branch input %q", txt)
		}
	})
}

// TestAnAnswerIsStoredWhileItStreams: a reload mid-answer finds the text
// so far in progress, with the stream to follow; a later one the whole.
func TestAnAnswerIsStoredWhileItStreams(t *testing.T) {
	forEachStore(t, func(t *testing.T, open openFunc) {
		m := &stepModel{Tokens: []string{"a", "b", "c"}, Step: make(chan struct{})}
		e := convEnv(t, open, envOptions{Models: map[string]sluice.Model{"step": m}, Conv: convo.Options{FlushEvery: 20 * time.Millisecond}}, false)
		c := createConv(t, e, nil)
		resp := do(t, e, "POST", "/v1/chat/completions", chatBody("go", "model", "step", "conversation", c.ID))
		msg := resp.Header.Get(api.HeaderMessageID)
		rd := sse.NewReader(resp.Body)
		m.Step <- struct{}{}
		m.Step <- struct{}{}
		mid := waitItem(t, e, c.ID, msg, "the first two tokens stored", func(it itemJSON) bool { return text(it) == "ab" })
		if mid.Status != "in_progress" || mid.StreamID != resp.Header.Get(api.HeaderStreamID) {
			t.Fatalf("mid-answer %+v", mid)
		}
		m.Step <- struct{}{}
		for {
			ev, err := rd.Next()
			if err != nil || ev.Data == "[DONE]" {
				break
			}
		}
		if it := waitItem(t, e, c.ID, msg, "the answer completed", completed); text(it) != "abc" {
			t.Fatalf("stored %q", text(it))
		}
	})
}

// TestAnAnswerOutlivesItsStream: once the stream has expired, the stored
// answer is all there.
func TestAnAnswerOutlivesItsStream(t *testing.T) {
	forEachStore(t, func(t *testing.T, open openFunc) {
		e := convEnv(t, open, envOptions{Retention: 50 * time.Millisecond}, false)
		c := createConv(t, e, nil)
		resp := do(t, e, "POST", "/v1/chat/completions", chatBody("Tell me a story", "conversation", c.ID))
		stream, msg := resp.Header.Get(api.HeaderStreamID), resp.Header.Get(api.HeaderMessageID)
		txt, _ := content(t, events(t, resp, -1))
		testenv.Eventually(t, "the stream expired", func() bool {
			r := do(t, e, "GET", "/v1/streams/"+stream, nil)
			r.Body.Close()
			return r.StatusCode == http.StatusNotFound
		})
		if it := waitItem(t, e, c.ID, msg, "the answer stored", completed); text(it) != txt || txt == "" {
			t.Fatalf("stored %q, streamed %q", text(it), txt)
		}
	})
}

// TestACancelledAnswerKeepsItsText and a failed one its error: the end of
// the stream decides the stored status.
func TestAnAnswersEndDecidesItsStatus(t *testing.T) {
	forEachStore(t, func(t *testing.T, open openFunc) {
		slow := &stepModel{Tokens: []string{"par", "tial", "never"}, Step: make(chan struct{})}
		failing := &stepModel{Tokens: []string{"half"}, Fail: &sluice.Error{Code: sluice.EUPSTREAM, Kind: "upstream_error", Message: "The upstream broke."}}
		e := convEnv(t, open, envOptions{Models: map[string]sluice.Model{"slow": slow, "failing": failing}}, false)
		c := createConv(t, e, nil)

		resp := do(t, e, "POST", "/v1/chat/completions", chatBody("go", "model", "slow", "conversation", c.ID))
		msg := resp.Header.Get(api.HeaderMessageID)
		rd := sse.NewReader(resp.Body)
		slow.Step <- struct{}{}
		slow.Step <- struct{}{}
		for n := 0; n < 3; n++ { // the role and two tokens are in the log
			if _, err := rd.Next(); err != nil {
				t.Fatal(err)
			}
		}
		ok[map[string]any](t, do(t, e, "POST", "/v1/streams/"+resp.Header.Get(api.HeaderStreamID)+"/cancel", nil))
		it := waitItem(t, e, c.ID, msg, "the answer cancelled", func(it itemJSON) bool { return it.Status == "cancelled" })
		if text(it) != "partial" {
			t.Fatalf("cancelled answer kept %q", text(it))
		}

		resp = do(t, e, "POST", "/v1/chat/completions", chatBody("again", "model", "failing", "conversation", c.ID))
		msg = resp.Header.Get(api.HeaderMessageID)
		if _, last := content(t, events(t, resp, -1)); !strings.Contains(last, "upstream_error") {
			t.Fatalf("stream ended with %q", last)
		}
		it = waitItem(t, e, c.ID, msg, "the answer failed", func(it itemJSON) bool { return it.Status == "failed" })
		if text(it) != "half" || it.Error == nil || it.Error.Code != sluice.EUPSTREAM || it.Error.Kind != "upstream_error" || it.Error.Message != "The upstream broke." {
			t.Fatalf("failed answer %+v error %+v", it, it.Error)
		}
	})
}

// TestAnAnswerWithANULIsStored: a NUL from a model (JSON carries it, the
// stores refuse it) costs the answer that character only.
func TestAnAnswerWithANULIsStored(t *testing.T) {
	forEachStore(t, func(t *testing.T, open openFunc) {
		m := &stepModel{Tokens: []string{"a\x00", "b"}}
		e := convEnv(t, open, envOptions{Models: map[string]sluice.Model{"nul": m}}, false)
		c := createConv(t, e, nil)
		resp := do(t, e, "POST", "/v1/chat/completions", chatBody("go", "model", "nul", "conversation", c.ID))
		msg := resp.Header.Get(api.HeaderMessageID)
		if txt, _ := content(t, events(t, resp, -1)); txt != "a\x00b" {
			t.Fatalf("streamed %q", txt)
		}
		if it := waitItem(t, e, c.ID, msg, "the answer stored", completed); text(it) != "a\uFFFDb" {
			t.Fatalf("stored %q", text(it))
		}
	})
}
