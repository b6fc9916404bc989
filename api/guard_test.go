package api_test

import (
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/sluice-dev/sluice"
	"github.com/sluice-dev/sluice/admit"
	"github.com/sluice-dev/sluice/api"
	"github.com/sluice-dev/sluice/internal/testenv"
)

const (
	keyAnn = "sk-ann-0123456789abcdef"
	keyBob = "sk-bob-0123456789abcdef"
)

func keyedEnv(t *testing.T, o envOptions) *env {
	t.Helper()
	keys, err := admit.ParseKeys("ann: " + keyAnn + "\n# a comment\nbob: sha256:" + sha256hex(keyBob) + "\n")
	if err != nil {
		t.Fatal(err)
	}
	o.Admit.Keys = keys
	o.Admit.PublicTopics = []string{"lobby"}
	return newEnv(t, o)
}

func bearer(key string) []string { return []string{"Authorization", "Bearer " + key} }

func wantStatus(t *testing.T, resp *http.Response, status int, code string) {
	t.Helper()
	if resp.StatusCode != status {
		t.Fatalf("%s %s: status %d, want %d", resp.Request.Method, resp.Request.URL.Path, resp.StatusCode, status)
	}
	if code == "" {
		return
	}
	eb := decode[errorBody](t, resp)
	if eb.Error.Code == nil || *eb.Error.Code != code {
		t.Fatalf("%s %s: code %v, want %q (%s)", resp.Request.Method, resp.Request.URL.Path, eb.Error.Code, code, eb.Error.Message)
	}
}

func TestKeysGuardTheAPI(t *testing.T) {
	step := &stepModel{Tokens: []string{"a"}, Step: make(chan struct{})}
	e := keyedEnv(t, envOptions{Models: map[string]sluice.Model{"step": step}})

	resp := e.Post(t, "/v1/chat/completions", chatBody("x"))
	if resp.Header.Get("WWW-Authenticate") == "" {
		t.Error("401 without WWW-Authenticate")
	}
	wantStatus(t, resp, 401, "missing_api_key")
	wantStatus(t, e.Post(t, "/v1/chat/completions", chatBody("x"), bearer("sk-wrong-0123456789")...), 401, "invalid_api_key")
	wantStatus(t, e.Post(t, "/v1/chat/completions", chatBody("x"), "Authorization", "Basic "+keyAnn), 401, "invalid_api_key")
	wantStatus(t, e.Get(t, "/v1/models"), 401, "missing_api_key")
	wantStatus(t, e.Get(t, "/v1/models", bearer(keyBob)...), 200, "") // a key stored as its hash works
	wantStatus(t, e.Get(t, "/healthz"), 200, "")

	// A stream belongs to the key that started it.
	resp = e.Post(t, "/v1/chat/completions", chatBody("x", "model", "step"), bearer(keyAnn)...)
	if resp.StatusCode != 200 {
		t.Fatalf("with a key: %s", resp.Status)
	}
	id := resp.Header.Get("Sluice-Stream-ID")
	wantStatus(t, e.Get(t, "/v1/streams/"+id), 401, "missing_api_key")
	wantStatus(t, e.Get(t, "/v1/streams/"+id, bearer(keyBob)...), 403, "stream_of_another_key")
	wantStatus(t, e.Post(t, "/v1/streams/"+id+"/cancel", "", bearer(keyBob)...), 403, "stream_of_another_key")
	attached := e.Get(t, "/v1/streams/"+id, bearer(keyAnn)...)
	if attached.StatusCode != 200 {
		t.Fatalf("the owner attaching: %s", attached.Status)
	}
	close(step.Step)
	for _, r := range []*http.Response{resp, attached} {
		if text, last := content(t, events(t, r, -1)); text != "a" || last != "[DONE]" {
			t.Fatalf("the owner's stream: %q %q", text, last)
		}
	}
	// The stream was not cancelled by the other key.
	if step.StoppedBy() != nil {
		t.Fatal("bob's cancel stopped ann's generation")
	}
}

func TestTopicsReadPublicPublishWithKey(t *testing.T) {
	e := keyedEnv(t, envOptions{})
	wantStatus(t, e.Get(t, "/v1/topics/secret/events"), 401, "missing_api_key")
	wantStatus(t, e.Post(t, "/v1/topics/lobby/events", `{"data":"x"}`), 401, "missing_api_key")
	wantStatus(t, e.Post(t, "/send-message", `{"message":"x"}`), 401, "missing_api_key")
	sub, rd := subscribe(t, e, "/v1/topics/lobby/events") // public: no key needed
	defer sub.Body.Close()
	wantStatus(t, e.Post(t, "/v1/topics/lobby/events", `{"data":"hello"}`, bearer(keyAnn)...), 201, "")
	if ev := next(t, rd); ev.Data != "hello" {
		t.Fatalf("got %+v", ev)
	}
}

func TestRateLimitAnswers429WithRetryAfter(t *testing.T) {
	e := keyedEnv(t, envOptions{Admit: admit.Config{Limits: admit.Limits{RequestsPerMinute: 3}}})
	for range 3 {
		wantStatus(t, e.Get(t, "/v1/models", bearer(keyAnn)...), 200, "")
	}
	resp := e.Get(t, "/v1/models", bearer(keyAnn)...)
	ra, _ := strconv.Atoi(resp.Header.Get("Retry-After"))
	if ra < 1 || ra > 21 {
		t.Errorf("Retry-After %q, want about 20 seconds", resp.Header.Get("Retry-After"))
	}
	wantStatus(t, resp, 429, "rate_limit_exceeded")
	// Another key has its own budget.
	wantStatus(t, e.Get(t, "/v1/models", bearer(keyBob)...), 200, "")
}

func TestGenerationsPerKey(t *testing.T) {
	step := &stepModel{Tokens: []string{"a"}, Step: make(chan struct{})}
	e := keyedEnv(t, envOptions{MaxPerKey: 1, Models: map[string]sluice.Model{"step": step}})
	first := e.Post(t, "/v1/chat/completions", chatBody("x", "model", "step"), bearer(keyAnn)...)
	resp := e.Post(t, "/v1/chat/completions", chatBody("x", "model", "step"), bearer(keyAnn)...)
	if resp.Header.Get("Retry-After") == "" {
		t.Error("429 without Retry-After")
	}
	wantStatus(t, resp, 429, "too_many_generations_for_key")
	other := e.Post(t, "/v1/chat/completions", chatBody("x", "model", "step"), bearer(keyBob)...)
	if other.StatusCode != 200 {
		t.Fatalf("another key: %s", other.Status)
	}
	close(step.Step)
	events(t, first, -1)
	events(t, other, -1)
}

func TestPromptLimits(t *testing.T) {
	e := newEnv(t, envOptions{Admit: admit.Config{Limits: admit.Limits{MaxMessages: 2, MaxPromptBytes: 100}}})
	three := []any{
		map[string]any{"role": "user", "content": "a"}, map[string]any{"role": "assistant", "content": "b"},
		map[string]any{"role": "user", "content": "c"},
	}
	wantStatus(t, e.Post(t, "/v1/chat/completions", chatBody("x", "messages", three)), 400, "too_many_messages")
	wantStatus(t, e.Post(t, "/v1/chat/completions", chatBody(strings.Repeat("y", 200))), 400, "prompt_too_large")
}

func TestStreamLimits(t *testing.T) {
	e := newEnv(t, envOptions{Admit: admit.Config{Limits: admit.Limits{StreamsPerAddr: 2, MaxStreams: 3}}})
	a, _ := subscribe(t, e, "/events")
	subscribe(t, e, "/events")
	resp := e.Get(t, "/events")
	if resp.Header.Get("Retry-After") == "" {
		t.Error("429 without Retry-After")
	}
	wantStatus(t, resp, 429, "too_many_streams")
	// A closed stream gives its place back.
	a.Body.Close()
	testenv.Eventually(t, "the closed stream's place", func() bool {
		r := e.Get(t, "/events")
		r.Body.Close()
		return r.StatusCode == 200
	})
}

func TestNodeStreamLimitIs503(t *testing.T) {
	e := newEnv(t, envOptions{Admit: admit.Config{Limits: admit.Limits{MaxStreams: 1}}})
	subscribe(t, e, "/events")
	resp := e.Post(t, "/v1/chat/completions", chatBody("x"))
	if resp.Header.Get("Retry-After") == "" {
		t.Error("503 without Retry-After")
	}
	wantStatus(t, resp, 503, "server_full")
}

func TestCORS(t *testing.T) {
	e := newEnv(t, envOptions{API: api.Config{CORSOrigins: []string{"https://app.example"}}})
	pre := func(origin string) *http.Response {
		req, _ := http.NewRequest(http.MethodOptions, e.URL+"/v1/chat/completions", nil)
		req.Header.Set("Origin", origin)
		req.Header.Set("Access-Control-Request-Method", "POST")
		req.Header.Set("Access-Control-Request-Headers", "authorization, content-type")
		resp, err := e.Client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	ok := pre("https://app.example")
	if ok.StatusCode != 204 || ok.Header.Get("Access-Control-Allow-Origin") != "https://app.example" ||
		!strings.Contains(ok.Header.Get("Access-Control-Allow-Headers"), "Authorization") ||
		ok.Header.Get("Access-Control-Allow-Credentials") != "" {
		t.Fatalf("allowed preflight: %d %v", ok.StatusCode, ok.Header)
	}
	if bad := pre("https://evil.example"); bad.StatusCode != 403 || bad.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("refused preflight: %d %v", bad.StatusCode, bad.Header)
	}
	resp := e.Post(t, "/v1/chat/completions", chatBody("short"), "Origin", "https://app.example")
	if resp.Header.Get("Access-Control-Allow-Origin") != "https://app.example" ||
		!strings.Contains(resp.Header.Get("Access-Control-Expose-Headers"), "Sluice-Stream-ID") ||
		!strings.Contains(resp.Header.Get("Access-Control-Expose-Headers"), api.HeaderLastEventID) {
		t.Fatalf("a cross-origin stream lacks CORS headers: %v", resp.Header)
	}
	events(t, resp, -1)
	resp = e.Post(t, "/v1/chat/completions", chatBody("short"), "Origin", "https://evil.example")
	if resp.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Fatal("a refused origin got CORS headers")
	}
	events(t, resp, -1)
}

func TestSecurityHeaders(t *testing.T) {
	e := newEnv(t, envOptions{})
	for _, path := range []string{"/healthz", "/nope"} {
		resp := e.Get(t, path)
		csp := resp.Header.Get("Content-Security-Policy")
		if !strings.Contains(csp, "script-src 'self'") || strings.Contains(csp, "unsafe-inline") ||
			resp.Header.Get("X-Content-Type-Options") != "nosniff" || resp.Header.Get("Referrer-Policy") == "" {
			t.Fatalf("%s: %v", path, resp.Header)
		}
	}
}

func TestHandleAPINeedsAKey(t *testing.T) {
	e := keyedEnv(t, envOptions{})
	e.API.HandleAPI("GET /extra", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(204) }))
	wantStatus(t, e.Get(t, "/extra"), 401, "missing_api_key")
	wantStatus(t, e.Get(t, "/extra", bearer(keyAnn)...), 204, "")
}
