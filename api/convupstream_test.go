package api_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/sluice-dev/sluice"
	"github.com/sluice-dev/sluice/api"
	"github.com/sluice-dev/sluice/openai"
)

// TestAFailingUpstreamFailsTheStoredAnswer: a real OpenAI-compatible
// upstream (an HTTP server on loopback) is sent the stored branch and the
// new message, and none of the conversation fields; when it fails after
// its first words, the answer is stored failed, with those words and the
// error users saw.
func TestAFailingUpstreamFailsTheStoredAnswer(t *testing.T) {
	forEachStore(t, func(t *testing.T, open openFunc) {
		got := make(chan map[string]json.RawMessage, 1)
		up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			var body map[string]json.RawMessage
			b, _ := io.ReadAll(r.Body)
			_ = json.Unmarshal(b, &body)
			select { // the first request's: a retry would not block the server
			case got <- body:
			default:
			}
			w.Header().Set("Content-Type", "text/event-stream")
			fmt.Fprint(w, `data: {"id":"x","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"role":"assistant","content":"Par"}}]}`+"\n\n")
			w.(http.Flusher).Flush()
			fmt.Fprint(w, `data: {"error":{"message":"The model is overloaded."}}`+"\n\n")
		}))
		t.Cleanup(up.Close)
		u, err := openai.NewUpstream(openai.UpstreamOptions{Name: "flaky", BaseURL: up.URL + "/v1", RetryDelay: 5 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(u.Close)
		e := convEnv(t, open, envOptions{Models: map[string]sluice.Model{"flaky": openai.New(openai.Options{Upstream: u, Model: "m"})}}, false)
		c := createConv(t, e, map[string]any{"items": []map[string]any{{"role": "user", "content": "Q1"}, {"role": "assistant", "content": "A1"}}})

		resp := do(t, e, "POST", "/v1/chat/completions", chatBody("Q2", "model", "flaky", "conversation", c.ID))
		msg := resp.Header.Get(api.HeaderMessageID)
		if _, last := content(t, events(t, resp, -1)); !strings.Contains(last, "overloaded") {
			t.Fatalf("the stream ended with %q", last)
		}
		body := <-got
		if _, ok := body["conversation"]; ok {
			t.Fatal("the upstream was sent the conversation field")
		}
		var msgs []struct{ Role, Content string }
		if err := json.Unmarshal(body["messages"], &msgs); err != nil || len(msgs) != 3 || msgs[0].Content != "Q1" || msgs[1].Content != "A1" || msgs[2].Content != "Q2" {
			t.Fatalf("the upstream was sent %s (%v)", body["messages"], err)
		}
		it := waitItem(t, e, c.ID, msg, "the answer failed", func(it itemJSON) bool { return it.Status == "failed" })
		if text(it) != "Par" || it.Error == nil || it.Error.Code != sluice.EUPSTREAM || it.Error.Kind != "upstream_error" ||
			!strings.Contains(it.Error.Message, "overloaded") {
			t.Fatalf("failed answer %q, error %+v", text(it), it.Error)
		}
	})
}
