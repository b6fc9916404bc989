package openai_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sluice-dev/sluice"
	"github.com/sluice-dev/sluice/openai"
)

func TestUpstreamGetsTheClientsRequestVerbatim(t *testing.T) {
	var header http.Header
	f := newFake(t, func(n int, w http.ResponseWriter, r *http.Request) {
		header = r.Header.Clone()
		answer(goodAnswer...)(n, w, r)
	})
	u := upstream(t, f.URL, openai.UpstreamOptions{APIKey: "sk-test", Headers: map[string]string{"X-Title": "sluice test"}})
	n := front(t, u)

	// Compact JSON, as the fake re-encodes nothing: every value below must
	// arrive byte for byte.
	messages := `[{"role":"system","content":"Be brief.","x_vendor":{"cache":true}},` +
		`{"role":"user","content":[{"type":"text","text":"hi"},{"type":"image_url","image_url":{"url":"data:image/png;base64,AAAA"}}],"name":"bob"}]`
	extra := map[string]string{
		"temperature":     `0.25`,
		"max_tokens":      `7`,
		"tools":           `[{"type":"function","function":{"name":"f","parameters":{"type":"object","properties":{}}}}]`,
		"response_format": `{"type":"json_object"}`,
		"x_unknown":       `{"nested":[1,2.50,"three",null]}`,
		"seed":            `42`,
	}
	body := `{"model":"up","stream":false,"messages":` + messages
	for k, v := range extra {
		body += `,"` + k + `":` + v
	}
	resp := post(t, n.URL+"/v1/chat/completions", body+"}")
	if resp.StatusCode != http.StatusOK {
		t.Fatal(resp.Status)
	}

	got := f.body(0)
	var gotMessages []json.RawMessage
	json.Unmarshal(got["messages"], &gotMessages)
	var wantMessages []json.RawMessage
	json.Unmarshal([]byte(messages), &wantMessages)
	for i := range wantMessages {
		if i >= len(gotMessages) || string(gotMessages[i]) != string(wantMessages[i]) {
			t.Fatalf("message %d: upstream got %s, want %s", i, gotMessages, wantMessages[i])
		}
	}
	for k, v := range extra {
		if string(got[k]) != v {
			t.Errorf("%s: upstream got %s, want %s", k, got[k], v)
		}
	}
	for k, v := range map[string]string{"model": `"up-model"`, "stream": `true`, "stream_options": `{"include_usage":true}`} {
		if string(got[k]) != v {
			t.Errorf("%s: upstream got %s, want %s", k, got[k], v)
		}
	}
	if len(got) != len(extra)+4 {
		t.Errorf("upstream got %d fields, want %d", len(got), len(extra)+4)
	}
	if header.Get("Authorization") != "Bearer sk-test" || header.Get("X-Title") != "sluice test" || header.Get("Accept") != "text/event-stream" {
		t.Errorf("headers %v", header)
	}
}

func TestSeveralChoicesAreRefused(t *testing.T) {
	f := newFake(t, answer(goodAnswer...))
	n := front(t, upstream(t, f.URL, openai.UpstreamOptions{}))
	resp := post(t, n.URL+"/v1/chat/completions", chat("up", "hi", "stream", false, "n", 2))
	var body struct {
		Error struct{ Message, Param, Code string }
	}
	json.NewDecoder(resp.Body).Decode(&body)
	if resp.StatusCode != http.StatusBadRequest || body.Error.Param != "n" {
		t.Fatalf("got %s %+v", resp.Status, body.Error)
	}
	if resp := post(t, n.URL+"/v1/chat/completions", chat("up", "hi", "stream", false, "n", 1)); resp.StatusCode != http.StatusOK {
		t.Fatalf("n=1: %s", resp.Status)
	}
	if f.requests() != 1 {
		t.Fatalf("the upstream got %d requests, want only the one with n=1", f.requests())
	}
}

func TestStreamReturnsEmitsError(t *testing.T) {
	f, gone := endless(t)
	m := openai.New(openai.Options{Upstream: upstream(t, f.URL, openai.UpstreamOptions{}), Model: "m"})
	full := errors.New("log full")
	_, err := m.Stream(context.Background(), &sluice.ChatRequest{Messages: []sluice.Message{{Role: "user", Content: []byte(`"hi"`)}}},
		func(d sluice.Delta) error {
			if d.Content != "" {
				return full
			}
			return nil
		})
	if !errors.Is(err, full) {
		t.Fatalf("Stream returned %v, want emit's error", err)
	}
	within(t, gone, 5*time.Second, "closing the upstream request")
}

func TestNewUpstreamRefusesBadOptions(t *testing.T) {
	for _, o := range []openai.UpstreamOptions{
		{Name: "a", BaseURL: "localhost:11434/v1"},
		{Name: "a", BaseURL: "ftp://example.com"},
		{Name: "a", BaseURL: "http://"},
		{Name: "a", BaseURL: "http://x", Headers: map[string]string{"Bad Name": "v"}},
		{Name: "a", BaseURL: "http://x", Headers: map[string]string{"X-Ok": "line\nbreak"}},
	} {
		if _, err := openai.NewUpstream(o); err == nil || !strings.Contains(err.Error(), `upstream "a"`) {
			t.Errorf("%+v: err %v", o, err)
		}
	}
}
