package ws_test

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/sluice-dev/sluice/api"
	"github.com/sluice-dev/sluice/demo"
	"github.com/sluice-dev/sluice/internal/testenv"
	"github.com/sluice-dev/sluice/ws"
)

// The heartbeat and write timeout of the quiet-stream tests, and how long
// their streams stay quiet: several write timeouts, as a model that thinks
// before its first token keeps a stream.
const (
	quietHeartbeat = 50 * time.Millisecond
	quietTimeout   = 250 * time.Millisecond
	quietFor       = 6 * quietTimeout
)

// quietEnv serves both transports with a demo model that thinks for
// quietFor before its first token; with http2 SSE takes the fallback path
// (a handler's goroutine) instead of the hub.
func quietEnv(t *testing.T, http2 bool) *env { return quietEnvBeating(t, http2, quietHeartbeat) }

// quietEnvBeating is quietEnv with another heartbeat.
func quietEnvBeating(t *testing.T, http2 bool, heartbeat time.Duration) *env {
	return newEnv(t, envOptions{
		api:   api.Config{Heartbeat: heartbeat, WriteTimeout: quietTimeout},
		ws:    ws.Options{Heartbeat: heartbeat, WriteTimeout: quietTimeout},
		demo:  demo.Options{TimeToFirstToken: quietFor, TokensPerSecond: 2000, MaxTokens: 20},
		http2: http2,
	})
}

// sseLines reads an event stream to its end (or until stop returns true
// for a data line) and returns its data lines and how many heartbeats
// came.
func sseLines(t *testing.T, body io.Reader, stop func(data string) bool) (datas []string, pings int) {
	t.Helper()
	br := bufio.NewReader(body)
	for {
		line, err := br.ReadString('\n')
		switch {
		case strings.HasPrefix(line, ": ping"):
			pings++
		case strings.HasPrefix(line, "data: "):
			datas = append(datas, strings.TrimSuffix(line[len("data: "):], "\n"))
			if stop != nil && stop(datas[len(datas)-1]) {
				return datas, pings
			}
		}
		if err != nil {
			return datas, pings
		}
	}
}

// TestQuietStreamsOutliveTheWriteTimeout holds a generation quiet for six
// write timeouts before its first token, on every transport, and expects
// the reader, which reads every heartbeat, to be kept to the end: the
// whole answer and [DONE], never a silent cut.
//
// With a heartbeat longer than the write timeout, the stream is quiet for
// longer than the write timeout between any two writes: a deadline left
// from the last write must not end it (over HTTP/2 a passed deadline
// resets the stream).
func TestQuietStreamsOutliveTheWriteTimeout(t *testing.T) {
	for _, tt := range []struct {
		name      string
		http2     bool
		heartbeat time.Duration
	}{
		{"sse via the hub", false, quietHeartbeat},
		{"sse fallback over http2", true, quietHeartbeat},
		{"sse via the hub, heartbeat past the write timeout", false, 2 * quietTimeout},
		{"sse fallback over http2, heartbeat past the write timeout", true, 2 * quietTimeout},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := quietEnvBeating(t, tt.http2, tt.heartbeat)
			resp := testenv.Do(t, e.Client, "POST", e.URL+"/v1/chat/completions", chatBody("think first"))
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %s", resp.Status)
			}
			if want := tt.http2; (resp.ProtoMajor == 2) != want {
				t.Fatalf("protocol %s, want HTTP/2 %v", resp.Proto, want)
			}
			datas, pings := sseLines(t, resp.Body, nil)
			got, last := text(t, datas)
			if last != "[DONE]" || got == "" {
				t.Fatalf("the stream ended with %q after %q; want the answer and [DONE]", last, got)
			}
			// The role chunk comes at once; heartbeats fill the thinking.
			if min := int(quietFor / tt.heartbeat / 2); pings < min {
				t.Errorf("%d heartbeats while quiet, want at least %d", pings, min)
			}
		})
	}
	t.Run("ws", func(t *testing.T) {
		t.Parallel()
		e := quietEnv(t, false)
		c := e.dial(t)
		c.send(map[string]any{"type": "chat.start", "id": "q", "body": chatBody("think first")})
		st := c.expect("started")
		got, last := text(t, datas(c.untilEnd(st.Stream)))
		if last != "[DONE]" || got == "" {
			t.Fatalf("the stream ended with %q after %q; want the answer and [DONE]", last, got)
		}
	})
}

// TestQuietTopicsOutliveTheWriteTimeout subscribes to a topic that stays
// quiet for six write timeouts, on every transport, then publishes: every
// subscriber is still there to get the event.
func TestQuietTopicsOutliveTheWriteTimeout(t *testing.T) {
	for _, tt := range []struct {
		name  string
		http2 bool
	}{{"sse via the hub", false}, {"sse fallback over http2", true}, {"ws", false}} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := quietEnv(t, tt.http2)
			published := make(chan error, 1)
			publish := func() {
				time.Sleep(quietFor)
				resp, err := e.Client.Post(e.URL+"/v1/topics/quiet/events", "application/json", strings.NewReader(`{"data":"late"}`))
				if err == nil {
					resp.Body.Close()
				}
				published <- err
			}
			defer func() {
				if err := <-published; err != nil {
					t.Errorf("publish: %v", err)
				}
			}()
			if tt.name == "ws" {
				c := e.dial(t)
				c.send(map[string]any{"type": "topic.subscribe", "topic": "quiet"})
				c.expect("subscribed")
				go publish()
				if f := c.next(); f.Type != "event" || f.Data != "late" {
					t.Fatalf("got %+v, want the late event", f)
				}
				return
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			req, _ := http.NewRequestWithContext(ctx, "GET", e.URL+"/v1/topics/quiet/events", nil)
			resp, err := e.Client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			go publish()
			datas, pings := sseLines(t, resp.Body, func(string) bool { return true })
			if len(datas) != 1 || datas[0] != "late" {
				t.Fatalf("got %q, want the late event", datas)
			}
			if min := int(quietFor / quietHeartbeat / 2); pings < min {
				t.Errorf("%d heartbeats while quiet, want at least %d", pings, min)
			}
		})
	}
}

// TestHeartbeatKeepsAnIdleConnection counts the pings an idle /ws
// connection is sent, and checks it is still served well past the write
// timeout.
func TestHeartbeatKeepsAnIdleConnection(t *testing.T) {
	e := quietEnv(t, false)
	pings := make(chan struct{}, 1024)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	wc, _, err := websocket.Dial(ctx, e.WSURL, &websocket.DialOptions{OnPingReceived: func(context.Context, []byte) bool {
		pings <- struct{}{}
		return true // answer it
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer wc.CloseNow()
	c := &client{t: t, c: wc}
	c.send(map[string]any{"type": "topic.subscribe", "topic": "idle"})
	c.expect("subscribed")
	go func() {
		time.Sleep(quietFor)
		resp, err := http.Post(e.URL+"/v1/topics/idle/events", "application/json", strings.NewReader(`{"data":"late"}`))
		if err == nil {
			resp.Body.Close()
		}
	}()
	if f := c.next(); f.Data != "late" { // reading answers the pings
		t.Fatalf("got %+v", f)
	}
	if n, min := len(pings), int(quietFor/quietHeartbeat/2); n < min {
		t.Fatalf("%d pings in %v of quiet, want at least %d", n, quietFor, min)
	}
}
