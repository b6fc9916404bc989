package api_test

import (
	"net/http"
	"testing"
)

// TestDrainingRefusesNewWorkAtOnce is what a client meets from the moment
// a node starts to shut down: new chats and topic subscriptions get 503
// with Retry-After, health says draining, while a running generation can
// still be attached to.
func TestDrainingRefusesNewWorkAtOnce(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.Runner.Close()
	e.API.Drain()
	for _, tt := range []struct {
		name string
		resp func() *http.Response
	}{
		{"chat", func() *http.Response { return e.Post(t, "/v1/chat/completions", chatBody("hi")) }},
		{"chat, stream:false", func() *http.Response {
			return e.Post(t, "/v1/chat/completions", chatBody("hi", "stream", false))
		}},
		{"topic subscription", func() *http.Response { return e.Get(t, "/v1/topics/t/events") }},
		{"health", func() *http.Response { return e.Get(t, "/healthz") }},
	} {
		resp := tt.resp()
		if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" && tt.name != "health" {
			t.Errorf("%s while draining: %s, Retry-After %q; want 503 with Retry-After", tt.name, resp.Status, resp.Header.Get("Retry-After"))
		}
	}
}
