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
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/sluice-dev/sluice"
	"github.com/sluice-dev/sluice/api"
	"github.com/sluice-dev/sluice/demo"
	"github.com/sluice-dev/sluice/gen"
	"github.com/sluice-dev/sluice/internal/testenv"
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

var chatBody = testenv.ChatBody

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
	datas := make([]string, len(evs))
	for i, ev := range evs {
		datas[i] = ev.Data
	}
	return testenv.ChatText(t, datas)
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

// stepModel is the scripted model of internal/testenv.
type stepModel = testenv.StepModel

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
