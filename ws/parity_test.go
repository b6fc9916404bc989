package ws_test

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/sluice-dev/sluice"
	"github.com/sluice-dev/sluice/admit"
	"github.com/sluice-dev/sluice/api"
	"github.com/sluice-dev/sluice/internal/testenv"
	"github.com/sluice-dev/sluice/sse"
	"github.com/sluice-dev/sluice/ws"
)

// sseSubscribe opens an SSE subscription to a topic, live once its headers
// have come (the server takes its starting point before sending them).
func (e *env) sseSubscribe(t *testing.T, topic string, header ...string) *sse.Reader {
	t.Helper()
	resp := testenv.Do(t, http.DefaultClient, "GET", e.URL+"/v1/topics/"+topic+"/events", nil, header...)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("subscribe over SSE: %s", resp.Status)
	}
	return sse.NewReader(resp.Body)
}

// topicExists reports whether the store holds the topic, without creating
// it.
func (e *env) topicExists(t *testing.T, topic string) bool {
	t.Helper()
	_, err := e.store.Open(context.Background(), "topic/"+topic, false, sluice.LogOptions{})
	switch sluice.ErrorCode(err) {
	case "":
		return true
	case sluice.ENOTFOUND:
		return false
	}
	t.Fatalf("opening topic %s: %v", topic, err)
	return false
}

// TestTopicDataIsTheSameOnBothTransports publishes data with every kind of
// line break over both transports: an SSE subscriber and a /ws subscriber
// receive the same IDs, names and data, with CR LF and lone CR stored as
// LF (SSE cannot carry a CR: its clients read every line break as LF).
func TestTopicDataIsTheSameOnBothTransports(t *testing.T) {
	e := newEnv(t, fast)
	rd := e.sseSubscribe(t, "room")
	c := e.dial(t)
	c.send(map[string]any{"type": "topic.subscribe", "topic": "room"})
	c.expect("subscribed")

	const data, want = "a\rb\r\nc\nd", "a\nb\nc\nd"
	resp := testenv.Do(t, http.DefaultClient, "POST", e.URL+"/v1/topics/room/events", map[string]any{"event": "note", "data": data})
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("publish over HTTP: %s", resp.Status)
	}
	pub := e.dial(t)
	pub.send(map[string]any{"type": "topic.publish", "id": "p", "topic": "room", "event": "note", "data": data})
	pub.expect("published")

	for i := range 2 {
		ev, err := rd.Next()
		if err != nil {
			t.Fatal(err)
		}
		f := c.expect("event")
		if ev.Data != want || f.Data != want || ev.Name != "note" || f.Event != "note" || ev.ID != f.ID {
			t.Fatalf("event %d: SSE %+v, /ws %+v; want data %q named note", i, ev, f, want)
		}
	}
}

// TestRefusedSubscriptionCreatesNoTopic: a subscription refused for want of
// a key, of a stream place or of a subscription place leaves the store as
// it was; an admitted one creates its topic.
func TestRefusedSubscriptionCreatesNoTopic(t *testing.T) {
	keys, err := admit.ParseKeys("ann: " + keyAnn + "\n")
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, envOptions{admit: admit.Config{Keys: keys, PublicTopics: []string{"lobby", "more"},
		Limits: admit.Limits{StreamsPerAddr: 2}}, ws: ws.Options{MaxSubscriptions: 1}})
	ann := []string{"Authorization", "Bearer " + keyAnn}

	// No key, over HTTP and over /ws (which public topics let in).
	if resp := testenv.Do(t, http.DefaultClient, "GET", e.URL+"/v1/topics/secret/events", nil); resp.StatusCode != 401 {
		t.Fatalf("no key over HTTP: %s", resp.Status)
	}
	anon := e.dial(t)
	anon.send(map[string]any{"type": "topic.subscribe", "id": "s", "topic": "secret2"})
	if f := anon.expect("error"); *f.Error.Code != "missing_api_key" {
		t.Fatalf("no key over /ws: %+v", f.Error)
	}
	// The connection holds one of the address's two stream places, an SSE
	// subscription the other; a third stream is refused.
	e.sseSubscribe(t, "first", ann...)
	if resp := testenv.Do(t, http.DefaultClient, "GET", e.URL+"/v1/topics/third/events", nil, ann...); resp.StatusCode != 429 {
		t.Fatalf("a third stream over HTTP: %s", resp.Status)
	}
	anon.send(map[string]any{"type": "topic.subscribe", "id": "l", "topic": "lobby"})
	anon.expect("subscribed")
	anon.send(map[string]any{"type": "topic.subscribe", "id": "m", "topic": "more"})
	if f := anon.expect("error"); *f.Error.Code != "too_many_subscriptions" {
		t.Fatalf("a second subscription on a connection that takes one: %+v", f.Error)
	}

	for topic, want := range map[string]bool{"secret": false, "secret2": false, "third": false, "more": false, "first": true, "lobby": true} {
		if got := e.topicExists(t, topic); got != want {
			t.Errorf("topic %s exists: %v, want %v", topic, got, want)
		}
	}
}

// TestStreamPlacesAreSharedByBothTransports: SSE streams and /ws
// connections from one address draw on one count, and a stream past it is
// refused with the same error over either.
func TestStreamPlacesAreSharedByBothTransports(t *testing.T) {
	e := newEnv(t, envOptions{admit: admit.Config{Limits: admit.Limits{StreamsPerAddr: 2}}})
	e.sseSubscribe(t, "a")
	e.dial(t)
	resp := testenv.Do(t, http.DefaultClient, "GET", e.URL+"/v1/topics/b/events", nil)
	if resp.StatusCode != 429 || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("a third stream over SSE: %s %v", resp.Status, resp.Header)
	}
	overHTTP := jsonOf(t, decodeError(t, resp))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, wsResp, err := websocket.Dial(ctx, e.WSURL, nil)
	if err == nil || wsResp == nil || wsResp.StatusCode != 429 || wsResp.Header.Get("Retry-After") == "" {
		t.Fatalf("a third stream over /ws: %v %v", wsResp, err)
	}
	if overWS := jsonOf(t, decodeError(t, wsResp)); overWS != overHTTP {
		t.Fatalf("refused differently:\n HTTP %s\n  /ws %s", overHTTP, overWS)
	}
}

// TestDebugStatsCountsWebSocketConnections: /debug/stats counts the open
// /ws connections among its streams, and stops counting a closed one.
func TestDebugStatsCountsWebSocketConnections(t *testing.T) {
	e := newEnv(t, fast)
	stats := func() api.Stats {
		resp := testenv.Do(t, http.DefaultClient, "GET", e.URL+"/debug/stats", nil)
		defer resp.Body.Close()
		var st api.Stats
		if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
			t.Fatal(err)
		}
		return st
	}
	e.sseSubscribe(t, "room")
	a, b := e.dial(t), e.dial(t)
	for _, c := range []*client{a, b} { // each connection is served once it answers
		c.send(map[string]any{"type": "topic.subscribe", "id": "s", "topic": "room"})
		c.expect("subscribed")
	}
	// An SSE stream is counted once its reader is handed to the hub, a
	// moment after its response's head has gone.
	testenv.Eventually(t, "2 connections and 1 SSE stream in the stats", func() bool {
		st := stats()
		return st.WebSockets == 2 && st.Streams == 3
	})
	a.c.Close(websocket.StatusNormalClosure, "")
	testenv.Eventually(t, "the closed connection to leave the stats", func() bool {
		st := stats()
		return st.WebSockets == 1 && st.Streams == 2
	})
}
