package api_test

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/sluice-dev/sluice"
	"github.com/sluice-dev/sluice/api"
	"github.com/sluice-dev/sluice/demo"
	"github.com/sluice-dev/sluice/internal/testenv"
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
	api    *api.Server
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
	s := testenv.NewServer(t, testenv.Options{API: o.cfg, Demo: o.demo, Models: o.models, Retention: o.retention,
		MaxGenerations: o.maxGenerations, MaxPerKey: o.maxPerKey, HTTP2: o.http2})
	return &env{URL: s.URL, client: s.Client, api: s.API}
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
