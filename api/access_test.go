package api_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"testing"

	"github.com/sluice-dev/sluice/admit"
	"github.com/sluice-dev/sluice/api"
	"github.com/sluice-dev/sluice/internal/testenv"
)

// accessLines returns the access log lines of the request with that ID.
func accessLines(logs *testenv.Recorder, id string) []testenv.Record {
	var out []testenv.Record
	for _, r := range logs.Records("request") {
		if r.Attrs["request_id"] == id {
			out = append(out, r)
		}
	}
	return out
}

var freshID = regexp.MustCompile(`^[0-9a-f]{32}$`)

// TestEveryRequestHasAnIDAndOneAccessLine sends a chat with a request ID,
// a request with an ID unfit for logs, and one for an unknown route, over
// HTTP/1.1 (where the hub takes the chat's connection over) and HTTP/2
// (where its handler serves it). Each answer echoes the request's ID or a
// new one, each request gets exactly one access line, a stream's line
// once it has ended with the bytes of the whole stream, and the
// generation's own line carries the ID of the request that started it.
func TestEveryRequestHasAnIDAndOneAccessLine(t *testing.T) {
	keys, err := admit.ParseKeys("ann: " + keyAnn + "\n")
	if err != nil {
		t.Fatal(err)
	}
	for _, h2 := range []bool{false, true} {
		t.Run("http2="+strconv.FormatBool(h2), func(t *testing.T) {
			logs := &testenv.Recorder{}
			e := newEnv(t, envOptions{HTTP2: h2, Logger: logs.Logger(), Admit: admit.Config{Keys: keys}})

			resp := e.Post(t, "/v1/chat/completions", chatBody("hello"), "Authorization", "Bearer "+keyAnn, "X-Request-ID", "client-id.1")
			if got := resp.Header.Get(api.HeaderRequestID); got != "client-id.1" {
				t.Fatalf("X-Request-ID echoed as %q", got)
			}
			body, err := io.ReadAll(resp.Body)
			if err != nil {
				t.Fatal(err)
			}
			var line testenv.Record
			testenv.Eventually(t, "the chat's access line", func() bool {
				lines := accessLines(logs, "client-id.1")
				if len(lines) > 0 {
					line = lines[0]
				}
				return len(lines) > 0
			})
			want := map[string]string{"method": "POST", "route": "POST /v1/chat/completions", "path": "/v1/chat/completions",
				"status": "200", "key": "ann", "stream_id": resp.Header.Get(api.HeaderStreamID)}
			for k, v := range want {
				if line.Attrs[k] != v {
					t.Errorf("access line %s=%q, want %q (%v)", k, line.Attrs[k], v, line.Attrs)
				}
			}
			if n, _ := strconv.Atoi(line.Attrs["bytes"]); n < len(body) {
				t.Errorf("access line counts %d bytes; the client read %d of body alone", n, len(body))
			}
			if line.Attrs["duration"] == "" || line.Attrs["addr"] == "" {
				t.Errorf("access line without duration or client address: %v", line.Attrs)
			}
			var gen []testenv.Record
			for _, r := range logs.Records("generation ended") {
				if r.Attrs["id"] == resp.Header.Get(api.HeaderStreamID) {
					gen = append(gen, r)
				}
			}
			if len(gen) != 1 || gen[0].Attrs["request_id"] != "client-id.1" || gen[0].Attrs["owner"] != "ann" ||
				gen[0].Attrs["model"] != "demo" || gen[0].Attrs["end"] != "done" || gen[0].Attrs["tokens"] == "0" || gen[0].Attrs["ttft"] == "" {
				t.Errorf("the generation's lines: %v", gen)
			}

			// An ID that could break a log line is replaced.
			models := e.Get(t, "/v1/models", "Authorization", "Bearer "+keyAnn, "X-Request-ID", "two words")
			id := models.Header.Get(api.HeaderRequestID)
			if !freshID.MatchString(id) {
				t.Fatalf("a request ID with a space came back as %q, want a fresh one", id)
			}
			missing := e.Get(t, "/no/such/route", "X-Request-ID", "x")
			if missing.StatusCode != http.StatusNotFound {
				t.Fatalf("unknown route: %s", missing.Status)
			}
			for _, c := range []struct {
				id, route, status string
			}{{id, "GET /v1/models", "200"}, {"x", "", "404"}} {
				lines := accessLines(logs, c.id)
				if len(lines) != 1 || lines[0].Attrs["route"] != c.route || lines[0].Attrs["status"] != c.status {
					t.Errorf("access lines of %s: %v, want one with route %q, status %s", c.id, lines, c.route, c.status)
				}
			}
			if n := len(accessLines(logs, "client-id.1")); n != 1 {
				t.Errorf("the chat has %d access lines, want 1", n)
			}
		})
	}
}

func TestReadyzSaysWhetherTheNodeTakesNewWork(t *testing.T) {
	e := newEnv(t, envOptions{})
	ready := func(want int, status string) {
		t.Helper()
		resp := e.Get(t, "/readyz")
		got := decode[map[string]any](t, resp)
		if resp.StatusCode != want || got["status"] != status {
			t.Fatalf("/readyz: %s %v, want %d %q", resp.Status, got, want, status)
		}
	}
	ready(http.StatusOK, "ready")
	e.API.CheckReady(func(context.Context) error { return errors.New("connection refused") })
	ready(http.StatusServiceUnavailable, "store_unreachable")
	if resp := e.Get(t, "/healthz"); resp.StatusCode != http.StatusOK {
		t.Fatalf("/healthz with the store away: %s; the process is alive", resp.Status)
	}
	e.API.CheckReady(func(context.Context) error { return nil })
	ready(http.StatusOK, "ready")
	e.API.Drain()
	ready(http.StatusServiceUnavailable, "draining")
}
