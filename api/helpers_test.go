package api_test

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/sluice-dev/sluice"
	"github.com/sluice-dev/sluice/api"
	"github.com/sluice-dev/sluice/demo"
	"github.com/sluice-dev/sluice/gen"
	"github.com/sluice-dev/sluice/memory"
	"github.com/sluice-dev/sluice/sse"
)

// TestMain fails the run if any goroutine outlives the tests: every stream
// must end on cancel, disconnect, shutdown and error.
func TestMain(m *testing.M) {
	code := m.Run()
	http.DefaultClient.CloseIdleConnections() // the client's, not the server's
	if err := goleak.Find(); code == 0 && err != nil {
		fmt.Fprintln(os.Stderr, "leaked goroutines:", err)
		code = 1
	}
	os.Exit(code)
}

// env is a Sluice API server on a loopback port, with the demo model and
// any test models.
type env struct {
	URL    string
	client *http.Client
	srv    *httptest.Server
	api    *api.Server
	runner *gen.Runner
	store  *memory.Store
}

type envOptions struct {
	cfg            api.Config
	demo           demo.Options
	maxGenerations int
	maxPerKey      int
	retention      time.Duration
	models         map[string]sluice.Model
	http2          bool // serve HTTP/2 over TLS, where connections cannot be hijacked
}

func newEnv(t *testing.T, o envOptions) *env {
	t.Helper()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	store := memory.New(memory.Options{Retention: o.retention})
	runner := gen.NewRunner(gen.Options{Store: store, MaxConcurrent: o.maxGenerations, MaxPerOwner: o.maxPerKey, Logger: log})
	var models api.Models
	dm := demo.New(o.demo)
	models.Add(dm.Info(), dm)
	for name, m := range o.models {
		models.Add(sluice.ModelInfo{ID: name, OwnedBy: "test"}, m)
	}
	a := api.New(o.cfg, store, runner, &models, log)
	srv := httptest.NewUnstartedServer(a)
	if o.http2 {
		srv.EnableHTTP2 = true
		srv.StartTLS()
	} else {
		srv.Start()
	}
	e := &env{URL: srv.URL, client: srv.Client(), srv: srv, api: a, runner: runner, store: store}
	t.Cleanup(func() {
		a.Drain()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := runner.Shutdown(ctx); err != nil {
			t.Errorf("runner shutdown: %v", err)
		}
		if err := a.Shutdown(ctx); err != nil {
			t.Errorf("api shutdown: %v", err)
		}
		srv.CloseClientConnections()
		srv.Close()
		e.client.CloseIdleConnections()
		store.Close()
	})
	return e
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// post sends a JSON body and returns the response, closed when the test
// ends.
func (e *env) post(t *testing.T, path string, body any, header ...string) *http.Response {
	t.Helper()
	var r io.Reader
	switch b := body.(type) {
	case string:
		r = strings.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		r = strings.NewReader(string(j))
	}
	req, err := http.NewRequest(http.MethodPost, e.URL+path, r)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := e.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

func (e *env) get(t *testing.T, path string, header ...string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, e.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := e.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

func chatBody(content string, extra ...any) map[string]any {
	b := map[string]any{
		"model":    "demo",
		"stream":   true,
		"messages": []map[string]any{{"role": "user", "content": content}},
	}
	for i := 0; i+1 < len(extra); i += 2 {
		b[extra[i].(string)] = extra[i+1]
	}
	return b
}

// events reads every SSE event of resp until the stream ends or max events
// have come (max < 0: no limit). It closes resp when the stream has ended.
func events(t *testing.T, resp *http.Response, max int) []sse.Event {
	t.Helper()
	var out []sse.Event
	rd := sse.NewReader(resp.Body)
	for max < 0 || len(out) < max {
		ev, err := rd.Next()
		if errors.Is(err, io.EOF) {
			resp.Body.Close()
			return out
		}
		if err != nil {
			t.Fatalf("reading the stream: %v", err)
		}
		out = append(out, ev)
	}
	return out
}

// content joins the delta contents of chat chunk events, and reports the
// data of the last event.
func content(t *testing.T, evs []sse.Event) (text, last string) {
	t.Helper()
	var sb strings.Builder
	for _, ev := range evs {
		last = ev.Data
		if ev.Data == "[DONE]" || strings.HasPrefix(ev.Data, `{"error"`) {
			continue
		}
		var ch struct {
			Choices []struct {
				Delta struct {
					Content string `json:"content"`
				} `json:"delta"`
			} `json:"choices"`
		}
		if err := json.Unmarshal([]byte(ev.Data), &ch); err != nil {
			t.Fatalf("event %q is not a chunk: %v", ev.Data, err)
		}
		for _, c := range ch.Choices {
			sb.WriteString(c.Delta.Content)
		}
	}
	return sb.String(), last
}

func decode[T any](t *testing.T, resp *http.Response) T {
	t.Helper()
	defer resp.Body.Close()
	var v T
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
		t.Fatalf("decoding %s response: %v", resp.Status, err)
	}
	return v
}

type errorBody struct {
	Error struct {
		Message string  `json:"message"`
		Type    string  `json:"type"`
		Param   *string `json:"param"`
		Code    *string `json:"code"`
	} `json:"error"`
}

// stepModel is a test model that emits the given tokens one by one, each
// after a receive from step (when step is set), then fails with fail.
type stepModel struct {
	tokens []string
	step   chan struct{}
	fail   error

	mu      sync.Mutex
	stopped error // what ctx said when the model was stopped
}

func (m *stepModel) Stream(ctx context.Context, req *sluice.ChatRequest, emit func(sluice.Delta) error) (sluice.Usage, error) {
	if err := emit(sluice.Delta{Role: "assistant"}); err != nil {
		return sluice.Usage{}, err
	}
	for i, tok := range m.tokens {
		if m.step != nil {
			select {
			case <-m.step:
			case <-ctx.Done():
				m.mu.Lock()
				m.stopped = ctx.Err()
				m.mu.Unlock()
				return sluice.Usage{CompletionTokens: i}, ctx.Err()
			}
		}
		if err := emit(sluice.Delta{Content: tok}); err != nil {
			return sluice.Usage{}, err
		}
	}
	if m.fail != nil {
		return sluice.Usage{CompletionTokens: len(m.tokens)}, m.fail
	}
	return sluice.Usage{PromptTokens: 1, CompletionTokens: len(m.tokens)}, emit(sluice.Delta{FinishReason: "stop"})
}

// stepped returns a stepModel's stopped error.
func (m *stepModel) stoppedBy() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.stopped
}

// readLine reads one raw line of an SSE body, for byte-level checks.
func readLine(t *testing.T, br *bufio.Reader) string {
	t.Helper()
	line, err := br.ReadString('\n')
	if err != nil {
		t.Fatalf("reading a line: %v", err)
	}
	return line
}

func sha256hex(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

// waitFor polls cond until it holds, or fails the test after 5 seconds.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatal("condition not met within 5s")
}
