package api_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/sluice-dev/sluice"
	"github.com/sluice-dev/sluice/api"
	"github.com/sluice-dev/sluice/internal/testenv"
)

func TestChatStreamIsOpenAICompatible(t *testing.T) {
	e := newEnv(t, envOptions{})
	resp := e.Post(t, "/v1/chat/completions", chatBody("Hello there", "stream_options", map[string]any{"include_usage": true}))
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %s", resp.Status)
	}
	for h, want := range map[string]string{
		"Content-Type": "text/event-stream", "Cache-Control": "no-cache", "X-Accel-Buffering": "no",
	} {
		if got := resp.Header.Get(h); got != want {
			t.Errorf("%s = %q, want %q", h, got, want)
		}
	}
	streamID := resp.Header.Get("Sluice-Stream-ID")
	if len(streamID) != 32 {
		t.Errorf("Sluice-Stream-ID = %q, want 32 hex digits", streamID)
	}
	evs := events(t, resp, -1)
	if len(evs) < 5 {
		t.Fatalf("only %d events", len(evs))
	}
	if evs[len(evs)-1].Data != "[DONE]" {
		t.Fatalf("last event %q, want [DONE]", evs[len(evs)-1].Data)
	}
	type chunk struct {
		ID                string `json:"id"`
		Object            string `json:"object"`
		Created           int64  `json:"created"`
		Model             string `json:"model"`
		SystemFingerprint any    `json:"system_fingerprint"`
		Choices           []struct {
			Index        int               `json:"index"`
			Delta        map[string]string `json:"delta"`
			FinishReason *string           `json:"finish_reason"`
		} `json:"choices"`
		Usage *struct {
			PromptTokens     int `json:"prompt_tokens"`
			CompletionTokens int `json:"completion_tokens"`
			TotalTokens      int `json:"total_tokens"`
		} `json:"usage"`
	}
	var chunks []chunk
	seen := map[string]bool{}
	for i, ev := range evs[:len(evs)-1] {
		if ev.ID == "" || seen[ev.ID] {
			t.Fatalf("event %d has id %q: every event needs a new id", i, ev.ID)
		}
		seen[ev.ID] = true
		var c chunk
		dec := json.NewDecoder(strings.NewReader(ev.Data))
		if err := dec.Decode(&c); err != nil {
			t.Fatalf("event %d: %v", i, err)
		}
		chunks = append(chunks, c)
		if c.ID != "chatcmpl-"+streamID || c.Object != "chat.completion.chunk" || c.Model != "demo" || c.Created == 0 {
			t.Fatalf("event %d has id=%q object=%q model=%q created=%d", i, c.ID, c.Object, c.Model, c.Created)
		}
	}
	if evs[len(evs)-1].ID == "" {
		t.Error("[DONE] has no id")
	}
	first := chunks[0].Choices[0]
	if first.Delta["role"] != "assistant" || first.FinishReason != nil {
		t.Errorf("first chunk: delta %v finish %v, want the assistant role", first.Delta, first.FinishReason)
	}
	usage := chunks[len(chunks)-1]
	if len(usage.Choices) != 0 || usage.Usage == nil || usage.Usage.CompletionTokens == 0 ||
		usage.Usage.TotalTokens != usage.Usage.PromptTokens+usage.Usage.CompletionTokens {
		t.Errorf("usage chunk: choices %v usage %+v", usage.Choices, usage.Usage)
	}
	last := chunks[len(chunks)-2].Choices[0]
	if last.FinishReason == nil || *last.FinishReason != "stop" || len(last.Delta) != 0 {
		t.Errorf("last choice chunk: delta %v finish %v, want an empty delta and stop", last.Delta, last.FinishReason)
	}
	for i, c := range chunks[1 : len(chunks)-2] {
		if c.Usage != nil {
			t.Fatalf("chunk %d carries usage before the end", i+1)
		}
		if len(c.Choices) != 1 || c.Choices[0].FinishReason != nil {
			t.Fatalf("chunk %d: %+v", i+1, c.Choices)
		}
	}
	text, _ := content(t, evs)
	for _, want := range []string{"demo", "```"} {
		if !strings.Contains(text, want) {
			t.Errorf("the answer lacks %q:\n%s", want, text)
		}
	}
}

func TestChatWithoutStreamAnswersOneCompletion(t *testing.T) {
	e := newEnv(t, envOptions{})
	streamed, _ := content(t, events(t, e.Post(t, "/v1/chat/completions", chatBody("same prompt")), -1))

	resp := e.Post(t, "/v1/chat/completions", chatBody("same prompt", "stream", false))
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("status %s, content type %q", resp.Status, resp.Header.Get("Content-Type"))
	}
	c := decode[struct {
		ID      string `json:"id"`
		Object  string `json:"object"`
		Model   string `json:"model"`
		Choices []struct {
			Index   int `json:"index"`
			Message struct {
				Role    string `json:"role"`
				Content string `json:"content"`
			} `json:"message"`
			FinishReason string `json:"finish_reason"`
		} `json:"choices"`
	}](t, resp)
	if c.Object != "chat.completion" || c.Model != "demo" || !strings.HasPrefix(c.ID, "chatcmpl-") || len(c.Choices) != 1 {
		t.Fatalf("completion %+v", c)
	}
	ch := c.Choices[0]
	if ch.Message.Role != "assistant" || ch.FinishReason != "stop" {
		t.Errorf("choice %+v", ch)
	}
	if ch.Message.Content != streamed {
		t.Errorf("non-streamed answer differs from the streamed one:\n%q\n%q", ch.Message.Content, streamed)
	}
}

func TestModelsListsTheDemo(t *testing.T) {
	e := newEnv(t, envOptions{})
	l := decode[struct {
		Object string `json:"object"`
		Data   []struct {
			ID, Object, OwnedBy, Description string
		} `json:"data"`
	}](t, e.Get(t, "/v1/models"))
	if l.Object != "list" || len(l.Data) != 1 || l.Data[0].ID != "demo" || l.Data[0].Object != "model" {
		t.Fatalf("models %+v", l)
	}
	if !strings.Contains(strings.ToLower(l.Data[0].Description), "demo") {
		t.Errorf("the description %q does not say it is a demo", l.Data[0].Description)
	}
	if m := decode[struct{ ID, Object string }](t, e.Get(t, "/v1/models/demo")); m.ID != "demo" || m.Object != "model" {
		t.Errorf("GET /v1/models/demo: %+v", m)
	}
	if resp := e.Get(t, "/v1/models/nope"); resp.StatusCode != http.StatusNotFound {
		t.Errorf("unknown model: %s", resp.Status)
	}
}

func TestBadRequestsGetClearErrors(t *testing.T) {
	e := newEnv(t, envOptions{API: api.Config{MaxBodyBytes: 1024}})
	tests := []struct {
		name      string
		body      any
		status    int
		param     string
		inMessage string
	}{
		{"malformed JSON", `{"model": "demo", "messages": [`, 400, "", "parse the JSON"},
		{"not an object", `[1,2]`, 400, "", "expected an object"},
		{"empty body", ``, 400, "", "empty"},
		{"no model", map[string]any{"messages": []any{map[string]any{"role": "user", "content": "hi"}}}, 400, "model", "model"},
		{"model of wrong type", map[string]any{"model": 7, "messages": []any{}}, 400, "model", "expected a string"},
		{"unknown model", chatBody("hi", "model", "gpt-17"), 404, "model", "gpt-17"},
		{"empty messages", chatBody("hi", "messages", []any{}), 400, "messages", "non-empty"},
		{"messages not an array", chatBody("hi", "messages", "hello"), 400, "messages", "expected an array"},
		{"message without role", chatBody("hi", "messages", []any{map[string]any{"content": "x"}}), 400, "messages[0].role", "role"},
		{"unknown role", chatBody("hi", "messages", []any{map[string]any{"role": "wizard", "content": "x"}}), 400, "messages[0].role", "wizard"},
		{"content of wrong type", chatBody("hi", "messages", []any{map[string]any{"role": "user", "content": 5}}), 400, "messages[0].content", "string"},
		{"stream of wrong type", chatBody("hi", "stream", "yes"), 400, "stream", "boolean"},
		{"max_tokens zero", chatBody("hi", "max_tokens", 0), 400, "max_tokens", "at least 1"},
		{"max_completion_tokens zero", chatBody("hi", "max_completion_tokens", 0), 400, "max_completion_tokens", "'max_completion_tokens' must be at least 1"},
		{"max_tokens not an integer", chatBody("hi", "max_tokens", 1.5), 400, "max_tokens", "expected an integer, got 1.5"},
		{"max_tokens a string", chatBody("hi", "max_tokens", "3"), 400, "max_tokens", "expected an integer, got a string"},
		{"max_tokens out of range", chatBody("hi", "max_tokens", 1e30), 400, "max_tokens", "1e+30 is out of range"},
		{"seed not an integer", chatBody("hi", "seed", 0.5), 400, "seed", "expected an integer, got 0.5"},
		{"huge body", chatBody(strings.Repeat("x", 4096)), 413, "", "larger than 1024 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := e.Post(t, "/v1/chat/completions", tt.body)
			if resp.StatusCode != tt.status {
				t.Errorf("status %d, want %d", resp.StatusCode, tt.status)
			}
			eb := decode[errorBody](t, resp)
			if !strings.Contains(eb.Error.Message, tt.inMessage) {
				t.Errorf("message %q lacks %q", eb.Error.Message, tt.inMessage)
			}
			if eb.Error.Type == "" || eb.Error.Code == nil {
				t.Errorf("error object lacks type or code: %+v", eb.Error)
			}
			if tt.param != "" && (eb.Error.Param == nil || *eb.Error.Param != tt.param) {
				t.Errorf("param %v, want %q", eb.Error.Param, tt.param)
			}
		})
	}
	// Nothing above disturbed the server: a good request still streams.
	if _, last := content(t, events(t, e.Post(t, "/v1/chat/completions", chatBody("short")), -1)); last != "[DONE]" {
		t.Fatalf("a good request after the bad ones ended with %q", last)
	}
}

func TestUnknownRouteIsAnErrorObject(t *testing.T) {
	e := newEnv(t, envOptions{})
	resp := e.Get(t, "/v2/nothing")
	if resp.StatusCode != 404 {
		t.Fatalf("status %s", resp.Status)
	}
	if eb := decode[errorBody](t, resp); !strings.Contains(eb.Error.Message, "/v2/nothing") {
		t.Fatalf("message %q", eb.Error.Message)
	}
}

// TestWrongMethodIs405WithAllow: a known path asked with a method it is not
// served with is answered 405, with the methods it is served with in
// Allow and an error object; an unknown path stays 404.
func TestWrongMethodIs405WithAllow(t *testing.T) {
	e := newEnv(t, envOptions{})
	tests := []struct {
		method, path string
		status       int
		allow        string
	}{
		{"GET", "/v1/chat/completions", 405, "POST"},
		{"DELETE", "/v1/topics/room/events", 405, "GET, HEAD, POST"},
		{"PUT", "/v1/streams/abc", 405, "GET, HEAD"},
		{"GET", "/v1/streams/abc/cancel", 405, "POST"},
		{"POST", "/v1/models", 405, "GET, HEAD"},
		{"POST", "/healthz", 405, "GET, HEAD"},
		{"DELETE", "/v2/nothing", 404, ""},
		{"GET", "/v1/chat/completions/x", 404, ""},
	}
	for _, tt := range tests {
		resp := testenv.Do(t, e.Client, tt.method, e.URL+tt.path, nil)
		if resp.StatusCode != tt.status || resp.Header.Get("Allow") != tt.allow {
			t.Errorf("%s %s: %s, Allow %q; want %d, Allow %q", tt.method, tt.path, resp.Status, resp.Header.Get("Allow"), tt.status, tt.allow)
			continue
		}
		eb := decode[errorBody](t, resp)
		if eb.Error.Type != "invalid_request_error" || eb.Error.Code == nil || !strings.Contains(eb.Error.Message, tt.path) {
			t.Errorf("%s %s: error object %+v", tt.method, tt.path, eb.Error)
		}
	}
}

// TestFullLogIsAServerError: an answer longer than a log keeps ends with
// an error that says the server's limit was met (507, server_error), not
// that the request was invalid, streamed or not.
func TestFullLogIsAServerError(t *testing.T) {
	e := newEnv(t, envOptions{MaxLogLen: 4})
	resp := e.Post(t, "/v1/chat/completions", chatBody("a long answer, please", "stream", false))
	if resp.StatusCode != http.StatusInsufficientStorage {
		t.Fatalf("status %s, want 507", resp.Status)
	}
	eb := decode[errorBody](t, resp)
	if eb.Error.Type != "server_error" || eb.Error.Code == nil || *eb.Error.Code != "log_full" {
		t.Fatalf("error object %+v", eb.Error)
	}
	evs := events(t, e.Post(t, "/v1/chat/completions", chatBody("a long answer, please")), -1)
	if len(evs) != 5 { // the 4 the log keeps, and its ending, which a full log still takes
		t.Fatalf("%d events, want 5", len(evs))
	}
	var last errorBody
	if err := json.Unmarshal([]byte(evs[4].Data), &last); err != nil || last.Error.Type != "server_error" || *last.Error.Code != "log_full" {
		t.Fatalf("last event %q (%v)", evs[4].Data, err)
	}
}

func TestTooManyGenerationsIs503WithRetryAfter(t *testing.T) {
	step := &stepModel{Tokens: []string{"a"}, Step: make(chan struct{})}
	e := newEnv(t, envOptions{MaxGenerations: 1, Models: map[string]sluice.Model{"step": step}})
	first := e.Post(t, "/v1/chat/completions", chatBody("x", "model", "step"))
	defer first.Body.Close()
	resp := e.Post(t, "/v1/chat/completions", chatBody("x", "model", "step"))
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("status %s, Retry-After %q", resp.Status, resp.Header.Get("Retry-After"))
	}
	if eb := decode[errorBody](t, resp); *eb.Error.Code != "too_many_generations" {
		t.Fatalf("code %q", *eb.Error.Code)
	}
	close(step.Step)
	if _, last := content(t, events(t, first, -1)); last != "[DONE]" {
		t.Fatalf("the running generation ended with %q", last)
	}
}
