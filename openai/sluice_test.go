package openai_test

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/sluice-dev/sluice"
	"github.com/sluice-dev/sluice/api"
	"github.com/sluice-dev/sluice/openai"
	"github.com/sluice-dev/sluice/sse"
)

// choices returns the "choices" and "usage" of chunk events, byte for
// byte: what must pass unchanged through a second Sluice (ids, model names
// and times differ).
func choices(t *testing.T, evs []sse.Event) []string {
	t.Helper()
	var out []string
	for _, ev := range evs {
		if ev.Data == "[DONE]" {
			out = append(out, ev.Data)
			continue
		}
		var v struct {
			Choices json.RawMessage `json:"choices"`
			Usage   json.RawMessage `json:"usage"`
		}
		if err := json.Unmarshal([]byte(ev.Data), &v); err != nil {
			t.Fatalf("event %.200q: %v", ev.Data, err)
		}
		out = append(out, string(v.Choices)+" "+string(v.Usage))
	}
	return out
}

func TestSluiceBehindSluiceGivesTheSameAnswer(t *testing.T) {
	up := newNode(t, api.Config{}, nil)
	u := upstream(t, up.URL, openai.UpstreamOptions{Name: "first"})
	relay := newNode(t, api.Config{}, map[string]sluice.Model{"relay": openai.New(openai.Options{Upstream: u, Model: "demo"})})

	for _, prompt := range []string{"Tell me about streaming.", "A long one, please."} {
		opts := []any{"seed", 7, "stream_options", map[string]any{"include_usage": true}}
		direct := openStream(t, post(t, up.URL+"/v1/chat/completions", chat("demo", prompt, opts...))).rest()
		resp := post(t, relay.URL+"/v1/chat/completions", chat("relay", prompt, opts...))
		relayed := openStream(t, resp).rest()

		if len(direct) < 20 {
			t.Fatalf("the demo answered only %d events", len(direct))
		}
		equal(t, choices(t, relayed), choices(t, direct))
		if d, r := text(t, direct), text(t, relayed); d != r || d == "" {
			t.Fatalf("texts differ:\ndirect  %q\nrelayed %q", d, r)
		}
		// The usage chunk is the upstream's count, passed through.
		if last := describe(t, relayed[len(relayed)-2].Data); last != describe(t, direct[len(direct)-2].Data) {
			t.Fatalf("usage: relayed %s, direct %s", last, describe(t, direct[len(direct)-2].Data))
		}

		// Resume the relayed stream after its 5th event: the rest comes
		// again, the same.
		id := resp.Header.Get(api.HeaderStreamID)
		resumed := openStream(t, get(t, relay.URL+"/v1/streams/"+id, "Last-Event-ID", relayed[4].ID)).rest()
		equal(t, seen(t, resumed), seen(t, relayed[5:]))
		if resumed[0].ID != relayed[5].ID {
			t.Fatalf("resumed at id %q, want %q", resumed[0].ID, relayed[5].ID)
		}
	}
}

func TestSluiceBehindSluiceAnswersNonStreamingRequests(t *testing.T) {
	up := newNode(t, api.Config{}, nil)
	u := upstream(t, up.URL, openai.UpstreamOptions{Name: "first"})
	relay := newNode(t, api.Config{}, map[string]sluice.Model{"relay": openai.New(openai.Options{Upstream: u, Model: "demo"})})

	type completion struct {
		Model   string `json:"model"`
		Choices []struct {
			Message struct {
				Role    string `json:"role"`
				Content string `json:"content"`
			} `json:"message"`
			FinishReason string `json:"finish_reason"`
		} `json:"choices"`
	}
	complete := func(url, model string) completion {
		t.Helper()
		resp := post(t, url+"/v1/chat/completions", chat(model, "short answer please", "stream", false, "max_tokens", 5))
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: %s", model, resp.Status)
		}
		var c completion
		if err := json.NewDecoder(resp.Body).Decode(&c); err != nil {
			t.Fatal(err)
		}
		return c
	}
	direct, relayed := complete(up.URL, "demo"), complete(relay.URL, "relay")
	if relayed.Model != "relay" || len(relayed.Choices) != 1 || len(direct.Choices) != 1 {
		t.Fatalf("relayed completion %+v", relayed)
	}
	d, r := direct.Choices[0], relayed.Choices[0]
	if d != r || d.Message.Content == "" || d.FinishReason != "length" {
		t.Fatalf("choices differ (max_tokens passed through?):\ndirect  %+v\nrelayed %+v", d, r)
	}
}
