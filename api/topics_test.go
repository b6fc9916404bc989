package api_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/sluice-dev/sluice/admit"
	"github.com/sluice-dev/sluice/api"
	"github.com/sluice-dev/sluice/sse"
)

func publish(t *testing.T, e *env, topic string, body any) string {
	t.Helper()
	resp := e.Post(t, "/v1/topics/"+topic+"/events", body)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("publish: %s", resp.Status)
	}
	return decode[struct{ ID string }](t, resp).ID
}

// subscribe opens a subscription and waits until it is live: its headers
// have come, and the server takes its starting point before sending them.
func subscribe(t *testing.T, e *env, path string, header ...string) (*http.Response, *sse.Reader) {
	t.Helper()
	resp := e.Get(t, path, header...)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("subscribe %s: %s %q", path, resp.Status, resp.Header.Get("Content-Type"))
	}
	return resp, sse.NewReader(resp.Body)
}

func next(t *testing.T, rd *sse.Reader) sse.Event {
	t.Helper()
	ev, err := rd.Next()
	if err != nil {
		t.Fatalf("next event: %v", err)
	}
	return ev
}

func TestTopicFansOutAndReplaysToLateJoiners(t *testing.T) {
	e := newEnv(t, envOptions{})
	before := publish(t, e, "room", map[string]any{"data": "history"})

	a, ra := subscribe(t, e, "/v1/topics/room/events")
	defer a.Body.Close()
	b, rb := subscribe(t, e, "/v1/topics/room/events")
	defer b.Body.Close()
	// The retry: line comes first; WHATWG parsers do not dispatch it, so
	// wait for the server to be ready by publishing only after both are in.
	ids := []string{
		publish(t, e, "room", map[string]any{"data": "hello"}),
		publish(t, e, "room", map[string]any{"event": "joined", "data": map[string]any{"user": "ann", "n": 1}}),
		publish(t, e, "room", map[string]any{"data": "multi\nline"}),
	}
	want := []sse.Event{
		{ID: ids[0], Data: "hello"},
		{ID: ids[1], Name: "joined", Data: `{"n":1,"user":"ann"}`},
		{ID: ids[2], Data: "multi\nline"},
	}
	for name, rd := range map[string]*sse.Reader{"a": ra, "b": rb} {
		for i, w := range want {
			got := next(t, rd)
			if got.ID != w.ID || got.Name != w.Name || got.Data != w.Data {
				t.Errorf("subscriber %s, event %d: got %+v, want %+v", name, i, got, w)
			}
		}
	}

	// A late joiner resumes from an ID it saw, or replays all that is kept.
	c, rc := subscribe(t, e, "/v1/topics/room/events", "Last-Event-ID", ids[0])
	defer c.Body.Close()
	for i, w := range want[1:] {
		if got := next(t, rc); got.ID != w.ID || got.Data != w.Data {
			t.Errorf("late joiner event %d: got %+v, want %+v", i, got, w)
		}
	}
	d, rd := subscribe(t, e, "/v1/topics/room/events?from=start")
	defer d.Body.Close()
	if got := next(t, rd); got.ID != before || got.Data != "history" {
		t.Errorf("replay from start began with %+v", got)
	}
}

func TestTopicKeepsOnlyItsBound(t *testing.T) {
	e := newEnv(t, envOptions{Admit: admit.Config{TopicMaxLen: 3}})
	for i := range 5 {
		publish(t, e, "small", map[string]any{"data": fmt.Sprint(i)})
	}
	resp, rd := subscribe(t, e, "/v1/topics/small/events?from=start")
	defer resp.Body.Close()
	if got := next(t, rd); got.Data != "2" {
		t.Fatalf("oldest replayed %q, want 2", got.Data)
	}
}

func TestSeedBroadcastDemo(t *testing.T) {
	e := newEnv(t, envOptions{})
	a, ra := subscribe(t, e, "/events")
	defer a.Body.Close()
	b, rb := subscribe(t, e, "/v1/topics/default/events")
	defer b.Body.Close()
	resp := e.Post(t, "/send-message", map[string]string{"message": "hi all"})
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("send-message: %s", resp.Status)
	}
	resp.Body.Close()
	for _, rd := range []*sse.Reader{ra, rb} {
		if got := next(t, rd); got.Data != "hi all" {
			t.Fatalf("got %+v", got)
		}
	}
}

func TestPublishErrors(t *testing.T) {
	e := newEnv(t, envOptions{})
	tests := []struct {
		path, body string
		status     int
	}{
		{"/v1/topics/room/events", `{"data":`, 400},
		{"/v1/topics/room/events", `{"event":"x"}`, 400},
		{"/v1/topics/room/events", `{"data": 1, "event": 5}`, 400},
		{"/v1/topics/bad%20name/events", `{"data":"x"}`, 400},
		{"/send-message", `{"msg":"x"}`, 400},
		{"/send-message", `{"message": 3}`, 400},
	}
	for _, tt := range tests {
		resp := e.Post(t, tt.path, tt.body)
		if resp.StatusCode != tt.status {
			t.Errorf("POST %s %s: %s, want %d", tt.path, tt.body, resp.Status, tt.status)
		}
		var eb errorBody
		if err := json.NewDecoder(resp.Body).Decode(&eb); err != nil || eb.Error.Message == "" {
			t.Errorf("POST %s %s: no error object (%v)", tt.path, tt.body, err)
		}
		resp.Body.Close()
	}
}

func TestResumeFromTrimmedIDSaysWhatWasMissed(t *testing.T) {
	e := newEnv(t, envOptions{Admit: admit.Config{TopicMaxLen: 3}})
	first := publish(t, e, "small", map[string]any{"data": "0"})
	for i := 1; i < 6; i++ {
		publish(t, e, "small", map[string]any{"data": fmt.Sprint(i)})
	}
	resp, rd := subscribe(t, e, "/v1/topics/small/events", "Last-Event-ID", first)
	defer resp.Body.Close()
	gap := next(t, rd)
	if gap.Name != "sluice.gap" || !strings.Contains(gap.Data, `"missed":2`) {
		t.Fatalf("first event %+v, want a sluice.gap of 2", gap)
	}
	if ev := next(t, rd); ev.Data != "3" {
		t.Fatalf("after the gap: %+v", ev)
	}
}

// A subscription names the event it starts after, so that a client cut
// before its first event can resume from there and miss nothing.
func TestSubscriptionNamesTheEventItStartsAfter(t *testing.T) {
	e := newEnv(t, envOptions{})
	empty, _ := subscribe(t, e, "/v1/topics/quiet/events")
	defer empty.Body.Close()
	first := publish(t, e, "room", map[string]any{"data": "one"})
	second := publish(t, e, "room", map[string]any{"data": "two"})
	tests := []struct {
		name, path string
		header     []string
		want       string
	}{
		{"new events only", "/v1/topics/room/events", nil, second},
		{"from the start", "/v1/topics/room/events?from=start", nil, ""},
		{"after an ID", "/v1/topics/room/events", []string{"Last-Event-ID", first}, first},
	}
	for _, tt := range tests {
		resp, rd := subscribe(t, e, tt.path, tt.header...)
		if got := resp.Header.Values(api.HeaderLastEventID); len(got) != 1 || got[0] != tt.want {
			t.Errorf("%s: %s %q, want %q", tt.name, api.HeaderLastEventID, got, tt.want)
		}
		if tt.want == first {
			if ev := next(t, rd); ev.ID != second {
				t.Errorf("%s: the first event is %q, want %q", tt.name, ev.ID, second)
			}
		}
		resp.Body.Close()
	}
	// A topic with no event yet starts at its start: "" again, present.
	if got := empty.Header.Values(api.HeaderLastEventID); len(got) != 1 || got[0] != "" {
		t.Errorf("an empty topic: %s %q, want one empty value", api.HeaderLastEventID, got)
	}
}
