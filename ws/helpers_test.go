package ws_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/sluice-dev/sluice"
	"github.com/sluice-dev/sluice/admit"
	"github.com/sluice-dev/sluice/api"
	"github.com/sluice-dev/sluice/demo"
	"github.com/sluice-dev/sluice/gen"
	"github.com/sluice-dev/sluice/internal/testenv"
	"github.com/sluice-dev/sluice/sse"
	"github.com/sluice-dev/sluice/ws"
)

// TestMain fails the run if any goroutine outlives the tests: every
// connection, subscription and writer must end.
func TestMain(m *testing.M) {
	testenv.RunWithoutLeaks(m, http.DefaultClient)
}

// env is an api.Server with the WebSocket handler on GET /ws, on a
// loopback port: both transports over the same store, runner and gate.
type env struct {
	URL    string
	WSURL  string
	Client *http.Client // trusts the server's certificate with http2
	ws     *ws.Handler
	store  sluice.Store
	runner *gen.Runner
	gate   *admit.Gate
	stop   context.CancelFunc
}

type envOptions struct {
	api    api.Config
	admit  admit.Config
	ws     ws.Options
	perKey int               // generations one key may run at once
	logs   *testenv.Recorder // when set, keeps what both transports log
	demo   demo.Options
	models map[string]sluice.Model
	http2  bool                     // serve HTTP/2 over TLS: SSE then takes the fallback path
	store  sluice.Store             // where the logs are (several envs may share a Redis); nil: a memory store
	conv   sluice.ConversationStore // where conversations are kept; nil: none
}

// fast is a demo model quick enough for tests, paced so that streams have
// a "during".
var fast = envOptions{demo: demo.Options{TimeToFirstToken: -1, TokensPerSecond: 2000}}

func newEnv(t *testing.T, o envOptions) *env {
	t.Helper()
	// Cleanups run last first: the handler is waited for after the server
	// (registered next) has ended its generations and connections.
	var h *ws.Handler
	t.Cleanup(func() {
		if h != nil {
			h.Wait()
		}
	})
	log := testenv.Logger(t)
	if o.logs != nil {
		log = o.logs.Logger()
	}
	s := testenv.NewServer(t, testenv.Options{API: o.api, Admit: o.admit, Demo: o.demo, Models: o.models, MaxPerKey: o.perKey, Logger: log, HTTP2: o.http2, Logs: o.store, Conversations: o.conv})
	stopCtx, stop := context.WithCancel(context.Background())
	t.Cleanup(stop)
	opts := o.ws
	opts.Gate, opts.Runner, opts.Stop, opts.Logger = s.Gate, s.Runner, stopCtx, log
	h = ws.NewHandler(opts)
	// As cmd/sluice routes it: the handler admits with the API's gate.
	s.API.Handle("GET /ws", h)
	s.API.CountWebSockets(func() int64 { return h.Stats().Connections })
	return &env{URL: s.URL, Client: s.Client, WSURL: "ws" + strings.TrimPrefix(s.URL, "http") + "/ws", ws: h, store: s.Store, runner: s.Runner, gate: s.Gate, stop: stop}
}

// frame is any server frame.
type frame struct {
	Type    string `json:"type"`
	ID      string `json:"id"`
	Stream  string `json:"stream"`
	Topic   string `json:"topic"`
	Event   string `json:"event"`
	Data    string `json:"data"`
	End     string `json:"end"`
	EventID string `json:"event_id"`
	Status  string `json:"status"`
	Reason  string `json:"reason"`
	// Conversation and Message name where a chat is stored.
	Conversation string `json:"conversation"`
	Message      string `json:"message"`
	Error        *struct {
		Message string  `json:"message"`
		Type    string  `json:"type"`
		Param   *string `json:"param"`
		Code    *string `json:"code"`
	} `json:"error"`
}

// client is a test WebSocket client.
type client struct {
	t *testing.T
	c *websocket.Conn
}

func (e *env) dial(t *testing.T) *client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, e.WSURL, nil)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	c.SetReadLimit(64 << 20)
	t.Cleanup(func() { c.CloseNow() })
	return &client{t: t, c: c}
}

func (c *client) send(msg any) {
	c.t.Helper()
	var b []byte
	switch m := msg.(type) {
	case string:
		b = []byte(m)
	default:
		var err error
		if b, err = json.Marshal(m); err != nil {
			c.t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.c.Write(ctx, websocket.MessageText, b); err != nil {
		c.t.Fatalf("send: %v", err)
	}
}

// next reads one frame, failing the test after 10 s.
func (c *client) next() frame {
	c.t.Helper()
	f, err := c.read()
	if err != nil {
		c.t.Fatalf("reading a frame: %v", err)
	}
	return f
}

func (c *client) read() (frame, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	typ, b, err := c.c.Read(ctx)
	if err != nil {
		return frame{}, err
	}
	var f frame
	if typ != websocket.MessageText {
		return f, errors.New("binary frame")
	}
	if err := json.Unmarshal(b, &f); err != nil {
		return f, fmt.Errorf("frame %q: %v", b, err)
	}
	return f, nil
}

// expect reads one frame and checks its type.
func (c *client) expect(typ string) frame {
	c.t.Helper()
	f := c.next()
	if f.Type != typ {
		c.t.Fatalf("got a %q frame %+v, want %q", f.Type, f, typ)
	}
	return f
}

// untilEnd reads the event frames of one stream until its last one.
func (c *client) untilEnd(stream string) []frame {
	c.t.Helper()
	var out []frame
	for {
		f := c.next()
		if f.Type != "event" || f.Stream != stream {
			c.t.Fatalf("unexpected frame %+v while reading stream %s", f, stream)
		}
		out = append(out, f)
		if f.End != "" {
			return out
		}
	}
}

var chatBody = testenv.ChatBody

// text joins the delta contents of chunk data strings, and reports the last
// data.
var text = testenv.ChatText

func datas(fs []frame) []string {
	out := make([]string, len(fs))
	for i, f := range fs {
		out[i] = f.Data
	}
	return out
}

// sseChat runs a chat completion over SSE and returns its events.
func (e *env) sseChat(t *testing.T, body any) []sse.Event {
	t.Helper()
	return testenv.Events(t, testenv.Do(t, http.DefaultClient, "POST", e.URL+"/v1/chat/completions", body), -1)
}

// stepModel is the scripted model of internal/testenv.
type stepModel = testenv.StepModel
