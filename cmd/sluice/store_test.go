package main

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/internal/testenv"
)

// sseLines reads a stream's id: and data: lines until it ends.
func sseLines(t *testing.T, resp *http.Response) []string {
	t.Helper()
	defer resp.Body.Close()
	var out []string
	br := bufio.NewReader(resp.Body)
	for {
		line, err := br.ReadString('\n')
		if strings.HasPrefix(line, "id: ") || strings.HasPrefix(line, "data: ") {
			out = append(out, strings.TrimSuffix(line, "\n"))
		}
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

func TestNodesOnOneRedisServeEachOthersStreams(t *testing.T) {
	r := testenv.StartRedis(t)
	a, _ := startServe(t, "--redis-url", r.URL, "--demo-ttft", "0s", "--demo-tps", "0")
	b, _ := startServe(t, "--redis-url", r.URL)

	body := `{"model":"demo","stream":true,"messages":[{"role":"user","content":"tell me a story"}]}`
	resp, err := http.Post(a+"/v1/chat/completions", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	id := resp.Header.Get("Sluice-Stream-ID")
	onA := sseLines(t, resp)
	if id == "" || len(onA) < 4 || onA[len(onA)-1] != "data: [DONE]" {
		t.Fatalf("stream %q on A: %q", id, onA)
	}

	resp, err = http.Get(b + "/v1/streams/" + id)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("stream %s on B: %s", id, resp.Status)
	}
	if onB := sseLines(t, resp); strings.Join(onB, "\n") != strings.Join(onA, "\n") {
		t.Fatalf("B served stream %s as\n%q\nA as\n%q", id, onB, onA)
	}
}

func TestATopicPublishedOnOneNodeReachesReadersOnAnother(t *testing.T) {
	r := testenv.StartRedis(t)
	a, _ := startServe(t, "--redis-url", r.URL)
	b, _ := startServe(t, "--redis-url", r.URL)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, b+"/v1/topics/news/events", nil)
	sub, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Body.Close()
	if sub.StatusCode != http.StatusOK {
		t.Fatalf("subscribe on B: %s", sub.Status)
	}
	pub, err := http.Post(a+"/v1/topics/news/events", "application/json", strings.NewReader(`{"data":"from A"}`))
	if err != nil {
		t.Fatal(err)
	}
	pub.Body.Close()
	if pub.StatusCode != http.StatusCreated {
		t.Fatalf("publish on A: %s", pub.Status)
	}
	br := bufio.NewReader(sub.Body)
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatalf("B's subscriber: %v before the event", err)
		}
		if strings.HasPrefix(line, "data: ") {
			if line != "data: from A\n" {
				t.Fatalf("B's subscriber got %q", line)
			}
			return
		}
	}
}

func TestServeFailsAtStartWhenRedisIsUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	cfg, err := parseConfig([]string{"--addr", "127.0.0.1:0", "--redis-url", "redis://" + addr}, func(string) string { return "" }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	listening := false
	err = serve(context.Background(), cfg, cfg.logger(io.Discard), func(string) { listening = true })
	if err == nil || listening || !strings.Contains(err.Error(), "--redis-url") || !strings.Contains(err.Error(), addr) {
		t.Fatalf("serve with Redis unreachable: %v (listening: %v); want an error naming --redis-url and %s, before listening", err, listening, addr)
	}
	testenv.AwaitGoroutinesGone(t, "rueidis.(*call).DelayDo")
}
