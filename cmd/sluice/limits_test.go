package main

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/sluice-dev/sluice/internal/testenv"
)

const (
	keyAnn = "sk-ann-0123456789abcdef"
	keyBob = "sk-bob-0123456789abcdef"
)

// send makes one request to url with header's name, value pairs, and
// returns its status and, for an error, its code.
func send(t *testing.T, method, url, body string, header ...string) (status int, code string, resp *http.Response) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	if resp.StatusCode >= 400 {
		var eb struct {
			Error struct {
				Code string `json:"code"`
			} `json:"error"`
		}
		json.NewDecoder(resp.Body).Decode(&eb)
		code = eb.Error.Code
	}
	return resp.StatusCode, code, resp
}

func TestARateLimitHoldsAcrossNodesOnOneRedis(t *testing.T) {
	r := testenv.StartRedis(t)
	const rate = 4
	var nodes []string
	for range 2 {
		url, _ := startServe(t, "--redis-url", r.URL, "--rate-limit", "4", "--api-keys", keyAnn+","+keyBob)
		nodes = append(nodes, url)
	}
	for i := range rate {
		if st, code, _ := send(t, "GET", nodes[i%2]+"/v1/models", "", "Authorization", "Bearer "+keyAnn); st != 200 {
			t.Fatalf("request %d of %d, on node %d: %d %s", i+1, rate, i%2, st, code)
		}
	}
	for i, n := range nodes {
		st, code, resp := send(t, "GET", n+"/v1/models", "", "Authorization", "Bearer "+keyAnn)
		if st != 429 || code != "rate_limit_exceeded" || resp.Header.Get("Retry-After") == "" {
			t.Fatalf("request %d on node %d: %d %s, Retry-After %q; want 429 rate_limit_exceeded", rate+1, i, st, code, resp.Header.Get("Retry-After"))
		}
	}
	if st, code, _ := send(t, "GET", nodes[1]+"/v1/models", "", "Authorization", "Bearer "+keyBob); st != 200 {
		t.Fatalf("another key: %d %s", st, code)
	}
}

func TestGenerationsPerKeyHoldAcrossNodesOnOneRedis(t *testing.T) {
	r := testenv.StartRedis(t)
	var nodes []string
	for range 2 {
		// The demo takes a minute to its first token: the generations run
		// until cancelled, or ended at once by the shutdown.
		url, _ := startServe(t, "--redis-url", r.URL, "--max-generations-per-key", "2", "--api-keys", keyAnn+","+keyBob,
			"--demo-ttft", "1m", "--shutdown-grace", "0s")
		nodes = append(nodes, url)
	}
	body := `{"model":"demo","stream":true,"messages":[{"role":"user","content":"hi"}]}`
	start := func(node int, key string) (int, string, string) {
		st, code, resp := send(t, "POST", nodes[node]+"/v1/chat/completions", body, "Authorization", "Bearer "+key)
		return st, code, resp.Header.Get("Sluice-Stream-ID")
	}
	var first string
	for i := range 2 {
		st, code, id := start(i, keyAnn)
		if st != 200 {
			t.Fatalf("generation %d of 2, on node %d: %d %s", i+1, i, st, code)
		}
		if i == 0 {
			first = id
		}
	}
	for i := range nodes {
		if st, code, _ := start(i, keyAnn); st != 429 || code != "too_many_generations_for_key" {
			t.Fatalf("a third generation on node %d: %d %s, want 429 too_many_generations_for_key", i, st, code)
		}
	}
	if st, code, _ := start(0, keyBob); st != 200 {
		t.Fatalf("another key: %d %s", st, code)
	}
	// A generation that ends gives its place back to every node. (Cancel
	// on the node that runs it: it answers once the generation has ended.)
	if st, code, _ := send(t, "POST", nodes[0]+"/v1/streams/"+first+"/cancel", "", "Authorization", "Bearer "+keyAnn); st != 200 {
		t.Fatalf("cancel: %d %s", st, code)
	}
	if st, code, _ := start(1, keyAnn); st != 200 {
		t.Fatalf("after one ended, on the other node: %d %s", st, code)
	}
}

// TestXForwardedForCountsOnlyFromTrustedProxies: behind a trusted proxy
// each client named in X-Forwarded-For has a budget of its own; from a peer
// that is not trusted, the header is ignored and the peer's address counts.
func TestXForwardedForCountsOnlyFromTrustedProxies(t *testing.T) {
	trusting, _ := startServe(t, "--rate-limit", "2", "--trusted-proxies", "10.0.0.0/8,127.0.0.1")
	distrusting, _ := startServe(t, "--rate-limit", "2", "--trusted-proxies", "10.0.0.0/8")
	get := func(node, xff string) int {
		st, _, _ := send(t, "GET", node+"/v1/models", "", "X-Forwarded-For", xff)
		return st
	}
	for range 2 {
		if st := get(trusting, "203.0.113.1"); st != 200 {
			t.Fatalf("client 1 behind a trusted proxy: %d", st)
		}
	}
	if st := get(trusting, "203.0.113.1"); st != 429 {
		t.Fatalf("client 1's third request: %d, want 429", st)
	}
	if st := get(trusting, "203.0.113.2"); st != 200 {
		t.Fatalf("client 2 behind a trusted proxy shares client 1's budget: %d", st)
	}
	if st := get(trusting, "203.0.113.2, 203.0.113.1"); st != 429 {
		t.Fatalf("client 1 forging a hop before its own: %d, want 429", st)
	}

	if st := get(distrusting, "203.0.113.1"); st != 200 {
		t.Fatalf("first request: %d", st)
	}
	if st := get(distrusting, "203.0.113.2"); st != 200 {
		t.Fatalf("second request: %d", st)
	}
	if st := get(distrusting, "203.0.113.3"); st != 429 {
		t.Fatalf("a third request from one untrusted peer, naming a third client: %d, want 429", st)
	}
}
