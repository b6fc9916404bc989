package api_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/sluice-dev/sluice"
	"github.com/sluice-dev/sluice/internal/testenv"
	"github.com/sluice-dev/sluice/memory"
)

// TestResumeAfterRestartSaysThePlaceIsGone resumes a topic on a fresh
// server (a restart: a new store) with IDs the first one issued, and with
// a plain ID as round 1 issued them: each time 200, a sluice.gap saying
// the place is gone, then every event the new server keeps. The old ID
// "2" and the new server's third event would have skipped the first two.
func TestResumeAfterRestartSaysThePlaceIsGone(t *testing.T) {
	first := newEnv(t, envOptions{})
	old := []string{publish(t, first, "room", map[string]any{"data": "a"}), publish(t, first, "room", map[string]any{"data": "b"})}
	gen := startStream(t, first, "short")

	second := newEnv(t, envOptions{})
	var ids []string
	for _, d := range []string{"x", "y", "z"} {
		ids = append(ids, publish(t, second, "room", map[string]any{"data": d}))
	}
	for _, tt := range []struct{ name, path, header string }{
		{"the old server's last ID", "/v1/topics/room/events", old[1]},
		{"the old server's first ID", "/v1/topics/room/events", old[0]},
		{"a round-1 ID", "/v1/topics/room/events", "2"},
		{"the old ID by query", "/v1/topics/room/events?last_event_id=" + old[1], ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var header []string
			if tt.header != "" {
				header = []string{"Last-Event-ID", tt.header}
			}
			resp, rd := subscribe(t, second, tt.path, header...) // fails unless 200
			defer resp.Body.Close()
			gap := next(t, rd)
			var g sluice.Gap
			if gap.Name != sluice.GapEvent || json.Unmarshal([]byte(gap.Data), &g) != nil || g.Reason != sluice.GapReplaced || g.Message == "" {
				t.Fatalf("first event %+v, want a sluice.gap saying the place is gone", gap)
			}
			for i, d := range []string{"x", "y", "z"} {
				if ev := next(t, rd); ev.Data != d || ev.ID != ids[i] {
					t.Fatalf("event %d: %+v, want %s under %s", i, ev, d, ids[i])
				}
			}
			// Resuming after the gap's own ID reads everything, with no gap.
			again, rd2 := subscribe(t, second, "/v1/topics/room/events", "Last-Event-ID", gap.ID)
			defer again.Body.Close()
			if ev := next(t, rd2); ev.Data != "x" {
				t.Fatalf("after the gap's ID: %+v, want x", ev)
			}
		})
	}
	// A generation's log is gone with its server: 404, as before.
	if resp := second.Get(t, "/v1/streams/"+gen); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("a stream of the old server: %s, want 404", resp.Status)
	}
}

func TestOneTopicPastMaxTopicsIsRefusedWith503(t *testing.T) {
	e := newEnv(t, envOptions{Store: memory.Options{MaxTopics: 3}})
	for i := range 3 {
		publish(t, e, fmt.Sprint("t", i), map[string]any{"data": "x"})
	}
	for _, resp := range []*http.Response{
		e.Post(t, "/v1/topics/t3/events", map[string]any{"data": "x"}),
		e.Get(t, "/v1/topics/t3/events"),
	} {
		if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
			t.Fatalf("%s %s: %s, Retry-After %q; want 503 with Retry-After", resp.Request.Method, resp.Request.URL.Path,
				resp.Status, resp.Header.Get("Retry-After"))
		}
		if eb := decode[errorBody](t, resp); eb.Error.Code == nil || *eb.Error.Code != "too_many_topics" {
			t.Fatalf("error %+v", eb.Error)
		}
	}
	publish(t, e, "t0", map[string]any{"data": "a topic that exists takes more"})
	if n, _, _, _ := e.Memory.Topics(); n != 3 {
		t.Fatalf("%d topics, want 3", n)
	}
}

// TestASubscribedTopicOutlivesItsRetention holds a subscription, through
// the hub (HTTP/1.1) and through the handler's own reads (HTTP/2), while
// four unused topics are forgotten one after the other: the subscribed one
// is not, and what is published to it next still reaches the subscriber.
func TestASubscribedTopicOutlivesItsRetention(t *testing.T) {
	for _, h2 := range []bool{false, true} {
		t.Run(fmt.Sprint("HTTP/2 ", h2), func(t *testing.T) {
			e := newEnv(t, envOptions{Retention: 50 * time.Millisecond, HTTP2: h2})
			resp, rd := subscribe(t, e, "/v1/topics/kept/events")
			defer resp.Body.Close()
			publish(t, e, "kept", map[string]any{"data": "first"})
			if ev := next(t, rd); ev.Data != "first" {
				t.Fatalf("got %+v", ev)
			}
			for i := range 4 {
				publish(t, e, fmt.Sprint("unused", i), map[string]any{"data": "w"})
				testenv.Eventually(t, "an unused topic to be forgotten", func() bool { n, _, _, _ := e.Memory.Topics(); return n == 1 })
			}
			if _, _, forgotten, _ := e.Memory.Topics(); forgotten != 4 {
				t.Fatalf("%d topics forgotten, want only the 4 unused", forgotten)
			}
			publish(t, e, "kept", map[string]any{"data": "second"})
			if ev := next(t, rd); ev.Data != "second" {
				t.Fatalf("got %+v", ev)
			}
		})
	}
}

// TestATopicTakesAnyNumberOfEventNames publishes 300 distinct event names
// to one topic: a topic forgets the names of events it no longer keeps
// rather than refuse new ones for good.
func TestATopicTakesAnyNumberOfEventNames(t *testing.T) {
	e := newEnv(t, envOptions{})
	for i := range 300 {
		publish(t, e, "names", map[string]any{"event": fmt.Sprint("name", i), "data": fmt.Sprint(i)}) // fails unless 201
	}
	resp, rd := subscribe(t, e, "/v1/topics/names/events?from=start")
	defer resp.Body.Close()
	for {
		ev := next(t, rd)
		if ev.Name != "name"+ev.Data {
			t.Fatalf("event %+v has another's name", ev)
		}
		if ev.Data == "299" {
			break
		}
	}
}
