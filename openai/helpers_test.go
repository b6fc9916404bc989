package openai_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluice-dev/sluice"
	"github.com/sluice-dev/sluice/api"
	"github.com/sluice-dev/sluice/internal/testenv"
	"github.com/sluice-dev/sluice/openai"
	"github.com/sluice-dev/sluice/sse"
)

// TestMain fails the run if a goroutine outlives the tests: every upstream
// request must end, whatever the upstream did.
func TestMain(m *testing.M) {
	testenv.RunWithoutLeaks(m, client)
}

// client is the test's HTTP client, for Sluice's clients.
var client = &http.Client{Transport: &http.Transport{}}

// newNode starts a real Sluice API server on a loopback port, as
// cmd/sluice assembles it, with the demo model and the given models.
func newNode(t *testing.T, cfg api.Config, models map[string]sluice.Model) *testenv.Server {
	t.Helper()
	return testenv.NewServer(t, testenv.Options{API: cfg, Models: models})
}

// upstream returns an Upstream for the server at url, closed at the end
// of the test. Retries are quick unless o says otherwise.
func upstream(t *testing.T, url string, o openai.UpstreamOptions) *openai.Upstream {
	t.Helper()
	o.BaseURL = url + "/v1"
	if o.Name == "" {
		o.Name = "fake"
	}
	if o.RetryDelay == 0 {
		o.RetryDelay = 5 * time.Millisecond
	}
	u, err := openai.NewUpstream(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(u.Close)
	return u
}

// front is a Sluice node whose model "up" is the upstream u, asked for the
// model "up-model".
func front(t *testing.T, u *openai.Upstream) *testenv.Server {
	t.Helper()
	return newNode(t, api.Config{}, map[string]sluice.Model{"up": openai.New(openai.Options{Upstream: u, Model: "up-model"})})
}

// post sends body (a string as it is, anything else as JSON) and returns
// the response, closed at the end of the test.
func post(t *testing.T, url string, body any, header ...string) *http.Response {
	t.Helper()
	return testenv.Do(t, client, http.MethodPost, url, body, header...)
}

func get(t *testing.T, url string, header ...string) *http.Response {
	t.Helper()
	return testenv.Do(t, client, http.MethodGet, url, nil, header...)
}

// chat is a streaming request for model with one user message; extra holds
// more fields as name, value pairs.
func chat(model, prompt string, extra ...any) map[string]any {
	return testenv.ChatBody(prompt, append([]any{"model", model}, extra...)...)
}

// stream is an SSE response being read.
type stream struct {
	t    *testing.T
	resp *http.Response
	rd   *sse.Reader
}

func openStream(t *testing.T, resp *http.Response) *stream {
	t.Helper()
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("want an event stream, got %s %s", resp.Status, b)
	}
	return &stream{t: t, resp: resp, rd: sse.NewReader(resp.Body)}
}

// next returns the next event; ok is false at the end of the stream.
func (s *stream) next() (sse.Event, bool) {
	s.t.Helper()
	ev, err := s.rd.Next()
	if errors.Is(err, io.EOF) {
		return ev, false
	}
	if err != nil {
		s.t.Fatalf("reading the stream: %v", err)
	}
	return ev, true
}

// rest returns every event to the end of the stream.
func (s *stream) rest() []sse.Event {
	s.t.Helper()
	var out []sse.Event
	for {
		ev, ok := s.next()
		if !ok {
			return out
		}
		out = append(out, ev)
	}
}

// seen renders events as a client of Sluice sees them, one line each, for
// exact comparisons: a chunk as the JSON of its delta with the finish
// reason and usage when set, an error as its code and message, and [DONE].
func seen(t *testing.T, evs []sse.Event) []string {
	t.Helper()
	out := make([]string, 0, len(evs))
	for _, ev := range evs {
		out = append(out, describe(t, ev.Data))
	}
	return out
}

var took = regexp.MustCompile(` in [0-9.]+[mµn]?s\)`)

func describe(t *testing.T, data string) string {
	t.Helper()
	if data == "[DONE]" {
		return data
	}
	var v struct {
		Choices []struct {
			Delta        json.RawMessage `json:"delta"`
			FinishReason *string         `json:"finish_reason"`
		} `json:"choices"`
		Usage *sluice.Usage `json:"usage"`
		Error *struct {
			Message string `json:"message"`
			Type    string `json:"type"`
			Code    string `json:"code"`
		} `json:"error"`
	}
	if err := json.Unmarshal([]byte(data), &v); err != nil {
		t.Fatalf("event %.200q is not JSON: %v", data, err)
	}
	if v.Error != nil {
		// How long retries took varies from run to run.
		return "error " + v.Error.Code + ": " + took.ReplaceAllString(v.Error.Message, " in …)")
	}
	var parts []string
	for _, c := range v.Choices {
		parts = append(parts, string(c.Delta))
		if c.FinishReason != nil {
			parts = append(parts, "finish "+*c.FinishReason)
		}
	}
	if v.Usage != nil {
		parts = append(parts, fmt.Sprintf("usage %d+%d=%d", v.Usage.PromptTokens, v.Usage.CompletionTokens, v.Usage.TotalTokens))
	}
	return strings.Join(parts, " ")
}

// equal fails the test unless got and want are the same lines.
func equal(t *testing.T, got, want []string) {
	t.Helper()
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("the client saw:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
}

// text joins the content of chunk events.
func text(t *testing.T, evs []sse.Event) string {
	t.Helper()
	datas := make([]string, len(evs))
	for i, ev := range evs {
		datas[i] = ev.Data
	}
	s, _ := testenv.ChatText(t, datas)
	return s
}

// fake is an upstream under the test's control: each request to
// /v1/chat/completions is answered by script, given the request's number
// (from 1). It records the request bodies.
type fake struct {
	*httptest.Server
	script func(n int, w http.ResponseWriter, r *http.Request)

	mu     sync.Mutex
	bodies []map[string]json.RawMessage
	times  []time.Time
}

func newFake(t *testing.T, script func(n int, w http.ResponseWriter, r *http.Request)) *fake {
	t.Helper()
	f := &fake{script: script}
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/v1/chat/completions" {
			http.Error(w, "not found", http.StatusNotFound)
			return
		}
		var body map[string]json.RawMessage
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		f.mu.Lock()
		f.bodies = append(f.bodies, body)
		f.times = append(f.times, time.Now())
		n := len(f.bodies)
		f.mu.Unlock()
		f.script(n, w, r)
	}))
	t.Cleanup(func() {
		f.CloseClientConnections()
		f.Close()
	})
	return f
}

// requests returns the number of requests the fake got.
func (f *fake) requests() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.bodies)
}

func (f *fake) body(i int) map[string]json.RawMessage {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.bodies[i]
}

// sseHeaders starts an event stream answer.
func sseHeaders(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	w.(http.Flusher).Flush()
}

// send writes SSE frames, flushing after each.
func send(w http.ResponseWriter, frames ...string) {
	for _, f := range frames {
		_, _ = io.WriteString(w, f)
		w.(http.Flusher).Flush()
	}
}

// data frames one SSE event.
func data(s string) string { return "data: " + s + "\n\n" }

// chunk is an OpenAI chat.completion.chunk with one choice: the delta
// (a JSON object) and the finish reason (JSON: null or a string).
func chunk(delta, finish string) string {
	return data(`{"id":"chatcmpl-up","object":"chat.completion.chunk","created":1,"model":"up-model","choices":[{"index":0,"delta":` +
		delta + `,"logprobs":null,"finish_reason":` + finish + `}]}`)
}

func content(s string) string {
	b, _ := json.Marshal(s)
	return chunk(`{"content":`+string(b)+`}`, "null")
}

var (
	roleChunk   = chunk(`{"role":"assistant","content":""}`, "null")
	stopChunk   = chunk(`{}`, `"stop"`)
	usageChunk  = data(`{"id":"chatcmpl-up","object":"chat.completion.chunk","created":1,"model":"up-model","choices":[],"usage":{"prompt_tokens":9,"completion_tokens":2,"total_tokens":11}}`)
	doneFrame   = data("[DONE]")
	goodAnswer  = []string{roleChunk, content("Hello"), content(" world"), stopChunk, usageChunk, doneFrame}
	goodSeen    = []string{`{"role":"assistant","content":""}`, `{"content":"Hello"}`, `{"content":" world"}`, `{} finish stop`, "[DONE]"}
	goodSeenUse = []string{`{"role":"assistant","content":""}`, `{"content":"Hello"}`, `{"content":" world"}`, `{} finish stop`, "usage 9+2=11", "[DONE]"}
)

// answer is a script that streams frames.
func answer(frames ...string) func(int, http.ResponseWriter, *http.Request) {
	return func(_ int, w http.ResponseWriter, _ *http.Request) {
		sseHeaders(w)
		send(w, frames...)
	}
}

// within fails the test if ch does not deliver within d: a bound on a
// wait for a signal, not a sleep.
func within[T any](t *testing.T, ch <-chan T, d time.Duration, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(d):
		t.Fatalf("%s did not happen within %v", what, d)
		panic("unreachable")
	}
}
