package main

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) != "" {
		os.Exit(runChild(os.Args[1:]))
	}
	if os.Getenv(mainEnv) != "" {
		os.Exit(runMain(os.Args[1:]))
	}
	goleak.VerifyTestMain(m)
}

// startServe runs serve in the background, as `sluice serve` would, and
// returns its URL and a function that shuts it down (like SIGTERM) and
// returns serve's error.
func startServe(t *testing.T, args ...string) (string, func() error) {
	t.Helper()
	// No conversations unless a test asks for them (with --data-dir): a
	// test server must never write into the user's data directory.
	return startServeEnv(t, func(string) string { return "" }, append([]string{"--data-dir", "off"}, args...)...)
}

// startServeEnv is startServe in the environment getenv gives.
func startServeEnv(t *testing.T, getenv func(string) string, args ...string) (string, func() error) {
	t.Helper()
	cfg, err := parseConfig(append([]string{"--addr", "127.0.0.1:0", "--log-level", "error"}, args...), getenv, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	addr := make(chan string, 1)
	done := make(chan error, 1)
	go func() { done <- serve(ctx, cfg, cfg.logger(io.Discard), func(a string) { addr <- a }) }()
	var url string
	select {
	case a := <-addr:
		url = "http://" + a
	case err := <-done:
		t.Fatalf("serve: %v", err)
	}
	stopped := false
	stop := func() error {
		if stopped {
			return nil
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			return err
		case <-time.After(30 * time.Second):
			t.Fatal("serve did not return after shutdown")
			return nil
		}
	}
	t.Cleanup(func() { stop() })
	return url, stop
}

func chat(t *testing.T, url, prompt string) *bufio.Reader {
	t.Helper()
	body := `{"model":"demo","stream":true,"messages":[{"role":"user","content":"` + prompt + `"}]}`
	resp, err := http.Post(url+"/v1/chat/completions", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	if resp.StatusCode != 200 {
		t.Fatalf("status %s", resp.Status)
	}
	return bufio.NewReader(resp.Body)
}

// lastData reads the stream to its end and returns its last data line.
func lastData(t *testing.T, br *bufio.Reader) string {
	t.Helper()
	last := ""
	for {
		line, err := br.ReadString('\n')
		if strings.HasPrefix(line, "data: ") {
			last = strings.TrimSuffix(line[6:], "\n")
		}
		if err != nil {
			return last
		}
	}
}

func TestShutdownEndsStreamsWithATerminalEvent(t *testing.T) {
	tests := []struct {
		name  string
		grace string
		want  string
	}{
		{"generations finish within the grace period", "30s", "[DONE]"},
		{"generations past the grace period end with an error", "50ms", `"code":"server_shutting_down"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			url, stop := startServe(t, "--demo-tps", "200", "--demo-ttft", "0s", "--shutdown-grace", tt.grace)
			br := chat(t, url, "tell me about rivers")
			if _, err := br.ReadString('\n'); err != nil { // the stream has begun
				t.Fatal(err)
			}
			errc := make(chan error, 1)
			go func() { errc <- stop() }()
			if last := lastData(t, br); !strings.Contains(last, tt.want) {
				t.Fatalf("stream ended with %q, want %q", last, tt.want)
			}
			if err := <-errc; err != nil {
				t.Fatalf("serve returned %v", err)
			}
			if _, err := http.Get(url + "/healthz"); err == nil {
				t.Fatal("the server still accepts connections after shutdown")
			}
		})
	}
}

func TestShutdownEndsTopicSubscriptions(t *testing.T) {
	url, stop := startServe(t)
	resp, err := http.Get(url + "/events")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := stop(); err != nil {
		t.Fatalf("serve returned %v", err)
	}
	rest, _ := io.ReadAll(resp.Body)
	if !strings.Contains(string(rest), "shutting down") {
		t.Fatalf("subscriber got %q at shutdown", rest)
	}
}

func TestRunRejectsUnknownCommands(t *testing.T) {
	var out strings.Builder
	err := run(context.Background(), []string{"frobnicate"}, &out, &out, func(string) string { return "" })
	if err == nil || !strings.Contains(out.String(), `unknown command "frobnicate"`) {
		t.Fatalf("err %v, output %q", err, out.String())
	}
}

// TestTopicBoundFlagsReachTheStore serves with tight topic bounds: a third
// topic is refused with 503, and a topic of 1 KiB keeps only the newest of
// two 600-byte events.
func TestTopicBoundFlagsReachTheStore(t *testing.T) {
	url, _ := startServe(t, "--max-topics", "2", "--topic-max-bytes", "1KiB", "--topics-max-bytes", "1MiB")
	post := func(topic, data string) *http.Response {
		t.Helper()
		resp, err := http.Post(url+"/v1/topics/"+topic+"/events", "application/json", strings.NewReader(`{"data":"`+data+`"}`))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	for _, d := range []string{strings.Repeat("a", 600), strings.Repeat("b", 600)} {
		if resp := post("one", d); resp.StatusCode != http.StatusCreated {
			t.Fatalf("publish: %s", resp.Status)
		}
	}
	post("two", "x")
	if resp := post("three", "x"); resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("a third topic: %s, Retry-After %q", resp.Status, resp.Header.Get("Retry-After"))
	}
	resp, err := http.Get(url + "/v1/topics/one/events?from=start")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasPrefix(line, "data: ") {
			if line != "data: "+strings.Repeat("b", 600)+"\n" {
				t.Fatalf("the oldest event kept is %.20q…, want the newest alone", line)
			}
			return
		}
	}
}
