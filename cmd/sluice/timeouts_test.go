package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// TestSlowBodyIsCutAtTheReadTimeout sends a request body a byte at a time,
// as a slowloris client does: the connection is closed once the read
// timeout has passed, and the server answers others meanwhile.
func TestSlowBodyIsCutAtTheReadTimeout(t *testing.T) {
	const timeout = time.Second
	url, _ := startServe(t, "--read-timeout", timeout.String())
	c, err := net.Dial("tcp", strings.TrimPrefix(url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "POST /v1/topics/t/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n")
	start := time.Now()
	closed := make(chan time.Duration, 1)
	go func() {
		_, _ = io.Copy(io.Discard, c) // whatever the server says, until it closes
		closed <- time.Since(start)
	}()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case took := <-closed:
			if took < timeout-100*time.Millisecond {
				t.Fatalf("closed after %v, before the read timeout of %v", took, timeout)
			}
			return
		case <-tick.C:
		}
		if time.Since(start) > 5*timeout {
			t.Fatalf("the connection is still open after %v, with a read timeout of %v", time.Since(start), timeout)
		}
		_, _ = c.Write([]byte(" ")) // one more byte of body; fails once closed
		resp, err := http.Get(url + "/healthz")
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("healthz while a body trickles in: %v %v", resp, err)
		}
		resp.Body.Close()
	}
}

// TestResponsesOutliveTheReadTimeout holds a response open for several
// read timeouts on every kind that stays open past its request: a
// `stream: false` answer, an SSE stream and a WebSocket. The timeout is
// for reading requests only.
func TestResponsesOutliveTheReadTimeout(t *testing.T) {
	const timeout = 300 * time.Millisecond
	url, _ := startServe(t, "--read-timeout", timeout.String(), "--demo-ttft", (4 * timeout).String(), "--demo-tps", "0")

	t.Run("stream false", func(t *testing.T) {
		body := `{"model":"demo","messages":[{"role":"user","content":"hi"}]}`
		resp, err := http.Post(url+"/v1/chat/completions", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(b), `"finish_reason":"stop"`) {
			t.Fatalf("%s %s", resp.Status, b)
		}
	})
	t.Run("sse", func(t *testing.T) {
		if last := lastData(t, chat(t, url, "hi")); last != "[DONE]" {
			t.Fatalf("the stream ended with %q", last)
		}
	})
	t.Run("ws", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		wc, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(url, "http")+"/ws", nil)
		if err != nil {
			t.Fatal(err)
		}
		defer wc.CloseNow()
		if err := wc.Write(ctx, websocket.MessageText, []byte(`{"type":"chat.start","body":{"model":"demo","messages":[{"role":"user","content":"hi"}]}}`)); err != nil {
			t.Fatal(err)
		}
		for {
			_, msg, err := wc.Read(ctx)
			if err != nil {
				t.Fatalf("reading: %v", err)
			}
			if strings.Contains(string(msg), `"end":`) {
				if !strings.Contains(string(msg), `"end":"done"`) {
					t.Fatalf("the stream ended with %s", msg)
				}
				return
			}
		}
	})
}
