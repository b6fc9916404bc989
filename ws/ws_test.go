package ws_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/sluice-dev/sluice"
	"github.com/sluice-dev/sluice/admit"
	"github.com/sluice-dev/sluice/internal/testenv"
	"github.com/sluice-dev/sluice/ws"
)

func TestChatOverWebSocketMatchesSSE(t *testing.T) {
	e := newEnv(t, fast)
	sseEvents := e.sseChat(t, chatBody("same prompt, two transports"))
	var sseData []string
	for _, ev := range sseEvents {
		sseData = append(sseData, ev.Data)
	}
	wantText, wantLast := text(t, sseData)

	c := e.dial(t)
	c.send(map[string]any{"type": "chat.start", "id": "r1", "body": chatBody("same prompt, two transports")})
	started := c.expect("started")
	if started.ID != "r1" || started.Stream == "" {
		t.Fatalf("started frame %+v", started)
	}
	frames := c.untilEnd(started.Stream)
	gotText, gotLast := text(t, datas(frames))
	if gotText != wantText || gotLast != wantLast || wantLast != "[DONE]" {
		t.Fatalf("texts differ\n  ws %q (last %q)\n sse %q (last %q)", gotText, gotLast, wantText, wantLast)
	}
	if len(frames) != len(sseEvents) {
		t.Fatalf("%d frames over WebSocket, %d events over SSE", len(frames), len(sseEvents))
	}
	if end := frames[len(frames)-1].End; end != "done" {
		t.Fatalf("last frame end = %q, want done", end)
	}
	// The stream is the same log over SSE too, with the same IDs.
	resp, err := http.Get(e.URL + "/v1/streams/" + started.Stream)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		t.Fatalf("attach over SSE: %s", resp.Status)
	}
	same := testenv.Events(t, resp, -1)
	if len(same) != len(frames) {
		t.Fatalf("%d frames over WebSocket, %d events of the same stream over SSE", len(frames), len(same))
	}
	for i, f := range frames {
		if f.ID != same[i].ID {
			t.Fatalf("event %d: id %q over WebSocket, %q over SSE", i, f.ID, same[i].ID)
		}
	}
}

// TestResumeAfterDroppedConnection reads part of a stream, drops the
// connection, attaches on a new one from the last event ID and checks that
// the joined text is the uninterrupted one, with no event lost or repeated.
func TestResumeAfterDroppedConnection(t *testing.T) {
	e := newEnv(t, fast)
	c := e.dial(t)
	c.send(map[string]any{"type": "chat.start", "body": chatBody("resume me")})
	whole := c.untilEnd(c.expect("started").Stream)
	wantText, _ := text(t, datas(whole))

	for _, cut := range []int{1, 2, 7, len(whole) / 2, len(whole) - 1} {
		c := e.dial(t)
		c.send(map[string]any{"type": "chat.start", "body": chatBody("resume me")})
		id := c.expect("started").Stream
		var part []frame
		for range cut {
			part = append(part, c.next())
		}
		c.c.CloseNow() // the connection drops mid-answer

		c2 := e.dial(t)
		c2.send(map[string]any{"type": "stream.attach", "id": "again", "stream": id, "last_event_id": part[len(part)-1].ID})
		if f := c2.expect("subscribed"); f.ID != "again" || f.Stream != id {
			t.Fatalf("cut %d: subscribed frame %+v", cut, f)
		}
		joined := append(part, c2.untilEnd(id)...)
		got, last := text(t, datas(joined))
		if got != wantText || last != "[DONE]" {
			t.Fatalf("cut %d: joined text differs (last %q)\n got %q\nwant %q", cut, last, got, wantText)
		}
		if len(joined) != len(whole) {
			t.Fatalf("cut %d: %d events joined, want %d", cut, len(joined), len(whole))
		}
		for i := 1; i < len(joined); i++ {
			if joined[i].ID == joined[i-1].ID {
				t.Fatalf("cut %d: event %s repeated", cut, joined[i].ID)
			}
		}
		// Past the end, an attach says so rather than waiting.
		c2.send(map[string]any{"type": "stream.attach", "stream": id, "last_event_id": joined[len(joined)-1].ID})
		if f := c2.expect("unsubscribed"); f.Reason != "ended" {
			t.Fatalf("attach past the end: %+v", f)
		}
	}
}

func TestTopicFansOutAndReplaysToLateJoiners(t *testing.T) {
	e := newEnv(t, fast)
	a, b := e.dial(t), e.dial(t)
	for _, c := range []*client{a, b} {
		c.send(map[string]any{"type": "topic.subscribe", "id": "s", "topic": "room"})
		if f := c.expect("subscribed"); f.Topic != "room" || f.ID != "s" {
			t.Fatalf("subscribed frame %+v", f)
		}
	}
	pub := e.dial(t)
	pub.send(map[string]any{"type": "topic.publish", "id": "p1", "topic": "room", "data": "hello"})
	p1 := pub.expect("published")
	pub.send(map[string]any{"type": "topic.publish", "id": "p2", "topic": "room", "event": "joined", "data": map[string]any{"user": "ann", "n": 1}})
	p2 := pub.expect("published")
	// HTTP publishers reach WebSocket subscribers: one topic, one log.
	resp, err := http.Post(e.URL+"/v1/topics/room/events", "application/json", strings.NewReader(`{"data":"multi\nline"}`))
	if err != nil {
		t.Fatal(err)
	}
	var p3 struct{ ID string }
	err = json.NewDecoder(resp.Body).Decode(&p3)
	resp.Body.Close()
	if err != nil || p3.ID == "" {
		t.Fatalf("HTTP publish: %v, %+v", err, p3)
	}

	want := []frame{
		{Type: "event", Topic: "room", ID: p1.EventID, Data: "hello"},
		{Type: "event", Topic: "room", ID: p2.EventID, Event: "joined", Data: `{"n":1,"user":"ann"}`},
		{Type: "event", Topic: "room", ID: p3.ID, Data: "multi\nline"},
	}
	for _, c := range []*client{a, b} {
		for i, w := range want {
			if got := c.next(); got.Type != w.Type || got.Topic != w.Topic || got.ID != w.ID || got.Event != w.Event || got.Data != w.Data {
				t.Fatalf("event %d: got %+v, want %+v", i, got, w)
			}
		}
	}

	late := e.dial(t)
	late.send(map[string]any{"type": "topic.subscribe", "topic": "room", "from": "start"})
	late.expect("subscribed")
	for i, w := range want {
		if got := late.next(); got.ID != w.ID || got.Data != w.Data {
			t.Fatalf("replay %d: got %+v, want %+v", i, got, w)
		}
	}
	resumer := e.dial(t)
	resumer.send(map[string]any{"type": "topic.subscribe", "topic": "room", "last_event_id": p1.EventID})
	resumer.expect("subscribed")
	if got := resumer.next(); got.ID != p2.EventID {
		t.Fatalf("resume after %s: got %+v", p1.EventID, got)
	}

	// Unsubscribing is answered, and no event of it follows.
	a.send(map[string]any{"type": "unsubscribe", "id": "u", "topic": "room"})
	if f := a.expect("unsubscribed"); f.ID != "u" || f.Topic != "room" {
		t.Fatalf("unsubscribed frame %+v", f)
	}
	pub.send(map[string]any{"type": "topic.publish", "topic": "room", "data": "after"})
	pub.expect("published")
	a.send(map[string]any{"type": "topic.publish", "id": "marker", "topic": "other", "data": "x"})
	if f := a.next(); f.Type != "published" || f.ID != "marker" {
		t.Fatalf("after unsubscribing, got %+v", f)
	}
}

func TestCancelStopsTheGenerationForEveryReader(t *testing.T) {
	step := &stepModel{Tokens: strings.Fields("one two three four"), Step: make(chan struct{})}
	e := newEnv(t, envOptions{models: map[string]sluice.Model{"step": step}})
	reader := e.dial(t)
	reader.send(map[string]any{"type": "chat.start", "body": chatBody("x", "model", "step")})
	id := reader.expect("started").Stream
	step.Step <- struct{}{}
	reader.next() // role
	reader.next() // "one"

	other := e.dial(t)
	other.send(map[string]any{"type": "stream.cancel", "id": "c1", "stream": id})
	if f := other.expect("cancelled"); f.ID != "c1" || f.Stream != id || f.Status != "cancelled" {
		t.Fatalf("cancelled frame %+v", f)
	}
	last := reader.next()
	if last.End != "cancelled" || !strings.Contains(last.Data, `"code":"cancelled"`) {
		t.Fatalf("last frame %+v, want the cancellation error event", last)
	}
	if !errors.Is(step.StoppedBy(), context.Canceled) {
		t.Fatalf("model stopped by %v", step.StoppedBy())
	}
	// Cancelling an ended stream reports how it ended.
	other.send(map[string]any{"type": "stream.cancel", "stream": id})
	if f := other.expect("cancelled"); f.Status != "cancelled" {
		t.Fatalf("second cancel: %+v", f)
	}
}

func TestClosingTheConnectionCancelsWhenAsked(t *testing.T) {
	step := &stepModel{Tokens: strings.Fields("one two"), Step: make(chan struct{})}
	e := newEnv(t, envOptions{models: map[string]sluice.Model{"step": step}})
	c := e.dial(t)
	c.send(map[string]any{"type": "chat.start", "cancel_on_close": true, "body": chatBody("x", "model", "step")})
	id := c.expect("started").Stream
	c.next() // role
	c.c.Close(websocket.StatusNormalClosure, "bye")
	testenv.Eventually(t, "the generation to stop", func() bool { return step.StoppedBy() != nil })

	c2 := e.dial(t)
	c2.send(map[string]any{"type": "stream.attach", "stream": id})
	c2.expect("subscribed")
	fs := c2.untilEnd(id)
	if fs[len(fs)-1].End != "cancelled" {
		t.Fatalf("stream ended %q", fs[len(fs)-1].End)
	}
}

func TestBadInputGetsAnErrorAndTheConnectionSurvives(t *testing.T) {
	e := newEnv(t, fast)
	c := e.dial(t)
	cases := []struct {
		name      string
		msg       any
		code      string
		param     string
		messageIn string
	}{
		{"malformed JSON", `{"type":`, "invalid_json", "", "parse"},
		{"not an object", `[1,2]`, "invalid_json", "", ""},
		{"wrong field type", `{"type":"topic.publish","topic":7}`, "invalid_type", "topic", ""},
		{"no type", `{"id":"x"}`, "missing_required_parameter", "type", ""},
		{"unknown type", map[string]any{"type": "launch.rockets", "id": "u1"}, "unknown_type", "type", "launch.rockets"},
		{"unknown stream", map[string]any{"type": "stream.attach", "stream": "nope"}, "not_found", "", "nope"},
		{"cancel unknown stream", map[string]any{"type": "stream.cancel", "stream": "nope"}, "not_found", "", ""},
		{"attach without stream", map[string]any{"type": "stream.attach"}, "missing_required_parameter", "stream", ""},
		{"chat without body", map[string]any{"type": "chat.start"}, "missing_required_parameter", "body", ""},
		{"chat without model", map[string]any{"type": "chat.start", "body": map[string]any{"messages": []any{map[string]any{"role": "user", "content": "hi"}}}}, "missing_required_parameter", "model", ""},
		{"chat with unknown model", map[string]any{"type": "chat.start", "body": chatBody("hi", "model", "gpt-nope")}, "model_not_found", "model", "gpt-nope"},
		{"chat with empty messages", map[string]any{"type": "chat.start", "body": map[string]any{"model": "demo", "messages": []any{}}}, "empty_array", "messages", ""},
		{"bad topic name", map[string]any{"type": "topic.subscribe", "topic": "../etc"}, "invalid_topic", "topic", ""},
		{"bad from", map[string]any{"type": "topic.subscribe", "topic": "t", "from": "yesterday"}, "invalid_value", "from", ""},
		{"bad event id", map[string]any{"type": "topic.subscribe", "topic": "t", "last_event_id": "not-an-id"}, "invalid_event_id", "last_event_id", ""},
		{"publish without data", map[string]any{"type": "topic.publish", "topic": "t"}, "missing_required_parameter", "data", ""},
		{"unsubscribe from nothing", map[string]any{"type": "unsubscribe", "topic": "t"}, "not_subscribed", "", ""},
	}
	for _, tc := range cases {
		c.send(tc.msg)
		f := c.expect("error")
		if f.Error == nil || f.Error.Code == nil || *f.Error.Code != tc.code {
			t.Errorf("%s: error %+v, want code %q", tc.name, f.Error, tc.code)
			continue
		}
		if tc.param != "" && (f.Error.Param == nil || *f.Error.Param != tc.param) {
			t.Errorf("%s: param %v, want %q", tc.name, f.Error.Param, tc.param)
		}
		if !strings.Contains(f.Error.Message, tc.messageIn) || f.Error.Type == "" {
			t.Errorf("%s: error %+v", tc.name, *f.Error)
		}
	}
	// A binary frame is refused too.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.c.Write(ctx, websocket.MessageBinary, []byte{1, 2, 3}); err != nil {
		t.Fatal(err)
	}
	if f := c.expect("error"); *f.Error.Code != "invalid_frame" {
		t.Fatalf("binary frame: %+v", f.Error)
	}
	// Errors echo the request ID.
	c.send(map[string]any{"type": "stream.attach", "id": "mine", "stream": "nope"})
	if f := c.expect("error"); f.ID != "mine" || f.Stream != "nope" {
		t.Fatalf("error frame %+v does not name its request", f)
	}
	// The connection still works.
	c.send(map[string]any{"type": "chat.start", "body": chatBody("still here")})
	fs := c.untilEnd(c.expect("started").Stream)
	if fs[len(fs)-1].Data != "[DONE]" {
		t.Fatalf("chat after errors ended with %q", fs[len(fs)-1].Data)
	}
}

func TestSubscriptionLimits(t *testing.T) {
	e := newEnv(t, envOptions{ws: ws.Options{MaxSubscriptions: 2}})
	c := e.dial(t)
	c.send(map[string]any{"type": "topic.subscribe", "topic": "a"})
	c.expect("subscribed")
	c.send(map[string]any{"type": "topic.subscribe", "topic": "a"})
	if f := c.expect("error"); *f.Error.Code != "already_subscribed" {
		t.Fatalf("double subscribe: %+v", f.Error)
	}
	c.send(map[string]any{"type": "topic.subscribe", "topic": "b"})
	c.expect("subscribed")
	c.send(map[string]any{"type": "topic.subscribe", "topic": "c"})
	if f := c.expect("error"); *f.Error.Code != "too_many_subscriptions" {
		t.Fatalf("third subscribe: %+v", f.Error)
	}
}

func TestOversizedMessageClosesWith1009(t *testing.T) {
	e := newEnv(t, envOptions{ws: ws.Options{MaxMessageBytes: 1024}})
	c := e.dial(t)
	c.send(map[string]any{"type": "topic.publish", "topic": "t", "data": strings.Repeat("x", 4096)})
	_, err := c.read()
	if got := websocket.CloseStatus(err); got != websocket.StatusMessageTooBig {
		t.Fatalf("close status %v (%v), want 1009", got, err)
	}
}

// TestSlowReaderIsCutOff fills a topic with more than the socket buffers
// and the send buffer hold, subscribes from the start and reads nothing:
// the server cuts the connection off with 1008 and a reason, instead of
// queueing more.
func TestSlowReaderIsCutOff(t *testing.T) {
	e := newEnv(t, envOptions{ws: ws.Options{SendBuffer: 64 << 10, WriteTimeout: 500 * time.Millisecond}, admit: admit.Config{TopicMaxLen: 4000}})
	l, err := e.store.Open(context.Background(), "topic/flood", true, sluice.LogOptions{MaxLen: 4000, Ring: true})
	if err != nil {
		t.Fatal(err)
	}
	data := []byte(strings.Repeat("x", 16<<10))
	for range 4000 { // 64 MB: far more than loopback socket buffers take
		if _, err := l.Append(context.Background(), sluice.Event{Data: data}); err != nil {
			t.Fatal(err)
		}
	}
	slow := e.dial(t)
	slow.send(map[string]any{"type": "topic.subscribe", "topic": "flood", "from": "start"})
	testenv.Eventually(t, "the slow reader to be cut off", func() bool { return e.ws.Stats().SlowCutoffs == 1 })

	// Reading now, it gets what was sent before the cut, then the close.
	n := 0
	for {
		_, err := slow.read()
		if err != nil {
			var ce websocket.CloseError
			if !errors.As(err, &ce) || ce.Code != websocket.StatusPolicyViolation || !strings.Contains(ce.Reason, "too slow") {
				t.Fatalf("after %d frames: %v, want close 1008 \"too slow\"", n, err)
			}
			break
		}
		n++
	}
	if n < 2 || n > 3000 {
		t.Fatalf("read %d frames before the cut", n)
	}
	// Others are not disturbed.
	fine := e.dial(t)
	fine.send(map[string]any{"type": "topic.publish", "topic": "flood", "data": "x"})
	fine.expect("published")
}

func TestShutdownEndsTopicsAndClosesWith1001(t *testing.T) {
	step := &stepModel{Tokens: strings.Fields("one"), Step: make(chan struct{})}
	e := newEnv(t, envOptions{models: map[string]sluice.Model{"step": step}})
	c := e.dial(t)
	c.send(map[string]any{"type": "topic.subscribe", "topic": "room"})
	c.expect("subscribed")
	c.send(map[string]any{"type": "chat.start", "body": chatBody("x", "model", "step")})
	id := c.expect("started").Stream
	c.next() // role

	e.stop()
	if f := c.expect("unsubscribed"); f.Topic != "room" || !strings.Contains(f.Reason, "shutting down") {
		t.Fatalf("topic end: %+v", f)
	}
	// New subscriptions are refused while the generation goes on.
	c.send(map[string]any{"type": "topic.subscribe", "topic": "room"})
	if f := c.expect("error"); *f.Error.Code != "server_shutting_down" {
		t.Fatalf("subscribe while draining: %+v", f.Error)
	}
	step.Step <- struct{}{}
	fs := c.untilEnd(id)
	if fs[len(fs)-1].Data != "[DONE]" {
		t.Fatalf("generation ended with %q", fs[len(fs)-1].Data)
	}
	_, err := c.read()
	if got := websocket.CloseStatus(err); got != websocket.StatusGoingAway {
		t.Fatalf("close status %v (%v), want 1001", got, err)
	}
	resp, err := http.Get(e.URL + "/ws")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("new connection while draining: %s", resp.Status)
	}
}

// TestUnansweredPingsCloseTheConnection is the other side of the heartbeat:
// a client that answers no ping (it never reads) is closed once a ping has
// gone unanswered for the write timeout.
func TestUnansweredPingsCloseTheConnection(t *testing.T) {
	e := newEnv(t, envOptions{ws: ws.Options{Heartbeat: 10 * time.Millisecond, WriteTimeout: 200 * time.Millisecond}})
	c := e.dial(t)
	c.send(map[string]any{"type": "topic.subscribe", "topic": "quiet"})
	c.expect("subscribed") // the connection is served (and counted); from now on the client reads nothing
	testenv.Eventually(t, "the connection to be closed", func() bool { return e.ws.Stats().Connections == 0 })
}
