package main

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// TestShutdownKeepsToItsGrace fills the sockets of topic readers that
// never read, on SSE and /ws, under a long write timeout, and keeps a
// generation running past the grace period: serve must still return within
// the grace plus its fixed bound, not the write timeout.
func TestShutdownKeepsToItsGrace(t *testing.T) {
	const grace = time.Second
	url, stop := startServe(t, "--shutdown-grace", grace.String(), "--write-timeout", "60s",
		"--demo-ttft", "0s", "--demo-tps", "5")
	host := strings.TrimPrefix(url, "http://")

	// Readers that never read past their subscription: five over SSE (the
	// hub's), two over /ws.
	for range 5 {
		c, err := net.Dial("tcp", host)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		fmt.Fprintf(c, "GET /v1/topics/flood/events HTTP/1.1\r\nHost: x\r\n\r\n")
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if line, err := bufio.NewReader(c).ReadString('\n'); err != nil || !strings.Contains(line, " 200 ") {
			t.Fatalf("subscribing: %q %v", line, err)
		}
	}
	for range 2 {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		wc, _, err := websocket.Dial(ctx, "ws://"+host+"/ws", nil)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { wc.CloseNow() })
		if err := wc.Write(context.Background(), websocket.MessageText, []byte(`{"type":"topic.subscribe","topic":"flood"}`)); err != nil {
			t.Fatal(err)
		}
		ctx, cancel = context.WithTimeout(context.Background(), 5*time.Second)
		_, msg, err := wc.Read(ctx)
		cancel()
		if err != nil || !strings.Contains(string(msg), `"subscribed"`) {
			t.Fatalf("subscribing over /ws: %s %v", msg, err)
		}
	}
	// A generation that takes far longer than the grace, read as it goes.
	br := chat(t, url, "tell me a long story about rivers")
	if _, err := br.ReadString('\n'); err != nil {
		t.Fatal(err)
	}

	big := `{"data":"` + strings.Repeat("x", 60<<10) + `"}`
	for i := range 300 {
		resp, err := http.Post(url+"/v1/topics/flood/events", "application/json", strings.NewReader(big))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusCreated {
			t.Fatalf("publish %d: %s", i, resp.Status)
		}
	}

	start := time.Now()
	if err := stop(); err != nil {
		t.Fatalf("serve returned %v", err)
	}
	// The grace, the bound, and a second for a busy machine.
	if took, limit := time.Since(start), grace+endBound+closeBound+time.Second; took > limit {
		t.Fatalf("shutdown took %v, want at most %v", took, limit)
	}
	if last := lastData(t, br); !strings.Contains(last, `"code":"server_shutting_down"`) {
		t.Fatalf("the generation's reader got %q last, want the shutdown error", last)
	}
}
