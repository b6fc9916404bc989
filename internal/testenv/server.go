package testenv

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/sluice-dev/sluice"
	"github.com/sluice-dev/sluice/admit"
	"github.com/sluice-dev/sluice/api"
	"github.com/sluice-dev/sluice/convo"
	"github.com/sluice-dev/sluice/demo"
	"github.com/sluice-dev/sluice/gen"
	"github.com/sluice-dev/sluice/memory"
	"go.uber.org/goleak"
)

// Options describe a Server. The zero value is a server with the fastest
// demo model and default limits.
type Options struct {
	API       api.Config
	Admit     admit.Config // keys, limits and topic rules, for every transport
	Demo      demo.Options
	Models    map[string]sluice.Model // more models, by name, besides the demo
	Retention time.Duration           // when set, wins over Store.Retention
	Store     memory.Options
	// Logs, when set, is the store the server keeps its logs in (the test
	// closes it: several servers may share one, as nodes share a Redis);
	// otherwise it keeps them in a memory store made from Store.
	Logs           sluice.Store
	MaxLogLen      int          // events a generation's log keeps (memory.Options.MaxLen), when set
	Logger         *slog.Logger // the server's logger; nil: see Logger
	MaxGenerations int
	MaxPerKey      int  // generations one key runs at once (admit.Limits.GenerationsPerKey), when set
	HTTP2          bool // serve HTTP/2 over TLS, where connections cannot be hijacked
	// Conversations, when set, is where the server keeps conversations
	// (the test closes it), wired as cmd/sluice wires it; Conv tunes the
	// service (its Store and Logs are set here).
	Conversations sluice.ConversationStore
	Conv          convo.Options
}

// Server is a Sluice API server wired like `sluice serve`, on a loopback
// port. It is shut down, in order, when the test ends.
type Server struct {
	URL    string
	Client *http.Client // a client for it (it trusts the TLS certificate)
	API    *api.Server
	Gate   *admit.Gate // admits the requests of every transport (give it to ws.Options)
	Models *admit.Models
	Runner *gen.Runner
	Store  sluice.Store   // where its logs are
	Memory *memory.Store  // Store, when it is the memory store it made
	Conv   *convo.Service // when Options.Conversations is set
	Srv    *httptest.Server
}

// NewServer starts a Server. With -v its logs go to the test's log.
func NewServer(t *testing.T, o Options) *Server {
	t.Helper()
	log := o.Logger
	if log == nil {
		log = Logger(t)
	}
	so := o.Store
	if o.Retention > 0 {
		so.Retention = o.Retention
	}
	if o.MaxLogLen > 0 {
		so.MaxLen = o.MaxLogLen
	}
	var store sluice.Store = o.Logs
	var mem *memory.Store
	if store == nil {
		mem = memory.New(so)
		store = mem
	}
	// A store that carries requests to stop generations between nodes (the
	// Redis store) is the runner's Peers, as cmd/sluice wires it.
	peers, _ := store.(gen.Peers)
	runner := gen.NewRunner(gen.Options{Store: store, Peers: peers, MaxConcurrent: o.MaxGenerations, Logger: log})
	var models admit.Models
	dm := demo.New(o.Demo)
	models.Add(dm.Info(), dm)
	for name, m := range o.Models {
		models.Add(sluice.ModelInfo{ID: name, OwnedBy: "test"}, m)
	}
	if o.MaxPerKey > 0 {
		o.Admit.Limits.GenerationsPerKey = o.MaxPerKey
	}
	var conv *convo.Service
	if o.Conversations != nil {
		co := o.Conv
		co.Store, co.Logs = o.Conversations, store
		if co.Logger == nil {
			co.Logger = log
		}
		conv = convo.New(co)
		o.Admit.Conversations, o.API.Conversations = conv, conv
	}
	gate := admit.New(o.Admit, store, &models)
	a := api.New(o.API, store, runner, gate, log)
	srv := httptest.NewUnstartedServer(a)
	if o.HTTP2 {
		srv.EnableHTTP2 = true
		srv.StartTLS()
	} else {
		srv.Start()
	}
	s := &Server{URL: srv.URL, Client: srv.Client(), API: a, Gate: gate, Models: &models, Runner: runner, Store: store, Memory: mem, Conv: conv, Srv: srv}
	t.Cleanup(func() {
		a.Drain()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := runner.Shutdown(ctx); err != nil {
			t.Errorf("runner shutdown: %v", err)
		}
		if conv != nil {
			if err := conv.Shutdown(ctx); err != nil {
				t.Errorf("conversations shutdown: %v", err)
			}
		}
		if err := a.Shutdown(ctx); err != nil {
			t.Errorf("api shutdown: %v", err)
		}
		srv.CloseClientConnections()
		srv.Close()
		s.Client.CloseIdleConnections()
		if mem != nil {
			mem.Close()
		}
	})
	return s
}

// Post sends body to the server's path, as JSON (a string as it is), with
// header's name, value pairs. See Do.
func (s *Server) Post(t *testing.T, path string, body any, header ...string) *http.Response {
	t.Helper()
	return Do(t, s.Client, http.MethodPost, s.URL+path, body, header...)
}

// Get asks the server for path, with header's name, value pairs. See Do.
func (s *Server) Get(t *testing.T, path string, header ...string) *http.Response {
	t.Helper()
	return Do(t, s.Client, http.MethodGet, s.URL+path, nil, header...)
}

// Do sends a request with c and returns the response, closed when the test
// ends. A non-nil body goes as JSON with Content-Type: application/json (a
// string body as it is); header holds name, value pairs.
func Do(t *testing.T, c *http.Client, method, url string, body any, header ...string) *http.Response {
	t.Helper()
	var r io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		r = strings.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		r = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, url, r)
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

// Logger discards logs, or with -v writes them to the test's log.
func Logger(t *testing.T) *slog.Logger {
	if !testing.Verbose() {
		return slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// RunWithoutLeaks is a TestMain body: it runs the tests, stops the
// PostgreSQL server StartPostgres started, closes the idle connections of
// clients (kept-alive connections are not leaks), then fails the run if
// any goroutine outlives them, and exits.
func RunWithoutLeaks(m *testing.M, clients ...*http.Client) {
	code := m.Run()
	StopPostgres()
	for _, c := range clients {
		c.CloseIdleConnections()
	}
	if err := goleak.Find(); code == 0 && err != nil {
		fmt.Fprintln(os.Stderr, "leaked goroutines:", err)
		code = 1
	}
	os.Exit(code)
}
