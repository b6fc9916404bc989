package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// tinyUpstream is an OpenAI-compatible server that answers "Hi" and
// records the model names it is asked for.
func tinyUpstream(t *testing.T) (url string, asked func() []string) {
	t.Helper()
	var mu sync.Mutex
	var models []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body struct{ Model string }
		json.NewDecoder(r.Body).Decode(&body)
		mu.Lock()
		models = append(models, body.Model)
		mu.Unlock()
		w.Header().Set("Content-Type", "text/event-stream")
		for _, d := range []string{
			`{"choices":[{"index":0,"delta":{"role":"assistant","content":"Hi"},"finish_reason":null}]}`,
			`{"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}`,
			`{"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":1,"total_tokens":4}}`,
			`[DONE]`,
		} {
			io.WriteString(w, "data: "+d+"\n\n")
		}
	}))
	t.Cleanup(srv.Close)
	return srv.URL + "/v1", func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), models...)
	}
}

func TestServeOffersConfiguredModelsBesideTheDemo(t *testing.T) {
	upURL, asked := tinyUpstream(t)
	tests := []struct {
		name    string
		args    []string
		ownedBy string
	}{
		{"config file", []string{"--config", writeConfig(t, `
[upstreams.local]
base_url = "`+upURL+`"
max_attempts = 1

[models.assistant]
upstream = "local"
model = "tiny"
description = "A tiny model"
`)}, "local"},
		{"environment", []string{"--upstream-url", upURL, "--upstream-models", "assistant=tiny"}, strings.TrimSuffix(strings.TrimPrefix(upURL, "http://"), "/v1")},
	}
	client := &http.Client{Transport: &http.Transport{}}
	defer client.CloseIdleConnections()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			url, stop := startServe(t, tt.args...)
			resp, err := client.Get(url + "/v1/models")
			if err != nil {
				t.Fatal(err)
			}
			var list struct {
				Data []struct {
					ID      string `json:"id"`
					OwnedBy string `json:"owned_by"`
				} `json:"data"`
			}
			json.NewDecoder(resp.Body).Decode(&list)
			resp.Body.Close()
			owners := map[string]string{}
			for _, m := range list.Data {
				owners[m.ID] = m.OwnedBy
			}
			if len(owners) != 2 || owners["demo"] != "sluice" || owners["assistant"] != tt.ownedBy {
				t.Fatalf("/v1/models lists %v, want demo and assistant owned by %s", owners, tt.ownedBy)
			}

			body := `{"model":"assistant","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"hello"}]}`
			resp, err = client.Post(url+"/v1/chat/completions", "application/json", strings.NewReader(body))
			if err != nil {
				t.Fatal(err)
			}
			all, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if s := string(all); !strings.Contains(s, `"content":"Hi"`) || !strings.Contains(s, `"total_tokens":4`) || !strings.HasSuffix(s, "data: [DONE]\n\n") {
				t.Fatalf("stream:\n%s", s)
			}
			if got := asked(); got[len(got)-1] != "tiny" {
				t.Fatalf("the upstream was asked for %q, want tiny", got)
			}
			if err := stop(); err != nil {
				t.Fatalf("serve returned %v", err)
			}
		})
	}
}
