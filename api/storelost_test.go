package api_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sluice-dev/sluice"
	"github.com/sluice-dev/sluice/internal/testenv"
	"github.com/sluice-dev/sluice/redis"
	"github.com/sluice-dev/sluice/sse"
)

// TestReadersGetAnErrorEventWhenTheStoreGoesAway stops Redis under a
// generation's readers, on each path a stream takes (the hub over
// HTTP/1.1, the handler over HTTP/2, a stream:false request): each gets an
// error it can read, without an event ID to resume past, rather than
// waiting or a silent cut.
func TestReadersGetAnErrorEventWhenTheStoreGoesAway(t *testing.T) {
	for _, tc := range []struct {
		name   string
		http2  bool
		stream bool
	}{{"HTTP/1.1", false, true}, {"HTTP/2", true, true}, {"stream:false", false, false}} {
		t.Run(tc.name, func(t *testing.T) {
			r := testenv.StartRedis(t)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			store, err := redis.New(ctx, redis.Options{URL: r.URL})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { store.Close() })
			m := &stepModel{Tokens: []string{"a", "b"}, Step: make(chan struct{})}
			e := newEnv(t, envOptions{Logs: store, HTTP2: tc.http2, Models: map[string]sluice.Model{"step": m}})
			t.Cleanup(func() { close(m.Step) }) // the model finishes (its appends fail) before the server stops

			if !tc.stream {
				// The request waits on its log; the store goes away under it.
				body := `{"model":"step","stream":false,"messages":[{"role":"user","content":"hi"}]}`
				answered := make(chan *http.Response, 1)
				go func() {
					resp, err := e.Client.Post(e.URL+"/v1/chat/completions", "application/json", strings.NewReader(body))
					if err != nil {
						t.Error(err)
					}
					answered <- resp
				}()
				testenv.Eventually(t, "the generation to start", func() bool { return e.Runner.Running() == 1 })
				r.Stop()
				resp := <-answered
				if resp == nil {
					return
				}
				if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
					t.Fatalf("stream:false with the store gone: %s, Retry-After %q; want 503 with Retry-After", resp.Status, resp.Header.Get("Retry-After"))
				}
				if body := decode[errorBody](t, resp); body.Error.Code == nil || *body.Error.Code != "store_unavailable" {
					t.Fatalf("stream:false with the store gone answered %+v", body.Error)
				}
				return
			}
			resp := e.Post(t, "/v1/chat/completions", chatBody("hi", "model", "step"))
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("chat: %s", resp.Status)
			}
			rd := sse.NewReader(resp.Body)
			if first, err := rd.Next(); err != nil || !first.HasID {
				t.Fatalf("the first event: %+v, %v", first, err)
			}
			r.Stop()
			var last sse.Event
			for {
				ev, err := rd.Next()
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				last = ev
			}
			if !strings.Contains(last.Data, `"code":"store_unavailable"`) || last.HasID {
				t.Fatalf("the stream ended with %+v; want the store_unavailable error with no ID of its own", last)
			}
		})
	}
}
