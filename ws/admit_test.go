package ws_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/sluice-dev/sluice"
	"github.com/sluice-dev/sluice/admit"
	"github.com/sluice-dev/sluice/gen"
	"github.com/sluice-dev/sluice/internal/testenv"
)

const (
	keyAnn = "sk-ann-0123456789abcdef"
	keyBob = "sk-bob-0123456789abcdef"
)

// op is one API operation, as an HTTP request and as the /ws message that
// does the same. "{stream}" in either stands for the case's generation.
type op struct {
	method, path string
	body         any
	msg          map[string]any
}

func chatOp(body map[string]any) op {
	return op{"POST", "/v1/chat/completions", body, map[string]any{"type": "chat.start", "body": body}}
}

func attachOp(id string) op {
	return op{"GET", "/v1/streams/" + id, nil, map[string]any{"type": "stream.attach", "stream": id}}
}

func cancelOp(id string) op {
	return op{"POST", "/v1/streams/" + id + "/cancel", "", map[string]any{"type": "stream.cancel", "stream": id}}
}

func subscribeOp(topic string) op {
	return op{"GET", "/v1/topics/" + url.PathEscape(topic) + "/events", nil, map[string]any{"type": "topic.subscribe", "topic": topic}}
}

func publishOp(topic, event string, data any) op {
	return op{"POST", "/v1/topics/" + url.PathEscape(topic) + "/events", map[string]any{"event": event, "data": data},
		map[string]any{"type": "topic.publish", "topic": topic, "event": event, "data": data}}
}

// messages is a chat body with n user messages.
func messages(n int) map[string]any {
	ms := make([]map[string]any, n)
	for i := range ms {
		ms[i] = map[string]any{"role": "user", "content": "m"}
	}
	return chatBody("", "messages", ms)
}

// admitCase is one admission check: on a fresh server, the operations in
// ok are admitted, then refuse is refused with status and code.
type admitCase struct {
	name   string
	keys   bool     // the server has keys (ann's and bob's)
	public []string // topics readable without a key
	limits admit.Limits
	perKey int    // generations one key may run at once
	key    string // the key the client presents
	// gen, when set, starts a generation of model genModel owned by owner
	// before the operations, out of band (uncharged); {stream} names it.
	gen      bool
	owner    string
	genModel string

	ok     []op
	refuse op
	status int
	code   string
	params [2]string // when set, the param over HTTP and over /ws (they name the field they use)
}

func admitCases() []admitCase {
	tooLongName := strings.Repeat("e", 129)
	return []admitCase{
		{name: "no key", keys: true, refuse: chatOp(chatBody("x")), status: 401, code: "missing_api_key"},
		{name: "wrong key", keys: true, key: "sk-wrong-0123456789", refuse: chatOp(chatBody("x")), status: 401, code: "invalid_api_key"},
		{name: "no key, a topic that is not public", keys: true, public: []string{"lobby"},
			ok: []op{subscribeOp("lobby")}, refuse: subscribeOp("secret"), status: 401, code: "missing_api_key"},
		{name: "no key, publishing to a public topic", keys: true, public: []string{"lobby"},
			refuse: publishOp("lobby", "", "x"), status: 401, code: "missing_api_key"},
		{name: "no key, a chat where topics are public", keys: true, public: []string{"lobby"},
			refuse: chatOp(chatBody("x")), status: 401, code: "missing_api_key"},
		{name: "attach to another key's stream", keys: true, key: keyBob, gen: true, owner: "ann",
			refuse: attachOp("{stream}"), status: 403, code: "stream_of_another_key"},
		{name: "cancel another key's stream", keys: true, key: keyBob, gen: true, owner: "ann",
			refuse: cancelOp("{stream}"), status: 403, code: "stream_of_another_key"},
		{name: "unknown stream", refuse: attachOp("0123456789abcdef"), status: 404, code: sluice.ENOTFOUND},
		{name: "unknown model", refuse: chatOp(chatBody("x", "model", "nope")), status: 404, code: "model_not_found"},
		{name: "max messages +1", limits: admit.Limits{MaxMessages: 2},
			ok: []op{chatOp(messages(2))}, refuse: chatOp(messages(3)), status: 400, code: "too_many_messages"},
		// Content is counted as sent: a string of n characters is n+2 bytes.
		{name: "max prompt bytes +1", limits: admit.Limits{MaxPromptBytes: 100},
			ok:     []op{chatOp(chatBody(strings.Repeat("p", 98)))},
			refuse: chatOp(chatBody(strings.Repeat("p", 99))), status: 400, code: "prompt_too_large"},
		{name: "max_tokens not an integer", refuse: chatOp(chatBody("x", "max_tokens", 1.5)), status: 400, code: "invalid_type"},
		// Every operation is charged: five different ones use up a budget
		// of five, and the sixth is refused.
		{name: "rate limit +1", limits: admit.Limits{RequestsPerMinute: 5}, gen: true,
			ok:     []op{attachOp("{stream}"), cancelOp("{stream}"), chatOp(chatBody("x")), subscribeOp("room"), publishOp("room", "", "x")},
			refuse: publishOp("room", "", "y"), status: 429, code: "rate_limit_exceeded"},
		{name: "rate limit +1, chats", limits: admit.Limits{RequestsPerMinute: 2},
			ok:     []op{chatOp(chatBody("x")), chatOp(chatBody("y"))},
			refuse: chatOp(chatBody("z")), status: 429, code: "rate_limit_exceeded"},
		{name: "generations per key +1", keys: true, key: keyAnn, perKey: 1, gen: true, owner: "ann", genModel: "step",
			refuse: chatOp(chatBody("x")), status: 429, code: "too_many_generations_for_key"},
		{name: "event name with LF", refuse: publishOp("room", "a\nb", "x"), status: 400, code: "invalid_value"},
		{name: "event name with CR", refuse: publishOp("room", "a\rb", "x"), status: 400, code: "invalid_value"},
		{name: "event name with NUL", refuse: publishOp("room", "a\x00b", "x"), status: 400, code: "invalid_value"},
		{name: "event name of 129 characters", ok: []op{publishOp("room", tooLongName[1:], "x")},
			refuse: publishOp("room", tooLongName, "x"), status: 400, code: "invalid_value"},
		{name: "publish without data", refuse: publishOp("room", "", nil), status: 400, code: "missing_required_parameter"},
		{name: "subscribe to a bad topic name", refuse: subscribeOp("-room"), status: 400, code: "invalid_topic",
			params: [2]string{"name", "topic"}},
		{name: "publish to a bad topic name", refuse: publishOp("-room", "", "x"), status: 400, code: "invalid_topic",
			params: [2]string{"name", "topic"}},
	}
}

// TestEveryCheckHoldsOnBothTransports runs every admission check through
// the SSE API and through /ws, each on a fresh server: the same operations
// are admitted, and the same one is then refused with the same error
// object. The HTTP status is the case's; /ws, which has no status, must
// log the refusal with the level, message, status and error that the SSE
// API logs it with. A check that one transport skips fails here.
func TestEveryCheckHoldsOnBothTransports(t *testing.T) {
	for _, tc := range admitCases() {
		t.Run(tc.name, func(t *testing.T) {
			httpErr, httpLog := tc.runHTTP(t)
			wsErr, wsLog := tc.runWS(t)
			if tc.params != [2]string{} {
				for i, got := range []*string{httpErr.Error.Param, wsErr.Error.Param} {
					if got == nil || *got != tc.params[i] {
						t.Errorf("transport %d: param %v, want %q", i, got, tc.params[i])
					}
				}
				httpErr.Error.Param, wsErr.Error.Param = nil, nil
			}
			h, w := jsonOf(t, httpErr), jsonOf(t, wsErr)
			if h != w {
				t.Errorf("refused differently:\n HTTP %s\n  /ws %s", h, w)
			}
			if httpErr.Error.Code == nil || *httpErr.Error.Code != tc.code {
				t.Errorf("code %v, want %q (%s)", httpErr.Error.Code, tc.code, h)
			}
			if httpLog.Level != wsLog.Level || httpLog.Msg != wsLog.Msg ||
				httpLog.Attrs["status"] != wsLog.Attrs["status"] || httpLog.Attrs["err"] != wsLog.Attrs["err"] {
				t.Errorf("logged differently:\n HTTP %+v\n  /ws %+v", httpLog, wsLog)
			}
		})
	}
}

func jsonOf(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// start makes the case's server, starts its generation if it has one, and
// returns the server and the generation's ID.
func (tc admitCase) start(t *testing.T) (*env, *testenv.Recorder, string) {
	t.Helper()
	logs := &testenv.Recorder{}
	o := envOptions{admit: admit.Config{PublicTopics: tc.public, Limits: tc.limits}, perKey: tc.perKey, logs: logs, demo: fast.demo}
	if tc.keys {
		keys, err := admit.ParseKeys("ann: " + keyAnn + "\nbob: " + keyBob + "\n")
		if err != nil {
			t.Fatal(err)
		}
		o.admit.Keys = keys
	}
	step := &stepModel{Tokens: []string{"a"}, Step: make(chan struct{})}
	o.models = map[string]sluice.Model{"step": step}
	e := newEnv(t, o)
	if !tc.gen {
		return e, logs, ""
	}
	name := tc.genModel
	if name == "" {
		name = "demo"
	}
	m, err := e.gate.Models().Lookup(name)
	if err != nil {
		t.Fatal(err)
	}
	req := &sluice.ChatRequest{Model: name, Stream: true, Messages: []sluice.Message{{Role: "user", Content: json.RawMessage(`"hi"`)}}}
	var g *gen.Generation
	if tc.perKey > 0 {
		// Through the gate, so that it holds one of its key's places as a
		// generation started by either transport does (no rate limit here
		// to charge).
		var pass *admit.Pass
		if pass, err = e.gate.Enter(context.Background(), admit.Caller{Key: tc.owner}); err == nil {
			var st *admit.Started
			if st, err = pass.Start(context.Background(), e.runner, req, m); err == nil {
				g = st.Generation
			}
		}
	} else {
		g, err = e.runner.StartFor(tc.owner, req, m)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.runner.Cancel(g.ID) }) // before the server's own cleanup
	return e, logs, g.ID
}

// lastRefusal returns the last refusal that logs hold.
func lastRefusal(t *testing.T, logs *testenv.Recorder) testenv.Record {
	t.Helper()
	recs := logs.Records("request refused", "request failed")
	if len(recs) == 0 {
		t.Fatal("the refusal was not logged")
	}
	return recs[len(recs)-1]
}

func (tc admitCase) runHTTP(t *testing.T) (errorObject, testenv.Record) {
	t.Helper()
	e, logs, id := tc.start(t)
	var header []string
	if tc.key != "" {
		header = []string{"Authorization", "Bearer " + tc.key}
	}
	do := func(o op) *http.Response {
		return testenv.Do(t, http.DefaultClient, o.method, e.URL+strings.ReplaceAll(o.path, "{stream}", id), o.body, header...)
	}
	for i, o := range tc.ok {
		if resp := do(o); resp.StatusCode >= 300 {
			b, _ := io.ReadAll(resp.Body)
			t.Fatalf("HTTP: operation %d (%s %s) refused: %s %s", i, o.method, o.path, resp.Status, b)
		}
	}
	resp := do(tc.refuse)
	if resp.StatusCode != tc.status {
		t.Fatalf("HTTP: %s %s: status %d, want %d", tc.refuse.method, tc.refuse.path, resp.StatusCode, tc.status)
	}
	return decodeError(t, resp), lastRefusal(t, logs)
}

func (tc admitCase) runWS(t *testing.T) (errorObject, testenv.Record) {
	t.Helper()
	e, logs, id := tc.start(t)
	hdr := http.Header{}
	if tc.key != "" {
		hdr.Set("Authorization", "Bearer "+tc.key)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	wc, resp, err := websocket.Dial(ctx, e.WSURL, &websocket.DialOptions{HTTPHeader: hdr})
	if err != nil {
		// Refused at the upgrade: then as the HTTP request is, status and all.
		if resp == nil || len(tc.ok) > 0 {
			t.Fatalf("/ws: dial: %v", err)
		}
		if resp.StatusCode != tc.status {
			t.Fatalf("/ws: upgrade refused with %d, want %d", resp.StatusCode, tc.status)
		}
		return decodeError(t, resp), lastRefusal(t, logs)
	}
	t.Cleanup(func() { wc.CloseNow() })
	c := &client{t: t, c: wc}
	send := func(o op, reqID string) frame {
		msg := withStream(o.msg, id)
		msg["id"] = reqID
		c.send(msg)
		return c.answer(reqID)
	}
	for i, o := range tc.ok {
		if f := send(o, "ok"+strconv.Itoa(i)); f.Type == "error" {
			t.Fatalf("/ws: operation %d (%s) refused: %+v", i, o.msg["type"], f.Error)
		}
	}
	f := send(tc.refuse, "refused")
	if f.Type != "error" || f.Error == nil {
		t.Fatalf("/ws: %s admitted: %+v", tc.refuse.msg["type"], f)
	}
	rec := lastRefusal(t, logs)
	if rec.Attrs["method"] != tc.refuse.msg["type"] || rec.Attrs["path"] != "/ws" {
		t.Errorf("/ws: refusal logged as %+v", rec)
	}
	return errorObject{Error: *f.Error}, rec
}

// withStream returns msg with "{stream}" replaced by id.
func withStream(msg map[string]any, id string) map[string]any {
	out := make(map[string]any, len(msg))
	for k, v := range msg {
		out[k] = v
	}
	if out["stream"] == "{stream}" {
		out["stream"] = id
	}
	return out
}

// answer reads frames until the one that answers the message id (events
// of the connection's subscriptions may come first).
func (c *client) answer(id string) frame {
	c.t.Helper()
	for {
		f := c.next()
		if f.ID == id && f.Type != "event" {
			return f
		}
		if f.Type != "event" && f.Type != "unsubscribed" {
			c.t.Fatalf("frame %+v while waiting for the answer to %s", f, id)
		}
	}
}

// errorObject is an OpenAI-style error body.
type errorObject struct {
	Error errorDetail `json:"error"`
}

type errorDetail = struct {
	Message string  `json:"message"`
	Type    string  `json:"type"`
	Param   *string `json:"param"`
	Code    *string `json:"code"`
}

func decodeError(t *testing.T, resp *http.Response) errorObject {
	t.Helper()
	defer resp.Body.Close()
	var eo errorObject
	if err := json.NewDecoder(resp.Body).Decode(&eo); err != nil {
		t.Fatalf("decoding the %s error body: %v", resp.Status, err)
	}
	return eo
}
